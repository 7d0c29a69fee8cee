package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/alerts"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// BenchmarkAlertRunner is issue #26's "alert rules keep up with 20,000
// ledger records per second on one core" for the whole pipeline `ward
// serve` runs, not the engine alone (BenchmarkRules, internal/alerts):
// AlertRunner.Step reads the new records from the ledger, answers the
// flagged-patient and same-family rules from the search index (keyed
// hashes), evaluates the eight default rules, and commits the alerts,
// the cursor and the rules' state. The ledger: 40 users linked to
// Practitioners with family names, 1,000 Patients (1% VIP, family names
// from the same list of 30), records as in BenchmarkRules (80% reads of
// one patient, 20% searches disclosing ten, some refusals and logins).
// Each iteration appends 5,000 records (untimed) and times the runner
// catching up. Run on one core:
//
//	go test ./internal/app -run '^$' -bench AlertRunner -cpu 1 -benchtime 10x
//
// It fails below 20,000 records per second of CPU on runs of at least
// 50,000 records. Before the facts of a batch were read in bulk
// (storeFacts.prefetch) it ran at ~2,200 records/s: one statement per
// patient and per (practitioner, patient) of each record.
func BenchmarkAlertRunner(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) { benchAlertRunner(b, be) })
	}
}

func benchAlertRunner(b *testing.B, be apptest.Backend) {
	w := apptest.Start(b, be)
	ctx := context.Background()
	admin := w.Tokens[authz.RoleAdmin]
	families := make([]string, 30)
	for i := range families {
		families[i] = fmt.Sprintf("Family%c%c", 'A'+i%26, 'a'+i/26)
	}
	put := func(path, body string) {
		if r := w.Do(b, "PUT", path, admin, []byte(body)); r.Status/100 != 2 {
			b.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
		}
	}
	var users []string
	for i := range 40 {
		pr := fmt.Sprint("bpr", i)
		put("/fhir/Practitioner/"+pr, fmt.Sprintf(`{"resourceType":"Practitioner","id":"%s","name":[{"family":"%s"}]}`, pr, families[i%len(families)]))
		u := &store.User{Practitioner: pr}
		users = append(users, apptest.AddLinkedUser(b, w.App.Store, w.Config.Tenant, fmt.Sprint("bench-nurse-", i), authz.RoleNurse, u))
	}
	const patients = 1000
	for i := range patients {
		sec := ""
		if i%100 == 0 {
			sec = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VIP"}]},`
		}
		put(fmt.Sprint("/fhir/Patient/bp", i), fmt.Sprintf(`{"resourceType":"Patient","id":"bp%d",%s"name":[{"family":"%s"}]}`, i, sec, families[(i*7)%len(families)]))
	}
	cpuNow := processCPU
	if be == apptest.Postgres {
		// The server's backends do the batch queries: count them too.
		db := openRaw(b, w)
		cpuNow = func() time.Duration { return processCPU() + backendCPU(b, db) }
	}
	runner := w.App.NewAlertRunner(alerts.Default())
	catchUp := func() (read, raised int) {
		for {
			n, a, err := runner.Step(ctx)
			if err != nil {
				b.Fatal(err)
			}
			read += n
			raised += a
			if n == 0 {
				return
			}
		}
	}
	catchUp() // the set-up's own records
	rng := rand.New(rand.NewPCG(3, 4))
	rec := store.NewRecorder(w.App.Store)
	at := time.Now().Add(-time.Hour)
	total, alertsRaised := 0, 0
	var busy, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		for range 50 {
			rs := make([]*audit.Record, 100)
			for j := range rs {
				at = at.Add(time.Millisecond)
				actor := users[rng.IntN(len(users))]
				r := &audit.Record{Time: at, Tenant: w.Config.Tenant, RequestID: "bench", Actor: actor, Role: "nurse", Action: "read",
					ResourceType: "Patient", Entities: []string{fmt.Sprint("Patient/bp", rng.IntN(patients), "/_history/1")}}
				switch x := rng.IntN(100); {
				case x < 20:
					r.Action = "search-type"
					for range 9 {
						r.Entities = append(r.Entities, fmt.Sprint("Patient/bp", rng.IntN(patients), "/_history/1"))
					}
				case x < 23:
					r.Outcome, r.Detail = audit.OutcomeMinor, "no-care-relationship"
				case x < 26:
					r.Action, r.ResourceType, r.Entities = "login", "", []string{"user/" + actor, fmt.Sprint("client-address/", rng.IntN(4))}
				}
				for _, e := range r.Entities {
					if rest, ok := strings.CutPrefix(e, "Patient/"); ok {
						id, _, _ := strings.Cut(rest, "/")
						r.Patients = append(r.Patients, id)
					}
				}
				slices.Sort(r.Patients)
				r.Patients = slices.Compact(r.Patients)
				rs[j] = r
			}
			if err := rec.Record(ctx, rs...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpuNow()
		n, a := catchUp()
		busy += time.Since(t0)
		cpu += cpuNow() - c0
		total += n
		alertsRaised += a
	}
	rate := float64(total) / busy.Seconds()
	b.ReportMetric(rate, "records/s")
	// Per second of CPU (this process, and on PostgreSQL the server's
	// backends of the database): what one core sustains, whatever else
	// the machine runs.
	b.ReportMetric(float64(total)/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(alertsRaised)/float64(max(total, 1))*1000, "alerts/1k")
	// The target is per core: checked on CPU time, which another
	// process's load on a shared machine does not stretch as it does the
	// wall clock (records/s is reported beside it).
	if perCPU := float64(total) / cpu.Seconds(); total >= 50_000 && perCPU < 20_000 {
		b.Errorf("%.0f records per CPU-second, want at least 20,000 (run with -cpu 1)", perCPU)
	}
}
