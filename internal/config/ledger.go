package config

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Ledger holds the settings of the ledger (issue #26): what makes it
// verifiable without trusting the database (checkpoints, witnesses,
// archives: checkpoint.go, docs/ledger.md) and its consumers, the alert
// engine and the SIEM exporters.
type Ledger struct {
	// CheckpointInterval is how often serve extends the Merkle tree and
	// signs a checkpoint when the ledger grew; 0: never (the CLI still can).
	CheckpointInterval time.Duration
	// CheckpointOrigin names the log in checkpoints and its key; empty:
	// the host of WARD_BASE_URL followed by /audit, or ward/audit.
	CheckpointOrigin string
	// WitnessDir receives each new checkpoint as a file; empty: none.
	WitnessDir string
	// WitnessURLs receive each new checkpoint by POST; empty: none.
	WitnessURLs []string
	// Cosigners are C2SP tlog-witness endpoints that get each new
	// checkpoint with a consistency proof and answer a cosignature,
	// verified with their key; empty: none.
	Cosigners []Cosigner
	// WitnessLogKeys is a file of the verifier keys of the logs this
	// node witnesses (POST /audit/witness/add-checkpoint); empty: it
	// witnesses none.
	WitnessLogKeys string
	// ArchiveDir holds the archive files of `ward audit archive`; empty:
	// audit-archive under the data directory.
	ArchiveDir string
	// Retention is how long records stay in the live ledger at least:
	// archiving newer ones needs --force-within-retention.
	Retention time.Duration

	AlertRules    string        // rules file (JSON); empty: the shipped defaults
	AlertInterval time.Duration // how often `ward serve` evaluates new records; 0: off

	SyslogAddr   string // host:port of an RFC 5424 receiver over TCP (RFC 6587 octet counting)
	SyslogTLSCA  string // PEM CA file: syslog over TLS verified against it
	SyslogTLS    bool   // syslog over TLS verified against the system roots
	HTTPURL      string // URL receiving JSON lines (POST batches)
	HTTPCA       string // PEM CA file for HTTPURL
	HTTPAuth     string // Authorization header value sent with each batch
	SIEMInterval time.Duration
	SIEMBatch    int
}

func defaultLedger() Ledger {
	return Ledger{CheckpointInterval: time.Minute, Retention: SixYears,
		AlertInterval: 10 * time.Second, SIEMInterval: 5 * time.Second, SIEMBatch: 500}
}

// Loopback reports whether host:port names a loopback address (plain TCP
// and plain HTTP are allowed only there).
func Loopback(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		h = hostport
	}
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func parseInterval(v string, dst *time.Duration, lo, hi time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil || (d != 0 && (d < lo || d > hi)) || d < 0 {
		return errors.New("must be 0 (off) or a duration between " + lo.String() + " and " + hi.String())
	}
	*dst = d
	return nil
}

var ledgerSettings = []setting{
	{"WARD_ALERT_RULES", "alert-rules", "JSON file of alert rules (docs/alerts.md); empty: the shipped defaults", false,
		func(c *Config) string { return c.Ledger.AlertRules }, func(c *Config, v string) error { c.Ledger.AlertRules = v; return nil }},
	{"WARD_ALERT_INTERVAL", "alert-interval", "how often `ward serve` runs the alert rules over new ledger records (Go duration, 1s to 1h; 0: off)", false,
		func(c *Config) string { return c.Ledger.AlertInterval.String() }, func(c *Config, v string) error {
			return parseInterval(v, &c.Ledger.AlertInterval, time.Second, time.Hour)
		}},
	{"WARD_SIEM_SYSLOG_ADDR", "siem-syslog-addr", "host:port of a syslog receiver: ledger records stream there as RFC 5424 over TCP (octet counting, RFC 6587), over TLS unless the host is loopback and no TLS setting is given (docs/siem.md); empty: off", false,
		func(c *Config) string { return c.Ledger.SyslogAddr }, func(c *Config, v string) error {
			if v != "" {
				if _, p, err := net.SplitHostPort(v); err != nil || p == "" {
					return errors.New("must be host:port")
				}
			}
			c.Ledger.SyslogAddr = v
			return nil
		}},
	{"WARD_SIEM_SYSLOG_TLS_CA", "siem-syslog-tls-ca", "PEM file of the CA that signed the syslog receiver's certificate (implies TLS)", false,
		func(c *Config) string { return c.Ledger.SyslogTLSCA }, func(c *Config, v string) error { c.Ledger.SyslogTLSCA = v; return nil }},
	{"WARD_SIEM_SYSLOG_TLS", "siem-syslog-tls", "true: syslog over TLS verified against the system roots even to a loopback host (always so to other hosts)", false,
		func(c *Config) string { return strconv.FormatBool(c.Ledger.SyslogTLS) }, func(c *Config, v string) error { return parseBool(v, &c.Ledger.SyslogTLS) }},
	{"WARD_SIEM_HTTP_URL", "siem-http-url", "https:// URL (http:// only to a loopback host) that receives ledger records as JSON lines, POSTed in batches; empty: off", true,
		func(c *Config) string { return c.Ledger.HTTPURL }, func(c *Config, v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(u.Scheme == "http" && Loopback(u.Host))) {
					return errors.New("must be an https:// URL without credentials (http:// only to a loopback host)")
				}
			}
			c.Ledger.HTTPURL = v
			return nil
		}},
	{"WARD_SIEM_HTTP_AUTHORIZATION", "", "value of the Authorization header sent with each batch to WARD_SIEM_HTTP_URL (e.g. Bearer <token>, or Splunk <token> for Splunk HEC); empty: none", true,
		func(c *Config) string { return c.Ledger.HTTPAuth }, func(c *Config, v string) error {
			if strings.ContainsAny(v, "\r\n") {
				return errors.New("must be one line")
			}
			c.Ledger.HTTPAuth = v
			return nil
		}},
	{"WARD_SIEM_HTTP_CA", "siem-http-ca", "PEM file of the CA of WARD_SIEM_HTTP_URL's certificate; empty: the system roots", false,
		func(c *Config) string { return c.Ledger.HTTPCA }, func(c *Config, v string) error { c.Ledger.HTTPCA = v; return nil }},
	{"WARD_SIEM_INTERVAL", "siem-interval", "how often the SIEM exporters look for new ledger records (Go duration, 100ms to 1h)", false,
		func(c *Config) string { return c.Ledger.SIEMInterval.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 100*time.Millisecond || d > time.Hour {
				return errors.New("must be a duration between 100ms and 1h")
			}
			c.Ledger.SIEMInterval = d
			return nil
		}},
	intSetting("WARD_SIEM_BATCH", "siem-batch", "most ledger records one SIEM delivery carries", 1, 100000,
		func(c *Config) *int { return &c.Ledger.SIEMBatch }),
}

func init() {
	settings = append(settings, ledgerSettings...)
	boolFlags["siem-syslog-tls"] = true
}
