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
