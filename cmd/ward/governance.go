package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// runAuditGovernance lists the changes of what governs access to patient
// data (consents, care teams, encounters, practitioner roles, general
// practitioners, security labels: app.IsGovernanceAction), oldest
// first, for the privacy officer's review: sequence number, time, actor
// id, role, change, the interaction that made it and the resources.
func runAuditGovernance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return ledgerReport{
		name:     "audit governance",
		sinceDoc: "only changes",
		header:   fmt.Sprintf("%-8s %-27s %-36s %-16s %-24s %-16s %s", "SEQ", "TIME", "ACTOR", "ROLE", "CHANGE", "BY", "RESOURCES"),
		keep:     func(r *app.LedgerRecord) bool { return app.IsGovernanceAction(r.Action) },
		row: func(w io.Writer, r *app.LedgerRecord) {
			fmt.Fprintf(w, "%-8d %-27s %-36s %-16s %-24s %-16s %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Actor, r.Role, r.Action,
				r.Detail, strings.Join(r.Entities, ","))
		},
		countNoun: "access-governing changes",
	}.run(ctx, args, stdout, stderr)
}
