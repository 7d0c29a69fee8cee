package authn

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"testing"
)

// FuzzParseJWKS: registered key sets are admin input, but parse as if
// hostile: no panic, and every key returned is a usable public key.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`,
		`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-384","x":"","y":""}]}`,
		`{"keys":null}`, `[]`, `{"keys":[{"kty":"RSA","e":"AAAAAAAA"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseJWKS(b)
		if err != nil {
			return
		}
		for kid, k := range keys {
			switch pk := k.(type) {
			case *rsa.PublicKey:
				if pk.N.BitLen() < 2048 {
					t.Fatalf("%s: short RSA key accepted", kid)
				}
			case *ecdsa.PublicKey:
				if !pk.Curve.IsOnCurve(pk.X, pk.Y) {
					t.Fatalf("%s: point off the curve accepted", kid)
				}
			default:
				t.Fatalf("%s: %T", kid, k)
			}
		}
	})
}
