package alerts

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of rule. Each rule of a configuration has one kind and an id
// (the alert's ledger Detail); several rules may share a kind.
const (
	KindReadsPerHour = "reads-per-hour"  // a user's disclosed records in a window above Threshold
	KindOutsideHours = "outside-hours"   // PHI access outside Start..End in Timezone (or on a weekend)
	KindFlagged      = "flagged-patient" // access to a patient carrying one of Labels
	KindRefusals     = "refusals"        // Threshold refused requests by one user in a window
	KindBreakGlass   = "break-glass"     // emergency (break-the-glass) access
	KindBulkExport   = "bulk-export"     // an action of Actions (bulk export kick-off or download)
	KindNewAddress   = "new-address"     // a login from an address (keyed hash) the user never used
	KindSameFamily   = "same-family"     // a user reading a patient sharing their family name
	KindIntegrity    = "integrity"       // stored content failed its integrity check (an action of Actions)
)

var kinds = []string{KindReadsPerHour, KindOutsideHours, KindFlagged, KindRefusals, KindBreakGlass, KindBulkExport, KindNewAddress, KindSameFamily, KindIntegrity}

// Rule is one configured rule. Fields a kind does not use must be absent.
type Rule struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Threshold: reads-per-hour (records disclosed), refusals (refused
	// requests). The alert fires once per user and window when the count
	// reaches it.
	Threshold int `json:"threshold,omitempty"`
	// Window of the counting rules and of alert de-duplication
	// (a Go duration, "1h" by default).
	Window Duration `json:"window,omitempty"`
	// Actions the rule looks at (reads-per-hour, outside-hours,
	// flagged-patient, same-family: the disclosing actions; bulk-export:
	// the export actions). Defaults per kind.
	Actions []string `json:"actions,omitempty"`
	// Outside-hours: working hours "HH:MM" (Start inclusive, End
	// exclusive) in Timezone (IANA name, UTC by default); Weekends also
	// counts Saturday and Sunday as outside.
	Start    string `json:"start,omitempty"`
	End      string `json:"end,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	Weekends bool   `json:"weekends,omitempty"`
	// Flagged-patient: the security label codes that flag a patient.
	Labels []string `json:"labels,omitempty"`
	// New-address: how many addresses are remembered per user (16).
	Remember int `json:"remember,omitempty"`

	loc        *time.Location
	start, end int // minutes after midnight
	actions    map[string]bool
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON parses "90m", "1h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a duration string such as \"1h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return errors.New("must be a positive duration such as \"1h\"")
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is a rules file: {"rules": [...]}.
type Config struct {
	Rules []Rule `json:"rules"`
}

// ReadActions are the ledger actions that disclose PHI, the default of the
// rules that look at reads.
var ReadActions = []string{"read", "vread", "search-type", "search-system", "search-compartment",
	"history-instance", "history-type", "history-system", "everything-instance", "everything-type",
	"export-read", "export-download", "async-download", "merge", "merge-preview"}

// ExportActions are the default actions of the bulk-export rule.
var ExportActions = []string{"export-kickoff"}

// IntegrityActions are the default actions of the integrity rule: a
// Binary's sealed content failed its check on download (records writes
// the record, with a serious outcome).
var IntegrityActions = []string{"binary-integrity"}

//go:embed default_rules.json
var defaultRules []byte

// Default returns the rules shipped with Ward (default_rules.json).
func Default() *Config {
	c, err := Parse(defaultRules)
	if err != nil {
		panic("alerts: shipped default rules do not parse: " + err.Error())
	}
	return c
}

// maxRules bounds a configuration.
const maxRules = 256

// Parse reads a rules file strictly: unknown fields, unknown kinds,
// duplicate ids and values out of range are errors naming the rule (by
// position) and the field, never quoting the file.
func Parse(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("alert rules: %s", jsonProblem(err))
	}
	if dec.More() {
		return nil, errors.New("alert rules: trailing data after the JSON object")
	}
	if len(c.Rules) > maxRules {
		return nil, fmt.Errorf("alert rules: %d rules, at most %d", len(c.Rules), maxRules)
	}
	seen := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		if err := r.prepare(); err != nil {
			return nil, fmt.Errorf("alert rules: rule %d: %w", i+1, err)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("alert rules: rule %d: id %s used twice", i+1, r.ID)
		}
		seen[r.ID] = true
	}
	return &c, nil
}

// jsonProblem describes a decoding error without the input's values.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "invalid JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case strings.Contains(err.Error(), "duration"):
		return "window " + err.Error()
	}
	return "not a rules object"
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (r *Rule) prepare() error {
	if !validID(r.ID) {
		return errors.New("id must be 1-64 characters of a-z, 0-9, '-', '_', '.'")
	}
	if !slices.Contains(kinds, r.Kind) {
		return fmt.Errorf("%s: kind must be one of %s", r.ID, strings.Join(kinds, ", "))
	}
	if r.Window == 0 {
		r.Window = Duration(time.Hour)
	}
	uses := map[string]bool{}
	switch r.Kind {
	case KindReadsPerHour, KindRefusals:
		uses["threshold"] = true
		if r.Threshold < 1 || r.Threshold > 1_000_000 {
			return fmt.Errorf("%s: threshold must be 1..1000000", r.ID)
		}
	case KindOutsideHours:
		uses["hours"] = true
		var err error
		if r.start, err = clock(r.Start); err != nil {
			return fmt.Errorf("%s: start %w", r.ID, err)
		}
		if r.end, err = clock(r.End); err != nil {
			return fmt.Errorf("%s: end %w", r.ID, err)
		}
		tz := r.Timezone
		if tz == "" {
			tz = "UTC"
		}
		if r.loc, err = time.LoadLocation(tz); err != nil {
			return fmt.Errorf("%s: timezone is not a known IANA zone", r.ID)
		}
	case KindFlagged:
		uses["labels"] = true
		if len(r.Labels) == 0 {
			return fmt.Errorf("%s: labels must name at least one security label code", r.ID)
		}
	case KindNewAddress:
		uses["remember"] = true
		if r.Remember == 0 {
			r.Remember = 16
		}
		if r.Remember < 1 || r.Remember > 1024 {
			return fmt.Errorf("%s: remember must be 1..1024", r.ID)
		}
	}
	if !uses["threshold"] && r.Threshold != 0 {
		return fmt.Errorf("%s: threshold is not a field of kind %s", r.ID, r.Kind)
	}
	if !uses["hours"] && (r.Start != "" || r.End != "" || r.Timezone != "" || r.Weekends) {
		return fmt.Errorf("%s: start, end, timezone and weekends are not fields of kind %s", r.ID, r.Kind)
	}
	if !uses["labels"] && len(r.Labels) != 0 {
		return fmt.Errorf("%s: labels is not a field of kind %s", r.ID, r.Kind)
	}
	if !uses["remember"] && r.Remember != 0 {
		return fmt.Errorf("%s: remember is not a field of kind %s", r.ID, r.Kind)
	}
	acts := r.Actions
	if len(acts) == 0 {
		switch r.Kind {
		case KindReadsPerHour, KindOutsideHours, KindFlagged, KindSameFamily:
			acts = ReadActions
		case KindBulkExport:
			acts = ExportActions
		case KindIntegrity:
			acts = IntegrityActions
		}
	} else if r.Kind == KindRefusals || r.Kind == KindBreakGlass || r.Kind == KindNewAddress {
		return fmt.Errorf("%s: actions is not a field of kind %s", r.ID, r.Kind)
	}
	r.actions = map[string]bool{}
	for _, a := range acts {
		if !validID(a) {
			return fmt.Errorf("%s: an action must be 1-64 characters of a-z, 0-9, '-', '_', '.'", r.ID)
		}
		r.actions[a] = true
	}
	return nil
}

// clock parses "HH:MM" into minutes after midnight.
func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, errors.New("must be a time of day HH:MM")
	}
	return t.Hour()*60 + t.Minute(), nil
}
