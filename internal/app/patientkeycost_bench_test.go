package app_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/loadgen"
)

// BenchmarkPatientKeyCost compares per-patient data keys with tenant keys
// only, both servers in this process (and, on PostgreSQL, the CPU of each
// server's own database backends counted with it). Each round runs, for
// each operation, a phase of requests against one server then the other
// (the order alternates between rounds) from 8 concurrent HTTP clients,
// and takes the ratio patient/tenant of CPU time per request and of wall
// time per request: a loaded machine slows both phases of a pair alike,
// so the median of many short paired rounds is stable where absolute
// times are not. Reported per operation: the median CPU µs/request of
// each mode, the median ratios, and the spread of the CPU ratio (the
// lower and upper quartiles, as q1/q3).
//
// Operations: read (GET an Observation of one of 20 patients), search (a
// page of one patient's 20 Observations, subject=...), create-patient (a
// new Patient: its key is made, wrapped and stored with it) and
// create-obs (an Observation of an existing patient). After the first
// round every patient's key is in the cache: it measures the steady
// state, whose extra cost the cache bounds to one unwrap per patient per
// lifetime (unwraps/patient reports the unwraps of the measured rounds per
// patient read, which must be 0 within a cache lifetime).
//
//	WARD_TEST_POSTGRES=... go test ./internal/app -run '^$' -bench PatientKeyCost -benchtime 1x
//
// WARD_BENCH_ROUNDS sets the rounds (default 12), WARD_BENCH_PHASE the
// requests per phase (default 160), WARD_BENCH_OPS a comma-separated
// subset of the operations; WARD_BENCH_AA=1 makes both servers tenant-key
// servers (an A/A run: its ratios show the bench's own bias and noise).
func BenchmarkPatientKeyCost(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) { benchPatientKeyCost(b, be) })
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type pkServer struct {
	w    *apptest.Ward
	pats []string
	obs  []string
	cpu  func() time.Duration
}

func benchPatientKeyCost(b *testing.B, be apptest.Backend) {
	rounds, phase, clients := envInt("WARD_BENCH_ROUNDS", 24), envInt("WARD_BENCH_PHASE", 100), envInt("WARD_BENCH_CLIENTS", 4)
	const patients, perPatient = 20, 20
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = loadgen.SyntheticPatient(rng)
	}
	obsBody := func(p string) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"pulse"},"subject":{"reference":"Patient/` + p + `"},"valueQuantity":{"value":72,"unit":"/min"}}`)
	}
	post := func(w *apptest.Ward, typ string, body []byte) *http.Request {
		req, _ := http.NewRequest("POST", w.URL+"/"+typ, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
		req.Header.Set("Content-Type", "application/fhir+json")
		return req
	}
	get := func(w *apptest.Ward, path string) *http.Request {
		req, _ := http.NewRequest("GET", w.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
		return req
	}
	idOf := func(body []byte) string {
		var m struct{ ID string }
		if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
			b.Fatalf("no id in %s", body)
		}
		return m.ID
	}
	modes := []string{"tenant", "patient"}
	servers := make([]pkServer, 2)
	for i, mode := range modes {
		var opts []app.Option
		if mode == "tenant" || os.Getenv("WARD_BENCH_AA") != "" {
			opts = []app.Option{app.WithTenantKeysOnly()}
		}
		w := apptest.StartWith(b, be, opts, benchLimits)
		// The checkpointer's periodic tree work is the same for both and
		// lands in one phase or another: it is stopped.
		w.App.Proof.Stop()
		s := pkServer{w: w, cpu: processCPU}
		if be == apptest.Postgres {
			db, err := sql.Open("pgx", w.Config.DatabaseURL)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			db.SetMaxOpenConns(1)
			s.cpu = func() time.Duration { return processCPU() + backendCPU(b, db) }
		}
		for p := range patients {
			pid := idOf(do(b, client, post(w, "Patient", bodies[p]), 201))
			s.pats = append(s.pats, pid)
			for range perPatient {
				s.obs = append(s.obs, idOf(do(b, client, post(w, "Observation", obsBody(pid)), 201)))
			}
		}
		servers[i] = s
	}
	ops := []string{"read", "search", "create-patient", "create-obs"}
	if o := os.Getenv("WARD_BENCH_OPS"); o != "" {
		ops = strings.Split(o, ",")
	}
	var seq atomic.Int64
	request := func(s pkServer, op string) (*http.Request, int) {
		i := int(seq.Add(1))
		switch op {
		case "read":
			return get(s.w, "/Observation/"+s.obs[i%len(s.obs)]), 200
		case "search":
			return get(s.w, "/Observation?subject=Patient/"+s.pats[i%len(s.pats)]+"&_count=20"), 200
		case "create-patient":
			return post(s.w, "Patient", bodies[i%len(bodies)]), 201
		default:
			return post(s.w, "Observation", obsBody(s.pats[i%len(s.pats)])), 201
		}
	}
	run := func(s pkServer, op string) (cpu, wall time.Duration) {
		var left atomic.Int64
		left.Store(int64(phase))
		// The garbage of the phase before (the other server's) is
		// collected first, not charged to this one.
		runtime.GC()
		c0, t0 := s.cpu(), time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					req, want := request(s, op)
					do(b, client, req, want)
				}
			})
		}
		wg.Wait()
		return (s.cpu() - c0) / time.Duration(phase), time.Since(t0) / time.Duration(phase)
	}
	// A first round warms both (connections, caches, every patient key).
	for _, op := range ops {
		for _, s := range servers {
			run(s, op)
		}
	}
	km := servers[1].w.App.Keys
	var u0 int64
	if u, ok := any(km).(interface{ PatientUnwraps() int64 }); ok {
		u0 = u.PatientUnwraps()
	}
	cpus := map[string][]float64{}
	sums := map[string][]time.Duration{} // cpu, wall per round, in pairs
	var cpuRatio, wallRatio = map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for b.Loop() {
		for r := range rounds {
			for _, op := range ops {
				var c, w [2]time.Duration
				for k := range 2 {
					i := (k + r) % 2 // alternate which goes first
					c[i], w[i] = run(servers[i], op)
				}
				sums[op+"/tenant"] = append(sums[op+"/tenant"], c[0], w[0])
				sums[op+"/patient"] = append(sums[op+"/patient"], c[1], w[1])
				cpus[op+"/tenant"] = append(cpus[op+"/tenant"], float64(c[0].Microseconds()))
				cpus[op+"/patient"] = append(cpus[op+"/patient"], float64(c[1].Microseconds()))
				cpuRatio[op] = append(cpuRatio[op], float64(c[1])/float64(c[0]))
				wallRatio[op] = append(wallRatio[op], float64(w[1])/float64(w[0]))
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for _, op := range ops {
		lo, mid, hi := medianCI(cpuRatio[op])
		wlo, wmid, whi := medianCI(wallRatio[op])
		b.ReportMetric(median(cpus[op+"/tenant"]), op+"-tenant-cpu-µs/req")
		b.ReportMetric(median(cpus[op+"/patient"]), op+"-patient-cpu-µs/req")
		b.ReportMetric(mid, op+"-cpu-ratio")
		b.ReportMetric(wmid, op+"-wall-ratio")
		sr, slo, shi := sumRatio(sums[op+"/tenant"], sums[op+"/patient"])
		b.ReportMetric(sr, op+"-cpu-sum-ratio")
		b.Logf("%s %s: total cpu ratio %.3f (bootstrap 95%% CI %.3f–%.3f)", be, op, sr, slo, shi)
		b.Logf("%s %s: cpu ratio median %.3f (95%% CI %.3f–%.3f), wall ratio median %.3f (95%% CI %.3f–%.3f); cpu ratio per round:%s",
			be, op, mid, lo, hi, wmid, wlo, whi, ratios(cpuRatio[op]))
	}
	// The extra unwraps: none while every patient's key stays cached.
	// (A build without the counter, the one before, reports none.)
	if u, ok := any(km).(interface{ PatientUnwraps() int64 }); ok {
		b.ReportMetric(float64(u.PatientUnwraps()-u0)/patients, "unwraps/patient")
	}
}

// medianCI returns the median of v and a distribution-free 95%
// confidence interval for it (order statistics n/2 ± 0.98·√n): the
// spread that says whether a ratio's median is within 10% or not.
func medianCI(v []float64) (lo, mid, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0, 0, 0
	}
	d := 0.98 * math.Sqrt(float64(n))
	j := max(int(math.Floor(float64(n)/2-d)), 0)
	k := min(int(math.Ceil(float64(n)/2+d)), n-1)
	return s[j], median(s), s[k]
}

// sumRatio is the ratio of the patient phases' total CPU to the tenant
// phases' (pairs of cpu, wall per round), with a bootstrap 95% interval
// over rounds: lumps of work (a WAL checkpoint, a collection) that land
// in one phase or the other average out over the rounds.
func sumRatio(tenant, patient []time.Duration) (r, lo, hi float64) {
	n := len(tenant) / 2
	ratio := func(pick func(int) int) float64 {
		var t, p time.Duration
		for i := range n {
			j := pick(i)
			t, p = t+tenant[2*j], p+patient[2*j]
		}
		return float64(p) / float64(max(t, 1))
	}
	r = ratio(func(i int) int { return i })
	rng := rand.New(rand.NewPCG(7, 7))
	boot := make([]float64, 1000)
	for k := range boot {
		boot[k] = ratio(func(int) int { return rng.IntN(n) })
	}
	slices.Sort(boot)
	return r, boot[25], boot[974]
}

func ratios(v []float64) string {
	out := ""
	for _, x := range v {
		out += fmt.Sprintf(" %.2f", x)
	}
	return out
}
