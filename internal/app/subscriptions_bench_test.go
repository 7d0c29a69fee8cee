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
func BenchmarkSubscriptionLag(b *testing.B) {
	w := apptest.Start(b, apptest.SQLite, func(c *config.Config) { c.Events.WebhookSync = 100 * time.Millisecond })
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
	tick := time.NewTicker(time.Second / 2000)
	defer tick.Stop()
	next := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://example.org","code":"c%d"}]},"subject":{"reference":"Patient/%s"}}`, i%subs, pid)
				r := w.Do(b, http.MethodPost, "/fhir/Observation", admin, []byte(body))
				if r.Status != 201 {
					b.Errorf("create: %d", r.Status)
					return
				}
				id, _ := r.JSON(b)["id"].(string)
				mu.Lock()
				sent[i], obsIDs[i] = time.Now(), id
				mu.Unlock()
			}
		}()
	}
	for i := range b.N {
		<-tick.C
		next <- i
	}
	close(next)
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	wait := time.Now().Add(60 * time.Second)
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
			b.Fatalf("%d of %d notifications arrived", n, b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	lags := make([]time.Duration, b.N)
	mu.Lock()
	for i, id := range obsIDs {
		lags[i] = max(got[id].Sub(sent[i]), 0)
	}
	mu.Unlock()
	slices.Sort(lags)
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}
