package alerts

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// stream is a realistic ledger: 500 users over 20,000 patients (1% VIP),
// mostly reads and searches (a search discloses ~10 records), some
// writes, refusals, logins from a few addresses, rare break-glass and
// exports, one record every 20 ms.
func stream(n int) []*audit.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	t := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	out := make([]*audit.Record, n)
	for i := range out {
		actor := fmt.Sprint("user-", rng.IntN(500))
		p := fmt.Sprint("Patient/p", rng.IntN(20000), "/_history/1")
		r := &audit.Record{Seq: int64(i + 1), Time: t.Add(time.Duration(i) * 20 * time.Millisecond), Tenant: "t1",
			RequestID: fmt.Sprint("req-", i), Actor: actor, Role: "nurse", Action: "read", ResourceType: "Patient", Entities: []string{p}}
		switch x := rng.IntN(100); {
		case x < 20:
			r.Action = "search-type"
			for range 9 {
				r.Entities = append(r.Entities, fmt.Sprint("Patient/p", rng.IntN(20000), "/_history/1"))
			}
		case x < 30:
			r.Action, r.ResourceType, r.Entities = "create", "Observation", []string{fmt.Sprint("Observation/o", i, "/_history/1")}
		case x < 33:
			r.Outcome, r.Detail = audit.OutcomeMinor, "no-care-relationship"
		case x < 36:
			r.Action, r.ResourceType, r.Entities = "login", "", []string{"user/" + actor, fmt.Sprint("client-address/", rng.IntN(4))}
		case x == 36 && rng.IntN(10) == 0:
			r.Emergency = true
		case x == 37 && rng.IntN(100) == 0:
			r.Action = "export-kickoff"
		}
		out[i] = r
	}
	return out
}

type benchFacts struct{ labels map[string][]string }

func (f benchFacts) Flagged(_, p string, want []string) (bool, error) {
	for _, l := range f.labels[p] {
		if slices.Contains(want, l) {
			return true, nil
		}
	}
	return false, nil
}

func (f benchFacts) SameFamily(_, a, p string) (bool, error) { return len(a)+len(p) == 17, nil }

// BenchmarkRules runs the default rules over a realistic stream and
// reports records per second (run with -cpu 1: the engine is one
// goroutine).
func BenchmarkRules(b *testing.B) {
	recs := stream(100_000)
	f := benchFacts{labels: map[string][]string{}}
	for i := range 200 {
		f.labels[fmt.Sprint("p", i*100)] = []string{"VIP"}
	}
	e := New(Default(), f)
	s, _ := LoadState(nil)
	alerts := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r := recs[i%len(recs)]
		if i > 0 && i%len(recs) == 0 {
			s, _ = LoadState(nil) // the stream's clock starts over
		}
		if err := e.Process(s, r, func(Alert) { alerts++ }); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "records/s")
	// Issue #26's target; checked on runs long enough to mean something.
	if b.N >= 50_000 && rate < 20_000 {
		b.Errorf("%.0f records/s on one core, want at least 20,000", rate)
	}
	b.ReportMetric(float64(alerts)/float64(b.N)*1000, "alerts/1k")
}
