package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// ledgerReport is one `ward audit` listing: the ledger records of the
// tenant since --since that keep selects, oldest first, a header line,
// a row each and a closing count.
type ledgerReport struct {
	name      string // the subcommand, for flags and usage
	sinceDoc  string // what --since selects
	header    string
	keep      func(*audit.Record) bool
	row       func(io.Writer, *audit.Record)
	countNoun string // "emergency accesses"
}

func (lr ledgerReport) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sinceArg string
	cfg, _, err := flags(lr.name, args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&sinceArg, "since", "", lr.sinceDoc+" at or after D: a date (2026-11-01), an RFC 3339 time, or a duration back from now (720h)")
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
	fmt.Fprintln(stdout, lr.header)
	n := 0
	err = st.AuditScan(ctx, 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			if r.Tenant != cfg.Tenant || r.Time.Before(since) || !lr.keep(r) {
				continue
			}
			n++
			lr.row(stdout, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d %s\n", n, lr.countNoun)
	return nil
}
