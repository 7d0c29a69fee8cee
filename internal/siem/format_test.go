package siem

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

var rec = &audit.Record{Seq: 42, Time: time.Date(2026, 12, 7, 3, 4, 5, 123456000, time.UTC), Tenant: "t1", RequestID: "req-1",
	Actor: "u-1", Role: "nurse", Action: "read", ResourceType: "Patient", Entities: []string{"Patient/p1/_history/2"},
	Outcome: audit.OutcomeMinor, Detail: `odd"detail]\x`, Purpose: "TREAT", Hash: [32]byte{1, 2}}

// rfc5424 is the header of RFC 5424 §6 with Ward's structured data.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) ward - (\S+) \[ward@32473( [a-z]+="(?:[^"\\\]]|\\["\\\]])*")*\] (\{.*\})$`)

func TestSyslogMessage(t *testing.T) {
	msg := string(AppendSyslog(nil, "node 1", rec))
	m := rfc5424.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not an RFC 5424 message: %s", msg)
	}
	if m[1] != "108" { // facility 13 (log audit) * 8 + warning (4): a refusal
		t.Errorf("PRI = %s, want 108", m[1])
	}
	if m[2] != "2026-12-07T03:04:05.123456Z" || m[3] != "node_1" || m[4] != "read" {
		t.Errorf("header fields = %q", m[2:5])
	}
	if !strings.Contains(msg, ` seq="42"`) || !strings.Contains(msg, `detail="odd\"detail\]\\x"`) {
		t.Errorf("structured data not escaped: %s", msg)
	}
	var ev Event
	if err := json.Unmarshal([]byte(m[6]), &ev); err != nil || ev.Seq != 42 || ev.Entities[0] != "Patient/p1/_history/2" || ev.Hash[:4] != "0102" {
		t.Errorf("MSG = %s (%v)", m[6], err)
	}
	if f := string(Frame(nil, []byte("abc"))); f != "3 abc" {
		t.Errorf("frame = %q", f)
	}
	alert := *rec
	alert.Action, alert.Outcome = "alert", audit.OutcomeSuccess
	if m := rfc5424.FindStringSubmatch(string(AppendSyslog(nil, "", &alert))); m == nil || m[1] != "105" || m[3] != "-" {
		t.Errorf("alert message: %v", m)
	}
}

func TestJSONLine(t *testing.T) {
	line := AppendJSON(nil, rec)
	if line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var ev map[string]any
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seq", "time", "tenant", "actor", "action", "entities", "outcome", "hash"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("field %s missing: %s", k, line)
		}
	}
}
