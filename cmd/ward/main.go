// Command ward is the Ward healthcare records server and its tools.
package main

import (
	"context"
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
		{"serve", "run the server", runServe},
		{"migrate", "apply database migrations and exit", runMigrate},
		{"users", "manage users: users add --username U --role R --password-stdin", runUsers},
		{"audit", "audit ledger tools: audit verify, audit break-glass [--since D]", runAudit},
		{"clients", "clients: clients add|list|disable|enable (backend services or public apps)", runClients},
		{"tenants", "tenants: tenants add --name T, tenants list", runTenants},
		{"keys", "key tools: keys rotate (a new token signing key)", runKeys},
		{"reindex", "rebuild every resource's search index rows", runReindex},
		{"stats", "search index bytes per resource of a type: stats [--data-dir D] [--type T]", runStats},
		{"explain", "show the database plan of a search: explain [--data-dir D] 'Type?params'", runExplain},
		{"import", "load FHIR Bundles and NDJSON: import [--data-dir D] FILE|DIR...", runImport},
		{"bench", "HTTP load generator: bench --url U --token T --mix create|read|mixed|search|transaction [--paths F]; bench generate --out DIR (search data set)", runBench},
		{"config", "print the effective configuration (secrets masked)", runConfig},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ward <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nrun 'ward <command> -h' for a command's flags")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(ctx, args[1:], stdin, stdout, stderr); err != nil {
				if err == errUsage {
					return 2
				}
				fmt.Fprintf(stderr, "ward %s: %v\n", c.name, err)
				if ec, ok := err.(interface{ ExitCode() int }); ok {
					return ec.ExitCode()
				}
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "ward: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
