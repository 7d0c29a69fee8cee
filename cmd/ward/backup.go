package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wardhealth/ward/internal/app"
)

// runBackup writes a backup directory (app.Backup).
func runBackup(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var out string
	cfg, _, err := flags("backup", args, stderr, append(append([]string{}, dbSettings...), kekSettings...), func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "the new backup directory")
	})
	if err != nil {
		return err
	}
	if out == "" {
		return cliError(errors.New("give the new backup directory with --out"))
	}
	m, err := app.Backup(ctx, cfg, out)
	if err != nil {
		return err
	}
	if m.Postgres {
		fmt.Fprintf(stdout, "checkpoint of the first %d ledger records written to %s; now dump the database next to it: pg_dump -Fc -f %s/ward.dump \"$WARD_DATABASE_URL\" (docs/backup.md)\n", m.CheckpointSize, out, out)
		return nil
	}
	fmt.Fprintf(stdout, "backup written to %s: the database and a checkpoint of its first %d ledger records; it holds no key-encryption key, keep that apart\n", out, m.CheckpointSize)
	return nil
}

// runRestore checks and installs a backup (app.Restore).
func runRestore(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var keysFile string
	var o app.RestoreOptions
	cfg, fs, err := flags("restore", args, stderr, append(append([]string{}, dbSettings...), kekSettings...), func(fs *flag.FlagSet) {
		fs.StringVar(&keysFile, "key", "", "file of the published checkpoint keys (default: those in the backup, unwrapped with the key-encryption key)")
		fs.StringVar(&o.ShredList, "shred-list", "", "directory of the shred list (a file document store; default: the configured document store)")
		fs.BoolVar(&o.NoShredList, "no-shred-list", false, "restore without the shred list: erasures after the backup are NOT re-applied")
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cliError(errors.New("usage: ward restore [--data-dir D] [--shred-list DIR | --no-shred-list] BACKUP-DIR"))
	}
	o.Progress = stdout
	if keysFile != "" {
		b, err := os.ReadFile(keysFile)
		if err != nil {
			return err
		}
		o.Keys = string(b)
	}
	v, err := app.Restore(ctx, cfg, fs.Arg(0), o)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		fmt.Fprintf(stdout, "the restored PostgreSQL database's ledger of %d records verifies against the backup's checkpoint\n", v.Count)
		return nil
	}
	fmt.Fprintf(stdout, "restored into %s: ledger of %d records verified against the backup's checkpoint\n", cfg.DataDir, v.Count)
	return nil
}
