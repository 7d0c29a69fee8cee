package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/wardhealth/ward/internal/app"
)

// runEvents: ward events status | tail | dead-letters list|replay|drop.
func runEvents(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	sub, rest := args[0], args[1:]
	op := ""
	if sub == "dead-letters" {
		if len(rest) == 0 {
			return errUsage
		}
		op, rest = rest[0], rest[1:]
	}
	var receiver string
	var after int64
	cfg, fs, err := flags("events "+sub, rest, stderr, append(dbSettings, "key-file"), func(fs *flag.FlagSet) {
		fs.StringVar(&receiver, "receiver", "", "receiver name (nats, webhook:<id>); empty: all")
		fs.Int64Var(&after, "after", -1, "tail: start after this seq (-1: new events only)")
	})
	if err != nil {
		return err
	}
	e, err := app.OpenEvents(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	switch sub + " " + op {
	case "status ":
		return e.Status(ctx, stdout)
	case "tail ":
		return e.Tail(ctx, after, stdout)
	case "dead-letters list":
		return e.DeadLetters(ctx, receiver, stdout)
	case "dead-letters replay", "dead-letters drop":
		var seq int64
		if fs.NArg() == 1 {
			if seq, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil || seq <= 0 {
				return fmt.Errorf("seq must be a positive integer")
			}
		} else if fs.NArg() > 1 {
			return errUsage
		}
		f := e.Replay
		if op == "drop" {
			f = e.Drop
		}
		n, err := f(ctx, receiver, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead letters %sed\n", n, map[string]string{"replay": "replay", "drop": "dropp"}[op])
		return nil
	}
	return errUsage
}
