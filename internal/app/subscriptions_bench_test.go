package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// BenchmarkSubscriptionLag: 100 active rest-hook Subscriptions (id-only,
// each on its own Observation code, to its own loopback receiver) and one
// more whose endpoint refuses connections; b.N Observations are created
// by 8 writers as fast as the server takes them (paced to at most
// 2,000/s), each matching one Subscription. Reported: the achieved
// change rate and the p50/p99 delivery lag (create answered -> its
// notification received).
func BenchmarkSubscriptionLag(b *testing.B) { benchLag(b, apptest.SQLite, 1) }

// BenchmarkSubscriptionLagBundles is BenchmarkSubscriptionLag with the
// changes made by transaction Bundles of 100 Observations, 20 a second
// (2,000 changes/s) at most: the rate the issue names, which single
// creates cannot reach on a small machine. The lag of an Observation is
// from its Bundle's answer to its notification. It runs on both
// databases (sub-benchmarks sqlite and postgres). Besides the lag it
// reports the rate reached (reached-2000 is 1 when it is at least 1,990
// changes/s, 0 when the server or the machine did not keep up: the lag
// is then not the lag at 2,000/s) and this process's CPU per change
// (cpu-us/change: the writers, the server, the receivers and, on SQLite,
// the database; on PostgreSQL the database's share is not in it), which
// a loaded, shared machine stretches least.
func BenchmarkSubscriptionLagBundles(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) { benchLag(b, be, 100) })
	}
}

// benchLag drives b.N Observation creates, per in one request (1: a
// create, more: a transaction Bundle), paced to 2,000 changes/s.
// waitSeconds bounds the wait for the last notifications.
var waitSeconds = 60

func benchLag(b *testing.B, backend apptest.Backend, per int) {
	w := apptest.Start(b, backend, func(c *config.Config) { c.Events.WebhookSync = 100 * time.Millisecond })
	const subs = 100
	var mu sync.Mutex
	got := map[string]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var bundle struct {
			Entry []struct {
				FullURL string `json:"fullUrl"`
			} `json:"entry"`
		}
		json.NewDecoder(r.Body).Decode(&bundle)
		now := time.Now()
		mu.Lock()
		for _, e := range bundle.Entry {
			if i := strings.Index(e.FullURL, "Observation/"); i >= 0 {
				got[e.FullURL[i+len("Observation/"):]] = now
			}
		}
		mu.Unlock()
	}))
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connections refused from now on
	admin := w.Tokens[authz.RoleAdmin]
	var ids []string
	for i := 0; i <= subs; i++ {
		url := fmt.Sprintf("%s/s%d", srv.URL, i)
		if i == subs {
			url = deadURL
		}
		r := w.Do(b, http.MethodPost, "/fhir/Subscription", admin, []byte(subscription(url, fmt.Sprintf("Observation?code=http://example.org|c%d", i%subs), subscriptions.IDOnly)))
		if r.Status != 201 {
			b.Fatalf("create subscription: %d %s", r.Status, r.Body)
		}
		id, _ := r.JSON(b)["id"].(string)
		ids = append(ids, id)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range ids[:subs] {
		for {
			r := w.Do(b, http.MethodGet, "/fhir/Subscription/"+id, admin, nil)
			if s, _ := r.JSON(b)["status"].(string); s == "active" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("subscriptions not active")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pid := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","active":true}`)
	sent := make([]time.Time, b.N)
	obsIDs := make([]string, b.N)
	requests := (b.N + per - 1) / per
	tick := time.NewTicker(time.Duration(per) * time.Second / 2000)
	defer tick.Stop()
	next := make(chan int)
	var wg sync.WaitGroup
	obs := func(i int) string {
		return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://example.org","code":"c%d"}]},"subject":{"reference":"Patient/%s"}}`, i%subs, pid)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				first, last := k*per, min(b.N, (k+1)*per)
				if per == 1 {
					r := w.Do(b, http.MethodPost, "/fhir/Observation", admin, []byte(obs(first)))
					if r.Status != 201 {
						b.Errorf("create: %d", r.Status)
						return
					}
					id, _ := r.JSON(b)["id"].(string)
					mu.Lock()
					sent[first], obsIDs[first] = time.Now(), id
					mu.Unlock()
					continue
				}
				var es []string
				for i := first; i < last; i++ {
					es = append(es, `{"resource":`+obs(i)+`,"request":{"method":"POST","url":"Observation"}}`)
				}
				r := w.Do(b, http.MethodPost, "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`))
				if r.Status != 200 {
					b.Errorf("transaction: %d %s", r.Status, r.Body)
					return
				}
				var resp struct {
					Entry []struct {
						Response struct {
							Location string `json:"location"`
						} `json:"response"`
					} `json:"entry"`
				}
				if err := json.Unmarshal(r.Body, &resp); err != nil || len(resp.Entry) != last-first {
					b.Errorf("transaction answer: %v, %d entries", err, len(resp.Entry))
					return
				}
				now := time.Now()
				mu.Lock()
				for j, e := range resp.Entry {
					// [base/]Observation/<id>/_history/1
					loc := e.Response.Location
					if i := strings.Index(loc, "Observation/"); i >= 0 {
						loc = loc[i+len("Observation/"):]
					}
					id, _, _ := strings.Cut(loc, "/")
					sent[first+j], obsIDs[first+j] = now, id
				}
				mu.Unlock()
			}
		}()
	}
	for k := range requests {
		if k > 0 {
			<-tick.C // the first request goes at once
		}
		next <- k
	}
	close(next)
	wg.Wait()
	// The rate is that of the answers: the changes after the first
	// request's over the time from its answer to the last. Counting the
	// whole run from the first send would add one request's latency to
	// forty pacing intervals, and the rate could never show 2,000/s.
	rate := float64(b.N) / time.Since(start).Seconds()
	if requests > 1 {
		first, last := slices.MinFunc(sent, time.Time.Compare), slices.MaxFunc(sent, time.Time.Compare)
		rate = float64(b.N-per) / last.Sub(first).Seconds()
	}
	wait := time.Now().Add(time.Duration(waitSeconds) * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, id := range obsIDs {
			if _, ok := got[id]; ok {
				n++
			}
		}
		mu.Unlock()
		if n == b.N {
			break
		}
		if time.Now().After(wait) {
			for _, id := range ids[:3] {
				r := w.Do(b, http.MethodGet, "/fhir/Subscription/"+id, admin, nil)
				m := r.JSON(b)
				b.Logf("subscription %s: status %v, error %v", id, m["status"], m["error"])
			}
			b.Fatalf("%d of %d notifications arrived", n, b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu := processCPU() - cpu0
	b.StopTimer()
	lags := make([]time.Duration, b.N)
	mu.Lock()
	for i, id := range obsIDs {
		lags[i] = max(got[id].Sub(sent[i]), 0)
	}
	mu.Unlock()
	slices.Sort(lags)
	b.ReportMetric(rate, "changes/s")
	reached := 0.0
	if rate >= 1990 {
		reached = 1
	} else if b.N > per {
		b.Logf("2,000 changes/s not reached: %.0f/s (the lag below is at that rate)", rate)
	}
	b.ReportMetric(reached, "reached-2000")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/change")
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}
