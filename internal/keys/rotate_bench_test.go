//go:build unix

package keys_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// BenchmarkRotateKEK re-wraps every wrapped data key of a SQLite database
// to a new key file (issue #29: 1,000,000 keys in under a minute). The
// rows are built first, wrapped under the old KEK, outside the timer.
// WARD_BENCH_KEYS overrides the count (default 1,000,000).
//
//	go test ./internal/keys -run '^$' -bench RotateKEK -benchtime 1x -timeout 30m
func BenchmarkRotateKEK(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("WARD_BENCH_KEYS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "w.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	keks := make([]*seal.KEK, 2)
	for i := range keks {
		keks[i], _ = seal.NewKEK(bytes.Repeat([]byte{byte(i + 1)}, 32))
	}
	buildStart := time.Now()
	buildKeys(b, st, keks[0], n)
	b.Logf("built %d wrapped keys in %s", n, time.Since(buildStart).Round(time.Millisecond))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each round moves every key to the other KEK.
		to, from := keks[(i+1)%2], keks[i%2]
		start, cpu0 := time.Now(), cpuTime()
		rep, err := keys.RotateKEK(ctx, st, keys.NewFileWrapper(to, from), keys.RotateOptions{Batch: 5000})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Rewrapped != n {
			b.Fatalf("re-wrapped %d of %d", rep.Rewrapped, n)
		}
		el := time.Since(start)
		b.ReportMetric(float64(n)/el.Seconds(), "keys/s")
		b.ReportMetric(el.Seconds(), "s/rotation")
		// On a shared machine the wall time says little: the CPU time
		// the process spent is what an idle machine would need at most
		// (the re-wrap and the commit overlap).
		b.ReportMetric((cpuTime() - cpu0).Seconds(), "cpu-s/rotation")
	}
}

// buildKeys stores n tenant data keys wrapped under kek, 10,000 a unit.
func buildKeys(b *testing.B, st store.Store, kek *seal.KEK, n int) {
	ctx := context.Background()
	dek := bytes.Repeat([]byte{9}, 32)
	now := time.Now()
	const unit = 10_000
	for i := 0; i < n; i += unit {
		parts := make([]store.Part, 0, unit)
		for j := i; j < n && j < i+unit; j++ {
			tenant := fmt.Sprintf("t%07d", j)
			id := "t/" + tenant + "/1"
			w, err := kek.WrapDEK(id, dek)
			if err != nil {
				b.Fatal(err)
			}
			parts = append(parts, store.NewKey{Key: &store.Key{ID: id, Purpose: keys.DataKeyPurpose, Tenant: tenant, Scope: keys.TenantScope, Version: 1, KEK: kek.ID(), Wrapped: w, Created: now}})
		}
		if err := st.Commit(ctx, &store.Unit{Parts: parts}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotateData re-seals every version of a tenant under a new
// data-key version (issue #29: at least 5,000 resources a second), no
// throttle. WARD_BENCH_VERSIONS overrides the count (default 20,000:
// 10,000 resources with two versions each).
//
//	go test ./internal/keys -run '^$' -bench RotateData -benchtime 1x
func BenchmarkRotateData(b *testing.B) {
	n := 20_000
	if s := os.Getenv("WARD_BENCH_VERSIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "w.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m := resealManager(b, st)
	writeVersions(b, st, m, "a", n/2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start, cpu0 := time.Now(), cpuTime()
		rep, err := keys.RotateData(ctx, st, m, "a", keys.ResealOptions{Batch: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Resealed != int64(n) {
			b.Fatalf("re-sealed %d of %d", rep.Resealed, n)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "versions/s")
		b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "versions/cpu-s")
	}
}

// cpuTime is the user and system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMigratePatients moves every version of a tenant from the
// tenant's key to its patients' own keys (ward keys migrate; issue #29:
// at least 5,000 resources a second), no throttle. Each patient has
// per-1 Observations besides its Patient: per=1 is the worst case, one
// new patient key per resource. WARD_BENCH_VERSIONS overrides the count
// of resources (default 20,000).
//
//	go test ./internal/keys -run '^$' -bench MigratePatients -benchtime 1x
func BenchmarkMigratePatients(b *testing.B) {
	n := 20_000
	if s := os.Getenv("WARD_BENCH_VERSIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, per := range []int{20, 1} {
		b.Run("per="+strconv.Itoa(per), func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "w.db"), sqlstore.Options{})
				if err != nil {
					b.Fatal(err)
				}
				m := resealManager(b, st)
				writeCompartments(b, st, m, "a", n, per)
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				rep, err := keys.MigratePatients(ctx, st, m, "a", keys.MigrateOptions{Patient: compartmentRule})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Moved != int64(n) {
					b.Fatalf("moved %d of %d", rep.Moved, n)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "resources/s")
				b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "resources/cpu-s")
				b.StopTimer()
				st.Close()
			}
		})
	}
}

// compartmentRule: a Patient is its own patient, an Observation o<p>-<k>
// belongs to patient p<p>.
func compartmentRule(v store.Version, _ []byte) (string, error) {
	if v.Type == "Patient" {
		return v.ID, nil
	}
	p, _, _ := strings.Cut(strings.TrimPrefix(v.ID, "o"), "-")
	return "p" + p, nil
}

// writeCompartments stores n resources of tenant under its tenant key, as
// before per-patient keys: n/per patients, each with per-1 Observations.
func writeCompartments(b *testing.B, st store.Store, m *keys.Manager, tenant string, n, per int) {
	ctx := context.Background()
	kid, err := m.DataKey(ctx, tenant)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	u := &store.Unit{}
	for i := 0; i < n; i++ {
		p, k := i/per, i%per
		typ, id := "Patient", fmt.Sprintf("p%06d", p)
		body := `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Family","given":["Given"]}],"birthDate":"1970-01-01"}`
		if k > 0 {
			typ, id = "Observation", fmt.Sprintf("o%06d-%d", p, k)
			body = `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/p` + fmt.Sprintf("%06d", p) + `"},"valueQuantity":{"value":72,"unit":"/min"}}`
		}
		sealed, err := m.Seal(kid, []byte(body), seal.AAD(tenant, typ, id, 1))
		if err != nil {
			b.Fatal(err)
		}
		u.Writes = append(u.Writes, store.Write{Tenant: tenant, Type: typ, ID: id, Version: 1, LastUpdated: now, Body: sealed})
		if len(u.Writes) == 1000 || i == n-1 {
			if err := st.Commit(ctx, u); err != nil {
				b.Fatal(err)
			}
			u = &store.Unit{}
		}
	}
}
