package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// A new database and its -wal and -shm files are its owner's only,
// whatever the umask.
func TestNewDatabaseFilesAreOwnerOnly(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	path := filepath.Join(t.TempDir(), "ward.db")
	st, err := sqlite.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AuditHead(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatalf("%s: %v", suffix, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("ward.db%s has mode %#o, want 0600", suffix, perm)
		}
	}
}
