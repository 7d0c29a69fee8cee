package config

import (
	"errors"
	"net/url"
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
	return []string{"checkpoint-interval", "checkpoint-origin", "checkpoint-witness-dir", "checkpoint-witness-urls", "audit-archive-dir", "audit-retention"}
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
