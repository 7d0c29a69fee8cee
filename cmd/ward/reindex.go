package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// runReindex rebuilds the search index of every current resource.
func runReindex(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, _, err := flags("reindex", args, stderr, append(dbSettings, "key-file", "search-leaky-index"), nil)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	n, err := a.Records.Reindex(ctx, "cli-reindex", nil)
	if err != nil {
		return err
	}
	if err := app.MarkIndexLayout(ctx, a.Store); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d resources in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
