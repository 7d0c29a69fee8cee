package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/wardhealth/ward/internal/app"
)

// runPatients is `ward patients hold ID --tenant T --reason R` and
// `ward patients release ID --tenant T`: a legal hold, under which
// Patient/$erase is refused.
func runPatients(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "hold" && args[0] != "release" || strings.HasPrefix(args[1], "-") {
		return subUsage(args, `usage: ward patients hold ID --tenant T --reason R    a legal hold: no erasure
       ward patients release ID --tenant T               lift it`, stderr)
	}
	o := app.HoldOptions{Patient: args[1], Release: args[0] == "release"}
	cfg, _, err := flags("patients "+args[0], args[2:], stderr, dbSettings, func(fs *flag.FlagSet) {
		fs.StringVar(&o.Tenant, "tenant", "", "the patient's tenant")
		if !o.Release {
			fs.StringVar(&o.Reason, "reason", "", "why (only its SHA-256 is kept)")
		}
	})
	if err != nil {
		return err
	}
	if err := app.LegalHold(ctx, cfg, o); err != nil {
		return cliError(err)
	}
	what := "under a legal hold"
	if o.Release {
		what = "released from its legal hold"
	}
	fmt.Fprintf(stdout, "Patient/%s of tenant %s %s\n", o.Patient, o.Tenant, what)
	return nil
}
