// Command ward is the Ward healthcare records server and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server (creates the data directory and database on first start)", runServe},
		{"init", "create the data directory, database and development key, then exit", runInit},
		{"migrate", "apply database migrations and exit", runMigrate},
		{"users", "manage users: users add --username U --role R --password-stdin", runUsers},
		{"audit", "audit ledger tools: audit verify, audit break-glass, audit governance", runAudit},
		{"clients", "clients: clients add|list|disable|enable (backend services or public apps)", runClients},
		{"tenants", "tenants: tenants add --name T, tenants list", runTenants},
		{"patients", "legal holds: patients hold ID --tenant T --reason R, patients release ID --tenant T", runPatients},
		{"keys", "key tools: keys generate (a new WARD_KEY), keys rotate (a new token signing key), keys rotate-kek (re-wrap data keys under a new KEK), keys rotate-data (a new data key, records re-sealed)", runKeys},
		{"backup", "a consistent snapshot of the embedded database with its ledger checkpoint, never the key: backup --out DIR", runBackup},
		{"restore", "check a backup's ledger against its checkpoint, install it and re-apply the shred list: restore [--data-dir D] [--shred-list S] DIR", runRestore},
		{"reindex", "rebuild every resource's search index rows", runReindex},
		{"stats", "search index bytes per resource of a type: stats [--data-dir D] [--type T]", runStats},
		{"explain", "show the database plan of a search: explain [--data-dir D] 'Type?params'", runExplain},
		{"import", "load FHIR Bundles and NDJSON: import [--data-dir D] FILE|DIR...", runImport},
		{"bench", "HTTP load generator: bench --url U --token T --mix create|read|mixed|search|transaction [--paths F]; bench generate --out DIR (search data set)", runBench},
		{"events", "events out: events status | tail [--after SEQ] | dead-letters list|replay|drop [--receiver R] [SEQ]", runEvents},
		{"webhooks", "webhooks: webhooks add --url U [--types T,...] | list | remove ID", runWebhooks},
		{"config", "print the effective configuration (secrets masked)", runConfig},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ward <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nrun 'ward help <command>' (or 'ward <command> -h') for a command's flags;")
	fmt.Fprintln(w, "every flag can also be set by its WARD_* environment variable (ward config lists them)")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		// ward help CMD [SUB] is ward CMD [SUB] -h.
		return run(ctx, append(append([]string{}, args[1:]...), "-h"), stdin, stdout, stderr)
	case "-version", "--version", "-v":
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdin, stdout, stderr)
			var he *helpError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &he):
				fmt.Fprint(stdout, he.text)
				return 0
			case err == errUsage:
				return 2
			}
			fmt.Fprintf(stderr, "ward %s: %v\n", c.name, err)
			if ec, ok := err.(interface{ ExitCode() int }); ok {
				return ec.ExitCode()
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "ward: unknown command %q; run 'ward help' for the list of commands\n", args[0])
	return 2
}
