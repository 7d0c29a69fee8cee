package transit

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzCiphertextVersion: the version of a wrapped key read back from the
// database never panics, and is found only in a "vault:vN:" prefix.
func FuzzCiphertextVersion(f *testing.F) {
	for _, s := range []string{"vault:v1:abc", "vault:v12:", "vault:v:x", "vault:v-1:x", "vault:v99999999999999999999:x", "", "\x01\x02"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ciphertextVersion(s)
		if err != nil {
			return
		}
		if v < 1 || !strings.HasPrefix(s, "vault:v"+strconv.Itoa(v)+":") {
			t.Fatalf("%q: version %d", s, v)
		}
	})
}
