package siem

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
)

// Event is the JSON form of one ledger record (one line of the JSON
// lines format; the MSG of a syslog message).
type Event struct {
	Seq       int64    `json:"seq"`
	Time      string   `json:"time"` // RFC 3339, UTC, microseconds
	Tenant    string   `json:"tenant"`
	RequestID string   `json:"request_id,omitempty"`
	Actor     string   `json:"actor,omitempty"`
	Role      string   `json:"role,omitempty"`
	Action    string   `json:"action"`
	Type      string   `json:"resource_type,omitempty"`
	Entities  []string `json:"entities,omitempty"`
	Outcome   int      `json:"outcome"`
	Detail    string   `json:"detail,omitempty"`
	Emergency bool     `json:"emergency,omitempty"`
	Purpose   string   `json:"purpose,omitempty"`
	Hash      string   `json:"hash"` // hex of the record's chain hash
}

const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// EventOf is the event of r.
func EventOf(r *audit.Record) Event {
	return Event{Seq: r.Seq, Time: r.Time.UTC().Format(timeLayout), Tenant: r.Tenant, RequestID: r.RequestID,
		Actor: r.Actor, Role: r.Role, Action: r.Action, Type: r.ResourceType, Entities: r.Entities,
		Outcome: int(r.Outcome), Detail: r.Detail, Emergency: r.Emergency, Purpose: r.Purpose,
		Hash: hex.EncodeToString(r.Hash[:])}
}

// AppendJSON appends r as one JSON line (with its newline).
func AppendJSON(dst []byte, r *audit.Record) []byte {
	b, _ := json.Marshal(EventOf(r)) // strings and ints only: cannot fail
	dst = append(dst, b...)
	return append(dst, '\n')
}

// Syslog facility "log audit" (13) of RFC 5424, severities notice (5) for
// a success, warning (4) for a refusal or failure, alert (1) for an alert.
const (
	facilityAudit   = 13
	severityAlert   = 1
	severityWarning = 4
	severityNotice  = 5
)

// SDID is the structured data id of Ward's fields. 32473 is the private
// enterprise number RFC 5612 reserves for documentation; an operator
// with their own number may map it in the receiver.
const SDID = "ward@32473"

// AppendSyslog appends r as an RFC 5424 message (without framing):
//
//	<PRI>1 TIME HOST ward - ACTION [ward@32473 seq="" tenant="" ...] JSON
//
// HOST and ACTION are reduced to printable ASCII (RFC 5424 §6), parameter
// values are escaped (", \ and ]), and the MSG is the record's JSON event.
func AppendSyslog(dst []byte, host string, r *audit.Record) []byte {
	sev := severityNotice
	switch {
	case r.Action == "alert":
		sev = severityAlert
	case r.Outcome != audit.OutcomeSuccess:
		sev = severityWarning
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, facilityAudit*8+int64(sev), 10)
	dst = append(dst, ">1 "...)
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, ' ')
	dst = appendToken(dst, host, 255)
	dst = append(dst, " ward - "...)
	dst = appendToken(dst, r.Action, 32)
	dst = append(dst, " ["+SDID...)
	dst = appendParam(dst, "seq", strconv.FormatInt(r.Seq, 10))
	dst = appendParam(dst, "tenant", r.Tenant)
	dst = appendParam(dst, "actor", r.Actor)
	dst = appendParam(dst, "role", r.Role)
	dst = appendParam(dst, "action", r.Action)
	dst = appendParam(dst, "type", r.ResourceType)
	dst = appendParam(dst, "outcome", strconv.Itoa(int(r.Outcome)))
	dst = appendParam(dst, "detail", r.Detail)
	dst = appendParam(dst, "emergency", strconv.FormatBool(r.Emergency))
	dst = appendParam(dst, "purpose", r.Purpose)
	dst = appendParam(dst, "request", r.RequestID)
	dst = append(dst, "] "...)
	dst = AppendJSON(dst, r)
	return dst[:len(dst)-1] // the MSG ends without the line's newline
}

// appendToken writes s as a header field: printable US-ASCII without
// spaces, at most max characters, "-" when empty.
func appendToken(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	n := 0
	for i := 0; i < len(s) && n < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
		n++
	}
	return dst
}

var paramEscaper = strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`)

func appendParam(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	dst = append(dst, paramEscaper.Replace(v)...)
	return append(dst, '"')
}

// Frame appends msg with RFC 6587 octet-counting framing: "LEN SP MSG".
func Frame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}
