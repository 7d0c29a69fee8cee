package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// runAuditAlerts lists the alerts the rules raised (ledger records of
// action "alert"), oldest first: the alert's seq and time, the rule, the
// user whose activity raised it, the ledger record that did, and the
// patients involved (ids).
func runAuditAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return ledgerReport{
		name:     "audit alerts",
		sinceDoc: "only alerts",
		header:   fmt.Sprintf("%-8s %-27s %-20s %-36s %-10s %s", "SEQ", "TIME", "RULE", "USER", "RECORD", "PATIENTS"),
		keep:     func(r *app.LedgerRecord) bool { return r.Action == "alert" },
		row: func(w io.Writer, r *app.LedgerRecord) {
			user, rec, pats := "-", "-", []string{}
			for _, e := range r.Entities {
				switch {
				case strings.HasPrefix(e, "user/"):
					user = strings.TrimPrefix(e, "user/")
				case strings.HasPrefix(e, "ledger/"):
					rec = strings.TrimPrefix(e, "ledger/")
				case strings.HasPrefix(e, "Patient/"):
					pats = append(pats, e)
				}
			}
			fmt.Fprintf(w, "%-8d %-27s %-20s %-36s %-10s %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Detail, user, rec, strings.Join(pats, ","))
		},
		countNoun: "alerts",
	}.run(ctx, args, stdout, stderr)
}

// runAuditExport writes ledger records to standard output for a SIEM's
// batch import: JSON lines or RFC 5424 syslog messages, one a line, ids
// and codes only.
func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sinceArg, format string
	cfg, _, err := flags("audit export", args, stderr, dbSettings, func(fs *flag.FlagSet) {
		fs.StringVar(&sinceArg, "since", "", "records after sequence number N (a plain number), or at or after D: a date (2026-11-01), an RFC 3339 time, or a duration back from now (720h)")
		fs.StringVar(&format, "format", "json", "json (JSON lines) or syslog (RFC 5424, one message a line)")
	})
	if err != nil {
		return err
	}
	if format != "json" && format != "syslog" {
		return errors.New("--format must be json or syslog")
	}
	var after int64
	var since time.Time
	if n, err := strconv.ParseInt(sinceArg, 10, 64); err == nil {
		if n < 0 {
			return errors.New("--since must be a sequence number >= 0, a date, a time or a duration")
		}
		after = n
	} else if since, err = parseSince(sinceArg, time.Now()); err != nil {
		return err
	}
	st, err := app.OpenExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriterSize(stdout, 64<<10)
	n, err := app.ExportLedger(ctx, st, w, after, since, format)
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d records exported\n", n)
	return nil
}
