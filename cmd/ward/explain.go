package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/wardhealth/ward/internal/app"
)

// runExplain prints the database's plan for a search, translated exactly
// as the server would translate it for the tenant.
func runExplain(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var generic bool
	cfg, fs, err := flags("explain", args, stderr, append(dbSettings, "key-file", "tenant", "search-leaky-index"), func(fs *flag.FlagSet) {
		fs.BoolVar(&generic, "generic", false, "PostgreSQL: the generic plan, the one cached and reused for any values")
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: ward explain [--data-dir D] 'Type?param=value&...'")
	}
	typ, raw, _ := strings.Cut(strings.TrimPrefix(fs.Arg(0), "/"), "?")
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("query string: %v", err)
	}
	q, err := app.ParseSearch(typ, vals)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	lines, err := a.Explain(ctx, cfg.Tenant, q, generic)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}
