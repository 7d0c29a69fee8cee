package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// ledgerReport is one `ward audit` listing: the ledger records of the
// tenant since --since that keep selects, oldest first, a header line,
// a row each and a closing count.
type ledgerReport struct {
	name      string // the subcommand, for flags and usage
	sinceDoc  string // what --since selects
	header    string
	keep      func(*app.LedgerRecord) bool
	row       func(io.Writer, *app.LedgerRecord)
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
	l, err := app.OpenLedger(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintln(stdout, lr.header)
	n := 0
	for r, err := range l.Tenant(ctx, cfg.Tenant, since) {
		if err != nil {
			return err
		}
		if !lr.keep(r) {
			continue
		}
		n++
		lr.row(stdout, r)
	}
	fmt.Fprintf(stdout, "%d %s\n", n, lr.countNoun)
	return nil
}
