package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/config"
)

// runAuditDisclosures is `ward audit disclosures --patient ID`: the
// accounting of disclosures of one patient (HIPAA §164.528).
func runAuditDisclosures(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var patient string
	cfg, start, end, format, err := reportFlags("audit disclosures", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&patient, "patient", "", "the Patient id (required)")
	})
	if err != nil {
		return err
	}
	if patient == "" {
		fmt.Fprintln(stderr, "ward audit disclosures: --patient is required")
		return errUsage
	}
	return app.Disclosures(ctx, cfg, patient, start, end, format, stdout)
}

// runAuditAccess is `ward audit access --user U`: one user's activity
// (information system activity review, §164.308(a)(1)(ii)(D)).
func runAuditAccess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var user string
	cfg, start, end, format, err := reportFlags("audit access", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "the user id (required)")
	})
	if err != nil {
		return err
	}
	if user == "" {
		fmt.Fprintln(stderr, "ward audit access: --user is required")
		return errUsage
	}
	return app.UserAccess(ctx, cfg, user, start, end, format, stdout)
}

// runAuditWithhold is `ward audit withhold --event SEQ`.
func runAuditWithhold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var event string
	cfg, _, err := flags("audit withhold", args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&event, "event", "", "the AuditEvent id (ledger sequence number) to withhold from the patient's accounting (required)")
	})
	if err != nil {
		return err
	}
	if event == "" {
		fmt.Fprintln(stderr, "ward audit withhold: --event is required")
		return errUsage
	}
	if err := app.WithholdAuditEvent(ctx, cfg, event); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "AuditEvent/%s withheld from the patient's accounting (45 CFR 164.528(a)(2))\n", event)
	return nil
}

// reportFlags parses the flags the reports share: --start, --end,
// --format and the database settings.
func reportFlags(name string, args []string, stderr io.Writer, more func(*flag.FlagSet)) (cfg config.Config, start, end time.Time, format string, err error) {
	var startArg, endArg string
	cfg, _, err = flags(name, args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		more(fs)
		fs.StringVar(&startArg, "start", "", "from this date (2026-01-02) or RFC 3339 time; default six years before --end")
		fs.StringVar(&endArg, "end", "", "until this date or time (exclusive); default now")
		fs.StringVar(&format, "format", "fhir", "fhir (a Bundle of AuditEvents), html or csv")
	})
	if err != nil {
		return
	}
	now := time.Now()
	if start, err = parseSince(startArg, now); err != nil {
		return
	}
	end, err = parseSince(endArg, now)
	return
}

// auditReports are the ledger-view subcommands of `ward audit`.
var auditReports = map[string]func(context.Context, []string, io.Writer, io.Writer) error{
	"disclosures": runAuditDisclosures,
	"access":      runAuditAccess,
	"withhold":    runAuditWithhold,
}
