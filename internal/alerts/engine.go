package alerts

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// ActionAlert is the ledger action of an alert; its Detail is the rule id.
const ActionAlert = "alert"

// Facts answers what a rule needs beyond the ledger record. Both answers
// are about coded or keyed values (security label codes, blind indexes of
// family names), never plaintext. An error stops processing at the record
// that needed it, so the caller retries from there later rather than miss
// an alert.
type Facts interface {
	// Flagged reports whether the Patient id of tenant carries one of
	// the security label codes labels.
	Flagged(tenant, patient string, labels []string) (bool, error)
	// SameFamily reports whether the user actor and the Patient share a
	// family name, compared by blind index.
	SameFamily(tenant, actor, patient string) (bool, error)
}

// Alert is one rule firing on one ledger record.
type Alert struct {
	Rule     string // the rule id
	Kind     string
	Tenant   string
	Actor    string // the user or client whose activity fired it
	Seq      int64  // the ledger record that fired it
	Time     time.Time
	Patients []string // Patient ids involved, if any
	Count    int      // the count that reached a threshold, if any
}

// Record is the ledger record of a: action "alert", detail the rule id,
// entities the user, the triggering record and the patients, all ids.
func (a Alert) Record() *audit.Record {
	ents := make([]string, 0, 2+len(a.Patients))
	if a.Actor != "" {
		ents = append(ents, "user/"+a.Actor)
	}
	ents = append(ents, "ledger/"+strconv.FormatInt(a.Seq, 10))
	for _, p := range a.Patients {
		ents = append(ents, "Patient/"+p)
	}
	return &audit.Record{
		Time: a.Time, Tenant: a.Tenant, RequestID: "alert-" + strconv.FormatInt(a.Seq, 10),
		Actor: "alert-engine", Role: "system", Action: ActionAlert, Entities: ents, Detail: a.Rule,
	}
}

// State is what the rules remember between records: window counters,
// fired alerts (for de-duplication within a window) and the addresses
// each user logged in from, all keyed by rule, tenant and user ids. It is
// saved as JSON with the cursor.
type State struct {
	Counts    map[string]*Count   `json:"counts,omitempty"`
	Fired     map[string]int64    `json:"fired,omitempty"` // key -> end of its window (Unix s)
	Addresses map[string][]string `json:"addresses,omitempty"`
	Swept     int64               `json:"swept,omitempty"` // last sweep of passed windows (Unix s)
}

// Count is a counter of one user in one window.
type Count struct {
	End int64 `json:"end"` // window end, Unix seconds
	N   int   `json:"n"`
}

// Marshal encodes s for saving.
func (s *State) Marshal() ([]byte, error) { return json.Marshal(s) }

// LoadState decodes a saved state; nil or empty is a fresh state.
func LoadState(b []byte) (*State, error) {
	s := &State{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("alert state: %w", err)
		}
	}
	if s.Counts == nil {
		s.Counts = map[string]*Count{}
	}
	if s.Fired == nil {
		s.Fired = map[string]int64{}
	}
	if s.Addresses == nil {
		s.Addresses = map[string][]string{}
	}
	return s, nil
}

// Engine evaluates a rule set. It is immutable and safe for concurrent
// use; the State is not.
type Engine struct {
	rules []Rule
	facts Facts
}

// New returns an engine over c's rules consulting f.
func New(c *Config, f Facts) *Engine { return &Engine{rules: c.Rules, facts: f} }

// Rules returns the engine's rules.
func (e *Engine) Rules() []Rule { return e.rules }

// sweepEvery is how often passed windows are dropped from the state.
const sweepEvery = 60

// Process evaluates every rule on r, updating s and calling emit for each
// alert. After an error (from Facts) s may be partly updated: the caller
// discards it, with the alerts of the batch, and retries from its saved
// cursor and state later.
func (e *Engine) Process(s *State, r *audit.Record, emit func(Alert)) error {
	if r.Action == ActionAlert {
		return nil
	}
	now := r.Time.Unix()
	if now >= s.Swept+sweepEvery {
		s.sweep(now)
	}
	for i := range e.rules {
		if err := e.rule(&e.rules[i], s, r, now, emit); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) sweep(now int64) {
	for k, c := range s.Counts {
		if c.End <= now {
			delete(s.Counts, k)
		}
	}
	for k, end := range s.Fired {
		if end <= now {
			delete(s.Fired, k)
		}
	}
	s.Swept = now
}

// windowEnd is the end of the fixed window of length w holding t.
func windowEnd(t int64, w Duration) int64 {
	sec := int64(time.Duration(w) / time.Second)
	if sec <= 0 {
		sec = 1
	}
	return (t/sec + 1) * sec
}

func key(parts ...string) string { return strings.Join(parts, "\x1f") }

// once reports whether k has not fired in r's window, and marks it fired.
func (s *State) once(k string, end int64) bool {
	if e, ok := s.Fired[k]; ok && e == end {
		return false
	}
	s.Fired[k] = end
	return true
}

// patients returns the Patient ids among r's entities ("Patient/id" or
// "Patient/id/_history/n"), without duplicates.
func patients(r *audit.Record) []string {
	var out []string
	for _, e := range r.Entities {
		rest, ok := strings.CutPrefix(e, "Patient/")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func (e *Engine) rule(ru *Rule, s *State, r *audit.Record, now int64, emit func(Alert)) error {
	fire := func(pats []string, count int) {
		emit(Alert{Rule: ru.ID, Kind: ru.Kind, Tenant: r.Tenant, Actor: r.Actor, Seq: r.Seq, Time: r.Time, Patients: pats, Count: count})
	}
	ok := r.Outcome == audit.OutcomeSuccess
	switch ru.Kind {
	case KindReadsPerHour:
		if !ok || r.Actor == "" || !ru.actions[r.Action] {
			return nil
		}
		end := windowEnd(now, ru.Window)
		k := key(ru.ID, r.Tenant, r.Actor)
		c := s.Counts[k]
		if c == nil || c.End != end {
			c = &Count{End: end}
			s.Counts[k] = c
		}
		before := c.N
		c.N += max(1, len(r.Entities))
		if before < ru.Threshold && c.N >= ru.Threshold {
			fire(nil, c.N)
		}
	case KindRefusals:
		if r.Outcome != audit.OutcomeMinor || r.Actor == "" {
			return nil
		}
		end := windowEnd(now, ru.Window)
		k := key(ru.ID, r.Tenant, r.Actor)
		c := s.Counts[k]
		if c == nil || c.End != end {
			c = &Count{End: end}
			s.Counts[k] = c
		}
		c.N++
		if c.N == ru.Threshold {
			fire(nil, c.N)
		}
	case KindOutsideHours:
		if !ok || r.Actor == "" || !ru.actions[r.Action] || ru.within(r.Time) {
			return nil
		}
		if s.once(key(ru.ID, r.Tenant, r.Actor), windowEnd(now, ru.Window)) {
			fire(patients(r), 0)
		}
	case KindBreakGlass:
		if !r.Emergency || r.Actor == "" {
			return nil
		}
		if s.once(key(ru.ID, r.Tenant, r.Actor), windowEnd(now, ru.Window)) {
			fire(patients(r), 0)
		}
	case KindBulkExport:
		if ok && ru.actions[r.Action] {
			fire(nil, 0)
		}
	case KindIntegrity:
		// The record of a failure: whatever its outcome, each one.
		if ru.actions[r.Action] {
			fire(nil, 0)
		}
	case KindNewAddress:
		if !ok || r.Action != "login" || r.Actor == "" {
			return nil
		}
		for _, ent := range r.Entities {
			addr, found := strings.CutPrefix(ent, "client-address/")
			if !found {
				continue
			}
			k := key(ru.ID, r.Tenant, r.Actor)
			known := s.Addresses[k]
			if i := slices.Index(known, addr); i >= 0 {
				// Most recent last, so the cap forgets the stalest.
				s.Addresses[k] = append(slices.Delete(known, i, i+1), addr)
				continue
			}
			// A user's first login teaches their first address.
			if len(known) > 0 {
				fire(nil, 0)
			}
			known = append(known, addr)
			if len(known) > ru.Remember {
				known = known[len(known)-ru.Remember:]
			}
			s.Addresses[k] = known
		}
	case KindFlagged, KindSameFamily:
		if !ok || r.Actor == "" || !ru.actions[r.Action] {
			return nil
		}
		var hit []string
		for _, p := range patients(r) {
			yes, err := e.check(ru, r, p)
			if err != nil {
				return err
			}
			if yes && s.once(key(ru.ID, r.Tenant, r.Actor, p), windowEnd(now, ru.Window)) {
				hit = append(hit, p)
			}
		}
		if len(hit) > 0 {
			fire(hit, 0)
		}
	}
	return nil
}

func (e *Engine) check(ru *Rule, r *audit.Record, patient string) (bool, error) {
	if ru.Kind == KindSameFamily {
		yes, err := e.facts.SameFamily(r.Tenant, r.Actor, patient)
		if err != nil {
			return false, fmt.Errorf("alert rule %s: family of a patient: %w", ru.ID, err)
		}
		return yes, nil
	}
	yes, err := e.facts.Flagged(r.Tenant, patient, ru.Labels)
	if err != nil {
		return false, fmt.Errorf("alert rule %s: labels of a patient: %w", ru.ID, err)
	}
	return yes, nil
}

// within reports whether t is inside the rule's working hours.
func (ru *Rule) within(t time.Time) bool {
	lt := t.In(ru.loc)
	if ru.Weekends && (lt.Weekday() == time.Saturday || lt.Weekday() == time.Sunday) {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	if ru.start <= ru.end {
		return m >= ru.start && m < ru.end
	}
	return m >= ru.start || m < ru.end // a night shift across midnight
}
