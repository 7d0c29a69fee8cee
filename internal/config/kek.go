package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// KEK says where the key-encryption key lives (issue #29, docs/keys.md):
// a local file (WARD_KEY_FILE, WARD_KEY or the generated development
// key), a PKCS#11 token, or a Vault/OpenBao transit engine.
type KEK struct {
	// Provider is "file" (default), "pkcs11" or "transit".
	Provider string
	// PKCS11Module is the PKCS#11 library; PKCS11Token the token label,
	// PKCS11PIN its user PIN, PKCS11KeyLabel the label of the KEK versions.
	PKCS11Module, PKCS11Token, PKCS11PIN, PKCS11KeyLabel string
	// TransitAddr is the Vault/OpenBao server, TransitToken the token,
	// TransitMount the engine's mount, TransitKey the transit key's name.
	TransitAddr, TransitToken, TransitMount, TransitKey string
	// CacheTTL is how long a running node keeps serving from its unwrapped
	// data keys once the KEK stops answering; then it fails closed.
	CacheTTL time.Duration
	// ProbeInterval is how often a running node checks the KEK answers.
	ProbeInterval time.Duration
	// PreviousFiles are earlier key files (a list in the form of PATH) of
	// a file KEK: they still unwrap keys wrapped before a node moved to
	// the current file, which alone wraps. A node restarted on a new file
	// keeps reading every record while rotate-kek moves the keys.
	PreviousFiles []string
}

func kekDefaults() KEK {
	return KEK{Provider: "file", PKCS11KeyLabel: "ward-kek", TransitMount: "transit", TransitKey: "ward",
		CacheTTL: 5 * time.Minute, ProbeInterval: 15 * time.Second}
}

func durationSetting(env, flag, doc string, lo, hi time.Duration, field func(*Config) *time.Duration) setting {
	return setting{env: env, flag: flag, doc: doc,
		get: func(c *Config) string { return field(c).String() },
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < lo || d > hi {
				return fmt.Errorf("must be a duration between %s and %s", lo, hi)
			}
			*field(c) = d
			return nil
		}}
}

var kekSettings = []setting{
	{env: "WARD_KEK_PROVIDER", flag: "kek-provider", doc: "where the key-encryption key lives: file (WARD_KEY_FILE, WARD_KEY or the generated development key), pkcs11 (an HSM) or transit (Vault/OpenBao)",
		get: func(c *Config) string { return c.KEK.Provider }, set: func(c *Config, v string) error {
			switch v {
			case "file", "pkcs11", "transit":
				c.KEK.Provider = v
				return nil
			}
			return errors.New("must be file, pkcs11 or transit")
		}},
	stringSetting("WARD_PKCS11_MODULE", "pkcs11-module", "path of the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)", false, func(c *Config) *string { return &c.KEK.PKCS11Module }, nil),
	stringSetting("WARD_PKCS11_TOKEN", "pkcs11-token", "label of the PKCS#11 token holding the key-encryption key", false, func(c *Config) *string { return &c.KEK.PKCS11Token }, nil),
	stringSetting("WARD_PKCS11_PIN", "", "user PIN of the PKCS#11 token", true, func(c *Config) *string { return &c.KEK.PKCS11PIN }, nil),
	stringSetting("WARD_PKCS11_KEY_LABEL", "pkcs11-key-label", "label of the key-encryption key versions in the token (<label>.1, <label>.2, ...)", false, func(c *Config) *string { return &c.KEK.PKCS11KeyLabel }, nil),
	{env: "WARD_TRANSIT_ADDR", flag: "transit-addr", doc: "address of the Vault/OpenBao server whose transit engine holds the key-encryption key (https://...)",
		get: func(c *Config) string { return c.KEK.TransitAddr }, set: func(c *Config, v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return errors.New("must be an http(s) URL")
				}
			}
			c.KEK.TransitAddr = v
			return nil
		}},
	stringSetting("WARD_TRANSIT_TOKEN", "", "Vault/OpenBao token for the transit engine", true, func(c *Config) *string { return &c.KEK.TransitToken }, nil),
	stringSetting("WARD_TRANSIT_MOUNT", "transit-mount", "mount path of the transit engine", false, func(c *Config) *string { return &c.KEK.TransitMount }, nil),
	stringSetting("WARD_TRANSIT_KEY", "transit-key", "name of the transit key (created derived, aes256-gcm96, if missing)", false, func(c *Config) *string { return &c.KEK.TransitKey }, nil),
	{env: "WARD_KEK_PREVIOUS_FILES", flag: "kek-previous-files", doc: "earlier key files of a file key-encryption key, separated like PATH: they only unwrap keys not yet moved to WARD_KEY_FILE by ward keys rotate-kek",
		get: func(c *Config) string { return strings.Join(c.KEK.PreviousFiles, string(filepath.ListSeparator)) },
		set: func(c *Config, v string) error {
			c.KEK.PreviousFiles = nil
			for _, f := range filepath.SplitList(v) {
				if f != "" {
					c.KEK.PreviousFiles = append(c.KEK.PreviousFiles, f)
				}
			}
			return nil
		}},
	durationSetting("WARD_KEK_CACHE_TTL", "kek-cache-ttl", "how long a running node keeps serving from its unwrapped data keys after the key-encryption key stops answering; then requests fail with 503 until it answers again", time.Second, 24*time.Hour,
		func(c *Config) *time.Duration { return &c.KEK.CacheTTL }),
	durationSetting("WARD_KEK_PROBE_INTERVAL", "kek-probe-interval", "how often a running node checks that the key-encryption key answers", 100*time.Millisecond, time.Hour,
		func(c *Config) *time.Duration { return &c.KEK.ProbeInterval }),
}

func init() { settings = append(settings, kekSettings...) }

// CheckKEK reports a provider without what it needs.
func (c Config) CheckKEK() error {
	switch c.KEK.Provider {
	case "pkcs11":
		if c.KEK.PKCS11Module == "" || c.KEK.PKCS11Token == "" {
			return errors.New("WARD_KEK_PROVIDER=pkcs11 needs WARD_PKCS11_MODULE and WARD_PKCS11_TOKEN (and WARD_PKCS11_PIN)")
		}
	case "transit":
		if c.KEK.TransitAddr == "" || c.KEK.TransitToken == "" {
			return errors.New("WARD_KEK_PROVIDER=transit needs WARD_TRANSIT_ADDR and WARD_TRANSIT_TOKEN")
		}
	}
	if len(c.KEK.PreviousFiles) > 0 && c.KEK.Provider != "file" {
		return errors.New("WARD_KEK_PREVIOUS_FILES is for a key file KEK; pkcs11 and transit keep their own versions")
	}
	return nil
}
