package alerts

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// facts is a fixed table of labels and family matches, the inputs the
// app loads from the search index (the engine is pure over them).
type facts struct {
	labels map[string][]string // patient -> labels
	family map[string]bool     // actor/patient -> same family
	err    error
}

func (f facts) Flagged(_, p string, want []string) (bool, error) {
	for _, l := range f.labels[p] {
		if slices.Contains(want, l) {
			return true, f.err
		}
	}
	return false, f.err
}
func (f facts) SameFamily(_, a, p string) (bool, error) {
	return f.family[a+"/"+p], f.err
}

var testFacts = facts{
	labels: map[string][]string{"vip": {"VIP"}, "emp": {"EMP", "R"}, "plain": {"R"}},
	family: map[string]bool{"u1/cousin": true},
}

// monday10 is a Monday at 10:00 UTC, inside the default working hours.
var monday10 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func read(at time.Time, actor string, ents ...string) *audit.Record {
	return &audit.Record{Time: at, Tenant: "t", Actor: actor, Role: "nurse", Action: "read", ResourceType: "Patient", Entities: ents}
}

// run feeds recs to the default rules with fresh state and returns the
// ids of the rules that fired, in order.
func run(t *testing.T, f Facts, recs ...*audit.Record) []string {
	t.Helper()
	e := New(Default(), f)
	s, _ := LoadState(nil)
	var fired []string
	for i, r := range recs {
		r.Seq = int64(i + 1)
		if err := e.Process(s, r, func(a Alert) { fired = append(fired, a.Rule) }); err != nil {
			t.Fatal(err)
		}
	}
	return fired
}

func many(n int, mk func(i int) *audit.Record) []*audit.Record {
	out := make([]*audit.Record, n)
	for i := range out {
		out[i] = mk(i)
	}
	return out
}

func TestDefaultRules(t *testing.T) {
	saturday := time.Date(2026, 12, 12, 11, 0, 0, 0, time.UTC)
	login := func(at time.Time, actor, addr string) *audit.Record {
		return &audit.Record{Time: at, Tenant: "t", Actor: actor, Role: "nurse", Action: "login", Entities: []string{"user/" + actor, "client-address/" + addr}}
	}
	refused := func(i int) *audit.Record {
		r := read(monday10.Add(time.Duration(i)*time.Minute), "u1", "Patient/plain")
		r.Outcome = audit.OutcomeMinor
		r.Detail = "no-care-relationship"
		return r
	}
	cases := []struct {
		rule       string
		fires      []*audit.Record
		doesNot    []*audit.Record
		firesCount int
	}{
		{"reads-per-hour",
			many(200, func(i int) *audit.Record {
				return read(monday10.Add(time.Duration(i)*time.Second), "u1", "Patient/plain")
			}),
			// 199 in one hour, then one more in the next hour: no window reaches 200.
			append(many(199, func(i int) *audit.Record {
				return read(monday10.Add(time.Duration(i)*time.Second), "u1", "Patient/plain")
			}),
				read(monday10.Add(time.Hour), "u1", "Patient/plain")), 1},
		{"outside-hours",
			[]*audit.Record{read(monday10.Add(-8*time.Hour), "u1", "Patient/plain"), read(saturday, "u2", "Patient/plain")},
			[]*audit.Record{read(monday10, "u1", "Patient/plain"), read(monday10.Add(8*time.Hour+59*time.Minute), "u1", "Patient/plain"),
				// A refused read at night disclosed nothing.
				func() *audit.Record {
					r := read(monday10.Add(-8*time.Hour), "u1")
					r.Outcome = audit.OutcomeMinor
					return r
				}()}, 2},
		{"flagged-patient",
			[]*audit.Record{read(monday10, "u1", "Patient/vip/_history/1"), read(monday10, "u1", "Patient/emp")},
			[]*audit.Record{read(monday10, "u1", "Patient/plain"), {Time: monday10, Tenant: "t", Actor: "u1", Action: "create", Entities: []string{"Patient/vip/_history/1"}}}, 2},
		{"repeated-refusals",
			many(5, refused),
			append(many(4, refused), refused(16)), 1},
		{"break-glass",
			[]*audit.Record{func() *audit.Record { r := read(monday10, "u1", "Patient/plain"); r.Emergency = true; return r }()},
			[]*audit.Record{read(monday10, "u1", "Patient/plain")}, 1},
		{"bulk-export",
			[]*audit.Record{{Time: monday10, Tenant: "t", Actor: "c1", Role: "client", Action: "export-kickoff"}},
			[]*audit.Record{{Time: monday10, Tenant: "t", Actor: "c1", Role: "client", Action: "export-kickoff", Outcome: audit.OutcomeMinor}}, 1},
		{"new-address",
			[]*audit.Record{login(monday10, "u1", "aa"), login(monday10.Add(time.Minute), "u1", "bb")},
			[]*audit.Record{login(monday10, "u1", "aa"), login(monday10.Add(time.Minute), "u1", "aa"), login(monday10, "u2", "bb")}, 1},
		{"same-family",
			[]*audit.Record{read(monday10, "u1", "Patient/cousin")},
			[]*audit.Record{read(monday10, "u2", "Patient/cousin"), read(monday10, "u1", "Patient/plain")}, 1},
		{"content-integrity",
			[]*audit.Record{{Time: monday10, Tenant: "t", Actor: "u1", Action: "binary-integrity", ResourceType: "Binary", Entities: []string{"Binary/b1/_history/1"}, Outcome: audit.OutcomeSerious, Detail: "corrupt"},
				{Time: monday10, Tenant: "t", Actor: "u1", Action: "binary-integrity", ResourceType: "Binary", Entities: []string{"Binary/b1/_history/1"}, Outcome: audit.OutcomeSerious, Detail: "corrupt"}},
			[]*audit.Record{{Time: monday10, Tenant: "t", Actor: "u1", Action: "read", ResourceType: "Binary", Entities: []string{"Binary/b1/_history/1"}, Outcome: audit.OutcomeSerious}}, 2},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.rule] = true
		t.Run(c.rule+"/fires", func(t *testing.T) {
			got := run(t, testFacts, c.fires...)
			n := 0
			for _, id := range got {
				if id == c.rule {
					n++
				}
			}
			if n != c.firesCount {
				t.Errorf("%s fired %d times, want %d (all fired: %v)", c.rule, n, c.firesCount, got)
			}
		})
		t.Run(c.rule+"/does-not", func(t *testing.T) {
			if got := run(t, testFacts, c.doesNot...); slices.Contains(got, c.rule) {
				t.Errorf("%s fired: %v", c.rule, got)
			}
		})
	}
	for _, r := range Default().Rules {
		if !seen[r.ID] {
			t.Errorf("default rule %s has no trigger test", r.ID)
		}
	}
}

func TestAlertsAreNotInputs(t *testing.T) {
	a := Alert{Rule: "break-glass", Tenant: "t", Actor: "u1", Seq: 9, Time: monday10, Patients: []string{"p"}}
	r := a.Record()
	r.Emergency = true
	if got := run(t, testFacts, r); len(got) != 0 {
		t.Errorf("an alert record fired %v", got)
	}
	if r.Action != ActionAlert || r.Detail != "break-glass" || !slices.Equal(r.Entities, []string{"user/u1", "ledger/9", "Patient/p"}) {
		t.Errorf("alert record = %+v", r)
	}
}

// TestStateSurvivesSaving: counting across a save and load of the state
// gives the alerts of one uninterrupted run.
func TestStateSurvivesSaving(t *testing.T) {
	e := New(Default(), testFacts)
	s, _ := LoadState(nil)
	n := 0
	for i := range 250 {
		if i%7 == 0 {
			b, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if s, err = LoadState(b); err != nil {
				t.Fatal(err)
			}
		}
		r := read(monday10.Add(time.Duration(i)*time.Second), "u1", "Patient/plain")
		r.Seq = int64(i + 1)
		if err := e.Process(s, r, func(Alert) { n++ }); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("%d alerts across saves, want 1", n)
	}
}

func TestStateIsBounded(t *testing.T) {
	e := New(Default(), testFacts)
	s, _ := LoadState(nil)
	for i := range 5000 {
		r := read(monday10.Add(time.Duration(i)*time.Minute), fmt.Sprint("u", i%50), "Patient/vip")
		r.Seq = int64(i + 1)
		if err := e.Process(s, r, func(Alert) {}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Counts) > 50 || len(s.Fired) > 100 {
		t.Errorf("state grew: %d counts, %d fired", len(s.Counts), len(s.Fired))
	}
}

func TestFactsErrorStops(t *testing.T) {
	e := New(Default(), facts{err: errors.New("store down")})
	s, _ := LoadState(nil)
	if err := e.Process(s, read(monday10, "u1", "Patient/x"), func(Alert) {}); err == nil {
		t.Fatal("a failing fact did not stop processing")
	}
}
