package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

// runStats prints how much space the search index takes per resource of a
// type: each index table's bytes per row times that type's rows per
// resource. It reads counts and sizes only, never a resource.
func runStats(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var typ string
	cfg, fs, err := flags("stats", args, stderr, append(dbSettings, "key-file"), func(fs *flag.FlagSet) {
		fs.StringVar(&typ, "type", "Observation", "resource type to measure")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	tables, n, err := a.IndexSize(ctx, typ)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no current %s resources", typ)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "table\tbytes\trows\tbytes/row\t%s rows each\tbytes per %s\t\n", typ, typ)
	var total float64
	for _, t := range tables {
		per := 0.0
		if t.Rows > 0 {
			per = float64(t.Bytes) / float64(t.Rows)
		}
		each := float64(t.RowsFor) / float64(n)
		total += per * each
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.2f\t%.0f\t\n", t.Name, t.Bytes, t.Rows, per, each, per*each)
	}
	fmt.Fprintf(tw, "total\t\t\t\t\t%.0f\t\n", total)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d current %s resources; search index %.0f bytes each\n", n, typ, total)
	return nil
}
