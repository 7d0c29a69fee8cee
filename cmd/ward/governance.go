package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/records"
)

// runAuditGovernance lists the changes of what governs access to patient
// data (consents, care teams, encounters, practitioner roles, general
// practitioners, security labels: records.GovernanceActions), oldest
// first, for the privacy officer's review: sequence number, time, actor
// id, role, change, the interaction that made it and the resources.
func runAuditGovernance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sinceArg string
	cfg, _, err := flags("audit governance", args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&sinceArg, "since", "", "only changes at or after D: a date (2026-11-01), an RFC 3339 time, or a duration back from now (720h)")
	})
	if err != nil {
		return err
	}
	since, err := parseSince(sinceArg, time.Now())
	if err != nil {
		return err
	}
	st, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stdout, "%-8s %-27s %-36s %-16s %-24s %-16s %s\n", "SEQ", "TIME", "ACTOR", "ROLE", "CHANGE", "BY", "RESOURCES")
	n := 0
	err = st.AuditScan(ctx, 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			if !slices.Contains(records.GovernanceActions, r.Action) || r.Tenant != cfg.Tenant || r.Time.Before(since) {
				continue
			}
			n++
			fmt.Fprintf(stdout, "%-8d %-27s %-36s %-16s %-24s %-16s %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Actor, r.Role, r.Action,
				r.Detail, strings.Join(r.Entities, ","))
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d access-governing changes\n", n)
	return nil
}
