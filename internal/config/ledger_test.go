package config

import (
	"strings"
	"testing"
	"time"
)

func TestLedgerSettings(t *testing.T) {
	c := Default()
	if c.Ledger.AlertInterval != 10*time.Second || c.Ledger.SIEMBatch != 500 || c.Ledger.SyslogAddr != "" || c.Ledger.HTTPURL != "" {
		t.Fatalf("defaults: %+v", c.Ledger)
	}
	if err := c.FromEnv([]string{"WARD_ALERT_RULES=/etc/ward/rules.json", "WARD_ALERT_INTERVAL=0", "WARD_SIEM_SYSLOG_ADDR=siem.example.org:6514",
		"WARD_SIEM_SYSLOG_TLS_CA=/etc/ward/siem-ca.pem", "WARD_SIEM_HTTP_URL=https://siem.example.org/ingest", "WARD_SIEM_INTERVAL=2s", "WARD_SIEM_BATCH=100",
		"WARD_SIEM_SYSLOG_TLS=true"}); err != nil {
		t.Fatal(err)
	}
	l := c.Ledger
	if l.AlertRules != "/etc/ward/rules.json" || l.AlertInterval != 0 || l.SyslogAddr != "siem.example.org:6514" || !l.SyslogTLS ||
		l.HTTPURL != "https://siem.example.org/ingest" || l.SIEMInterval != 2*time.Second || l.SIEMBatch != 100 {
		t.Fatalf("%+v", l)
	}
	for _, bad := range []string{"WARD_SIEM_SYSLOG_ADDR=siem.example.org", "WARD_SIEM_HTTP_URL=http://siem.example.org/x",
		"WARD_SIEM_HTTP_URL=https://user:secret@siem.example.org/", "WARD_ALERT_INTERVAL=10ms", "WARD_SIEM_BATCH=0", "WARD_SIEM_INTERVAL=1ms"} {
		c := Default()
		err := c.FromEnv([]string{bad})
		if err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error echoes a secret: %v", err)
		}
	}
	c = Default()
	if err := c.FromEnv([]string{"WARD_SIEM_HTTP_URL=http://127.0.0.1:9000/x"}); err != nil {
		t.Errorf("plain HTTP to loopback refused: %v", err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:514": true, "[::1]:514": true, "localhost:514": true, "10.0.0.1:514": false, "siem:514": false} {
		if Loopback(addr) != want {
			t.Errorf("Loopback(%s) = %v", addr, !want)
		}
	}
}

// TestCosignerSettings: cosigners parse as <URL>=<key> (a key ending in
// '=' padding too) and print back; a bad URL or key is refused.
func TestCosignerSettings(t *testing.T) {
	key := "witness.example.org+1f2e3d4c+BEvOfyGX5rDmTDnOrnvNvbFnDDu6PCFJvnV4pF0X6mZ6"
	c := Default()
	if err := c.FromEnv([]string{"WARD_CHECKPOINT_COSIGNERS=https://w.example.org/wit/=" + key + ", http://127.0.0.1:8080=" + key, "WARD_WITNESS_LOG_KEYS=/etc/ward/logs.keys"}); err != nil {
		t.Fatal(err)
	}
	cs := c.Ledger.Cosigners
	if len(cs) != 2 || cs[0].URL != "https://w.example.org/wit" || cs[0].Key != key || cs[1].URL != "http://127.0.0.1:8080" || c.Ledger.WitnessLogKeys != "/etc/ward/logs.keys" {
		t.Fatalf("%+v", c.Ledger)
	}
	if got := formatCosigners(cs); got != "https://w.example.org/wit="+key+",http://127.0.0.1:8080="+key {
		t.Fatalf("printed %q", got)
	}
	for _, bad := range []string{"ftp://w.example.org=" + key, "https://w.example.org", "https://w.example.org=" + key[:len(key)-4],
		"https://w.example.org=witness+zzzzzzzz+BEvOfyGX5rDmTDnOrnvNvbFnDDu6PCFJvnV4pF0X6mZ6", "https://w.example.org=witness+1f2e3d4c+AkvOfyGX5rDmTDnOrnvNvbFnDDu6PCFJvnV4pF0X6mZ6"} {
		c := Default()
		if err := c.FromEnv([]string{"WARD_CHECKPOINT_COSIGNERS=" + bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
