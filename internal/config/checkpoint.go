package config

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// SixYears is the default retention: HIPAA keeps documentation six years
// (45 CFR 164.316(b)(2)) and the accounting of disclosures covers six.
const SixYears = 6 * 8766 * time.Hour

// Origin returns the checkpoint origin: the configured one, or one made
// from the base URL.
func (c Config) Origin() string {
	if c.Ledger.CheckpointOrigin != "" {
		return c.Ledger.CheckpointOrigin
	}
	if u, err := url.Parse(c.BaseURL); err == nil && u.Host != "" {
		return u.Host + "/audit"
	}
	return "ward/audit"
}

// ArchiveDir returns the archive directory.
func (c Config) ArchiveDir() string {
	if c.Ledger.ArchiveDir != "" {
		return c.Ledger.ArchiveDir
	}
	return strings.TrimRight(c.DataDir, "/") + "/audit-archive"
}

// LedgerFlags are the settings of the ledger commands.
func LedgerFlags() []string {
	return []string{"checkpoint-interval", "checkpoint-origin", "checkpoint-witness-dir", "checkpoint-witness-urls", "checkpoint-cosigners", "witness-log-keys", "audit-archive-dir", "audit-retention"}
}

func init() {
	settings = append(settings, []setting{
		{"WARD_CHECKPOINT_INTERVAL", "checkpoint-interval", "how often serve extends the ledger's Merkle tree and signs a checkpoint when the ledger grew (Go duration, 1s to 24h; 0: never)", false,
			func(c *Config) string { return c.Ledger.CheckpointInterval.String() }, func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || (d != 0 && (d < time.Second || d > 24*time.Hour)) {
					return errors.New("must be 0 or a duration between 1s and 24h")
				}
				c.Ledger.CheckpointInterval = d
				return nil
			}},
		{"WARD_CHECKPOINT_ORIGIN", "checkpoint-origin", "the log's name in signed checkpoints and the name of its key, e.g. ward.example.org/audit; empty: the host of the base URL followed by /audit, or ward/audit", false,
			func(c *Config) string { return c.Ledger.CheckpointOrigin }, func(c *Config, v string) error {
				if v != "" && !noteName(v) {
					return errors.New("must be printable, without spaces or '+', at most 200 characters")
				}
				c.Ledger.CheckpointOrigin = v
				return nil
			}},
		{"WARD_CHECKPOINT_WITNESS_DIR", "checkpoint-witness-dir", "a directory (another disk or a mounted remote share) that receives every new signed checkpoint as a file; empty: none", false,
			func(c *Config) string { return c.Ledger.WitnessDir }, func(c *Config, v string) error {
				c.Ledger.WitnessDir = v
				return nil
			}},
		{"WARD_CHECKPOINT_WITNESS_URLS", "checkpoint-witness-urls", "http(s) URLs, comma-separated, to which every new signed checkpoint is POSTed (text/plain); empty: none", false,
			func(c *Config) string { return strings.Join(c.Ledger.WitnessURLs, ",") }, func(c *Config, v string) error {
				c.Ledger.WitnessURLs = nil
				for _, part := range strings.Split(v, ",") {
					part = strings.TrimSpace(part)
					if part == "" {
						continue
					}
					u, err := url.Parse(part)
					if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
						return errors.New("must be http:// or https:// URLs, comma-separated")
					}
					c.Ledger.WitnessURLs = append(c.Ledger.WitnessURLs, part)
				}
				return nil
			}},
		{"WARD_CHECKPOINT_COSIGNERS", "checkpoint-cosigners", "C2SP tlog-witness endpoints that cosign every new checkpoint, comma-separated, each <prefix URL>=<witness verifier key> (the checkpoint and a consistency proof are POSTed to <prefix URL>/add-checkpoint); empty: none", false,
			func(c *Config) string { return formatCosigners(c.Ledger.Cosigners) }, func(c *Config, v string) error {
				cs, err := parseCosigners(v)
				if err != nil {
					return err
				}
				c.Ledger.Cosigners = cs
				return nil
			}},
		{"WARD_WITNESS_LOG_KEYS", "witness-log-keys", "a file of the verifier keys (one a line; the key's name is the log's origin) of the Ward logs this node witnesses and cosigns at POST /audit/witness/add-checkpoint; empty: it witnesses none", false,
			func(c *Config) string { return c.Ledger.WitnessLogKeys }, func(c *Config, v string) error {
				c.Ledger.WitnessLogKeys = v
				return nil
			}},
		{"WARD_AUDIT_ARCHIVE_DIR", "audit-archive-dir", "where ward audit archive writes archive files and ward audit verify reads them; empty: audit-archive under the data directory", false,
			func(c *Config) string { return c.Ledger.ArchiveDir }, func(c *Config, v string) error {
				c.Ledger.ArchiveDir = v
				return nil
			}},
		{"WARD_AUDIT_RETENTION", "audit-retention", "records newer than this stay in the live ledger: ward audit archive refuses them without --force-within-retention (Go duration, at least 24h; default six years)", false,
			func(c *Config) string { return c.Ledger.Retention.String() }, func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d < 24*time.Hour {
					return errors.New("must be a duration of at least 24h")
				}
				c.Ledger.Retention = d
				return nil
			}},
	}...)
}

// Cosigner is a C2SP tlog-witness endpoint: its prefix URL and the
// verifier key (cosignature/v1, or a plain Ed25519 note key) of its
// cosignatures.
type Cosigner struct {
	URL string
	Key string
}

func formatCosigners(cs []Cosigner) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.URL + "=" + c.Key
	}
	return strings.Join(parts, ",")
}

func parseCosigners(v string) ([]Cosigner, error) {
	var out []Cosigner
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.LastIndex(part, "=")
		// The key's base64 may end in '=': the URL ends at the last '='
		// followed by a key name.
		for i > 0 && !strings.Contains(part[i+1:], "+") {
			i = strings.LastIndex(part[:i], "=")
		}
		if i <= 0 {
			return nil, errors.New("each cosigner must be <prefix URL>=<verifier key>")
		}
		raw, key := part[:i], part[i+1:]
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("a cosigner's URL must be http:// or https://")
		}
		if !cosignerKey(key) {
			return nil, errors.New("a cosigner's key must be a note verifier key <name>+<hash>+<base64 Ed25519 key>")
		}
		out = append(out, Cosigner{URL: strings.TrimRight(raw, "/"), Key: key})
	}
	return out, nil
}

// cosignerKey checks the form of a verifier key: name, 8 hex digits, and
// an Ed25519 public key (type 0x01 or cosignature/v1's 0x04).
func cosignerKey(k string) bool {
	parts := strings.Split(k, "+")
	if len(parts) != 3 || !noteName(parts[0]) || parts[0] == "" || len(parts[1]) != 8 {
		return false
	}
	if _, err := strconv.ParseUint(parts[1], 16, 32); err != nil {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	return err == nil && len(b) == 33 && (b[0] == 0x01 || b[0] == 0x04)
}

// noteName is what a signed note accepts as a key name.
func noteName(s string) bool {
	if len(s) > 200 || strings.ContainsAny(s, " +") {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
