package authn

import "time"

// SetJWKSMinRefresh changes the JWKS refresh rate limit for a test.
func SetJWKSMinRefresh(d time.Duration) (restore func()) {
	old := jwksMinRefresh
	jwksMinRefresh = d
	return func() { jwksMinRefresh = old }
}
