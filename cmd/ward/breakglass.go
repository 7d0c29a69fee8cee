package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// runAuditBreakGlass lists the emergency (break-the-glass) accesses of the
// tenant from the ledger, oldest first, for the privacy officer's review:
// sequence number, time, actor id, role, action, the resources touched
// and the reason code with the rules it overrode. The ledger holds no
// free-text reason (see docs/access.md), so neither does the report.
func runAuditBreakGlass(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return ledgerReport{
		name:     "audit break-glass",
		sinceDoc: "only accesses",
		header:   fmt.Sprintf("%-8s %-27s %-36s %-10s %-16s %-24s %s", "SEQ", "TIME", "ACTOR", "ROLE", "ACTION", "REASON", "RESOURCES / OVERRODE"),
		keep:     func(r *app.LedgerRecord) bool { return r.Emergency },
		row: func(w io.Writer, r *app.LedgerRecord) {
			code, overrode := breakGlassDetail(r.Detail)
			fmt.Fprintf(w, "%-8d %-27s %-36s %-10s %-16s %-24s %s %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Actor, r.Role, r.Action,
				code, strings.Join(r.Entities, ","), overrode)
		},
		countNoun: "emergency accesses",
	}.run(ctx, args, stdout, stderr)
}

// parseSince reads --since: empty (everything), a date, an RFC 3339 time
// or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("--since must be a date (2026-11-01), an RFC 3339 time or a duration such as 720h")
}

// breakGlassDetail splits a ledger detail such as
// "break-glass:ETREAT:overrode:no-care-relationship" into the reason code
// and the rules overridden.
func breakGlassDetail(detail string) (code, overrode string) {
	for _, part := range strings.Split(detail, ";") {
		rest, ok := strings.CutPrefix(part, "break-glass:")
		if !ok {
			continue
		}
		code, over, _ := strings.Cut(rest, ":overrode:")
		if over != "" {
			over = "overrode " + strings.ReplaceAll(over, ":", ",")
		}
		return code, over
	}
	return "-", ""
}
