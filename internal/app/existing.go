package app

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/wardhealth/ward/internal/config"
)

// RequireDatabase returns ErrNoDatabase (with the path and the settings to
// check) when the embedded database of cfg does not exist. Commands that
// work on existing data call it before anything is created, so that a
// mistyped --data-dir is an error and not a new, empty data directory.
// A PostgreSQL database that does not exist fails when it is opened.
func RequireDatabase(cfg config.Config) error {
	if cfg.DatabaseURL != "" {
		return nil
	}
	path := filepath.Join(cfg.DataDir, DatabaseFileName)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w at %s (check --data-dir or WARD_DATA_DIR; 'ward init' or 'ward serve' creates one): %v", ErrNoDatabase, path, err)
	}
	return nil
}
