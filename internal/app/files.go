package app

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/seal"
)

// The files Ward keeps are its owner's only: the key-encryption key file
// (readable by anyone else, it opens every record) is refused; the data
// directory (0700) and the SQLite database with its -wal and -shm files
// (0600) are created so, and tightened when found looser, since Ward made
// them and nothing else needs to read them.

// ErrInsecureKeyFile is returned when the key file may be read by group or
// others and WARD_ALLOW_INSECURE_KEY_FILE is not set.
var ErrInsecureKeyFile = errors.New("key file readable by group or others")

// checkKeyFile refuses a key file that group or others may read or write,
// unless the operator said it is fine (a loud warning then).
func checkKeyFile(cfg config.Config, path string, warn io.Writer) error {
	err := seal.CheckKeyFileMode(path)
	if err == nil || !errors.Is(err, seal.ErrKeyFilePermissions) {
		return err
	}
	if cfg.AllowInsecureKeyFile {
		fmt.Fprintf(warn, "WARNING: %v; starting anyway because WARD_ALLOW_INSECURE_KEY_FILE (--allow-insecure-key-file) is set: anyone who can read this file can read every record; fix it with: chmod 600 %s\n", err, path)
		return nil
	}
	return fmt.Errorf("%w: %s may be read by group or others (it opens every record); fix it with: chmod 600 %s (or, DANGEROUS, set WARD_ALLOW_INSECURE_KEY_FILE=true or ward serve --allow-insecure-key-file)", ErrInsecureKeyFile, path, path)
}

// secureDataDir creates dir 0700, or tightens an existing one to 0700,
// and tightens the database files in it to 0600, saying so on warn.
func secureDataDir(dir string, warn io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if err := tighten(dir, 0o700, "the data directory holds the database and the generated keys", warn); err != nil {
		return err
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := tighten(filepath.Join(dir, DatabaseFileName+suffix), 0o600, "database files are for Ward alone", warn); err != nil {
			return err
		}
	}
	return nil
}

// tighten sets path's permissions to want when it grants group or others
// anything; a missing file is fine.
func tighten(path string, want fs.FileMode, why string, warn io.Writer) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, want|perm&0o700); err != nil {
		return fmt.Errorf("%s has mode %#o and could not be tightened to %#o (%s): %w", path, perm, want, why, err)
	}
	fmt.Fprintf(warn, "WARNING: %s had mode %#o; tightened to %#o (%s)\n", path, perm, want|perm&0o700, why)
	return nil
}
