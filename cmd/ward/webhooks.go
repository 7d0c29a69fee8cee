package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// runWebhooks: ward webhooks add --url U [--types a,b] [--tenant T] | list | remove ID.
func runWebhooks(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	sub, rest := args[0], args[1:]
	var rawURL, types string
	cfg, fs, err := flags("webhooks "+sub, rest, stderr, append(dbSettings, "key-file", "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&rawURL, "url", "", "add: the receiver's URL (https; http only to a loopback address)")
		fs.StringVar(&types, "types", "", "add: comma-separated event types (empty: all)")
	})
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	switch sub {
	case "add":
		if rawURL == "" || fs.NArg() > 0 {
			return errUsage
		}
		var ts []string
		if types != "" {
			ts = strings.Split(types, ",")
		}
		id, secret, err := a.AddWebhook(ctx, "cli", cfg.Tenant, rawURL, ts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "webhook %s\nsecret %s\n(the secret is shown once: give it to the receiver to verify webhook-signature)\n", id, secret)
		return nil
	case "list":
		hs, err := a.Webhooks(ctx, cfg.Tenant)
		if err != nil {
			return err
		}
		for _, h := range hs {
			t := strings.Join(h.Types, ",")
			if t == "" {
				t = "*"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", h.ID, h.URL, t, h.Created.Format(time.RFC3339))
		}
		return nil
	case "remove":
		if fs.NArg() != 1 {
			return errUsage
		}
		return a.RemoveWebhook(ctx, "cli", fs.Arg(0))
	}
	return errUsage
}
