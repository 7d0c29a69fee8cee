package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/config"
)

// A trusted-issuers file that is missing or wrong stops Ward at start,
// naming the setting, instead of silently trusting nobody (or anybody).
func TestTrustedIssuersFileIsCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`[{"issuer":"https://idp.example","audience":"ward","tenant":"default","role_claim":"groups","roles":{"doctors":"physician"}}]`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"issuer":"https://idp.example","audience":"ward","tenant":"default","role_claim":"groups","roles":{"doctors":"physician"},"algorithms":["none"]}]`), 0o600)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, c := range []struct {
		file, want string
	}{
		{good, ""},
		{bad, "algorithm"},
		{filepath.Join(dir, "missing.json"), "WARD_OIDC_ISSUERS"},
	} {
		cfg := config.Default()
		cfg.DataDir = filepath.Join(t.TempDir(), "d")
		cfg.OIDCIssuers = c.file
		a, err := app.Open(context.Background(), cfg, log, io.Discard)
		if c.want == "" {
			if err != nil {
				t.Fatalf("good file: %v", err)
			}
			a.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.file, err, c.want)
		}
	}
}
