// Package pkcs11test finds the PKCS#11 token the tests run against
// (SoftHSM in CI, see .ci/run): WARD_TEST_PKCS11_MODULE, _TOKEN and _PIN,
// with SOFTHSM2_CONF naming SoftHSM's token directory. Without them a test
// is skipped, unless WARD_TEST_REQUIRE_SOFTHSM=1, when it fails.
package pkcs11test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/wardhealth/ward/internal/keys/pkcs11"
)

// Config returns the test token's configuration with a key label of its
// own, so that tests (and packages tested in parallel) sharing the token
// do not share KEK versions.
func Config(t testing.TB) pkcs11.Config {
	t.Helper()
	c := pkcs11.Config{Module: os.Getenv("WARD_TEST_PKCS11_MODULE"), TokenLabel: os.Getenv("WARD_TEST_PKCS11_TOKEN"), Pin: os.Getenv("WARD_TEST_PKCS11_PIN")}
	if c.Module == "" || c.TokenLabel == "" {
		if os.Getenv("WARD_TEST_REQUIRE_SOFTHSM") == "1" {
			t.Fatal("WARD_TEST_REQUIRE_SOFTHSM=1 but WARD_TEST_PKCS11_MODULE or WARD_TEST_PKCS11_TOKEN is not set")
		}
		t.Skip("no PKCS#11 token: set WARD_TEST_PKCS11_MODULE, WARD_TEST_PKCS11_TOKEN, WARD_TEST_PKCS11_PIN (see .ci/run)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	c.KeyLabel = "ward-test-" + hex.EncodeToString(b)
	return c
}
