package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeFHIR is a minimal in-memory Patient store.
type fakeFHIR struct {
	token      string
	failEvery  int64 // POST number n with n%failEvery == 0 answers 500 "boom"
	noLocation bool  // answer creates without Location, id in the body only
	slashLoc   bool  // Location with a trailing slash
	delay      time.Duration
	hang       bool // block until the client goes away

	posts, gets, badRequests atomic.Int64

	mu    sync.Mutex
	store map[string][]byte
	next  int
}

func (f *fakeFHIR) handler() http.Handler {
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`, http.StatusUnauthorized)
			return false
		}
		if r.Header.Get("Accept") != "application/fhir+json" {
			f.badRequests.Add(1)
		}
		if f.hang {
			// The server notices a closed connection only once the request
			// body has been consumed; the timeout is a safety net.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return false
		}
		if f.delay > 0 {
			time.Sleep(f.delay)
		}
		return true
	}
	mux.HandleFunc("POST /fhir/Patient", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		n := f.posts.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var p struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if r.Header.Get("Content-Type") != "application/fhir+json" || json.Unmarshal(body, &p) != nil || p.ResourceType != "Patient" || p.ID != "" {
			f.badRequests.Add(1)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if f.failEvery > 0 && n%f.failEvery == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		f.mu.Lock()
		if f.store == nil {
			f.store = make(map[string][]byte)
		}
		f.next++
		id := fmt.Sprintf("p-%d", f.next)
		f.store[id] = body
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		if !f.noLocation {
			loc := "http://" + r.Host + "/fhir/Patient/" + id + "/_history/1"
			if f.slashLoc {
				loc += "/"
			}
			w.Header().Set("Location", loc)
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"resourceType":"Patient","id":%q}`, id)
	})
	mux.HandleFunc("GET /fhir/Patient/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		f.gets.Add(1)
		f.mu.Lock()
		body, ok := f.store[r.PathValue("id")]
		f.mu.Unlock()
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write(body)
	})
	return mux
}

func (f *fakeFHIR) stored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.store)
}

func startFake(t *testing.T, f *fakeFHIR) string {
	t.Helper()
	if f.token == "" {
		f.token = "tok"
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func TestRunCreateMaxRequests(t *testing.T) {
	f := &fakeFHIR{}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 200, Seed: 1})
	if rep.Requests != 200 || rep.Errors != 0 || len(rep.ErrorsByStatus) != 0 {
		t.Fatalf("requests %d errors %d %v %v", rep.Requests, rep.Errors, rep.ErrorsByStatus, rep.ErrorSamples)
	}
	if got := f.posts.Load(); got != 200 {
		t.Fatalf("server saw %d POSTs, want 200", got)
	}
	if f.stored() != 200 || f.badRequests.Load() != 0 || f.gets.Load() != 0 {
		t.Fatalf("stored %d, bad %d, gets %d", f.stored(), f.badRequests.Load(), f.gets.Load())
	}
	if rep.Duration <= 0 || rep.Duration >= 5*time.Second {
		t.Fatalf("duration %v", rep.Duration)
	}
	if rep.Throughput <= 0 || rep.P50 <= 0 || rep.P50 > rep.P90 || rep.P90 > rep.P99 || rep.P99 > rep.Max || !rep.LatencyExact {
		t.Fatalf("bad stats %+v", rep)
	}
	op, ok := rep.PerOp["create"]
	if !ok || len(rep.PerOp) != 1 || op.Requests != 200 || op.P50 != rep.P50 {
		t.Fatalf("per-op %+v", rep.PerOp)
	}
	if rep.Mix != MixCreate || rep.Concurrency != 4 || rep.Preloaded != 0 {
		t.Fatalf("header fields %+v", rep)
	}
}

func TestRunRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fakeFHIR
		base func(string) string
	}{
		{"location", &fakeFHIR{}, func(s string) string { return s }},
		{"base trailing slash, location trailing slash", &fakeFHIR{slashLoc: true}, func(s string) string { return s + "/" }},
		{"id from body", &fakeFHIR{noLocation: true}, func(s string) string { return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base(startFake(t, tc.f))
			rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixRead, Concurrency: 8, Duration: 5 * time.Second, MaxRequests: 300, Preload: 40, Seed: 2})
			if rep.Requests != 300 || rep.Errors != 0 {
				t.Fatalf("requests %d errors %d %v %v", rep.Requests, rep.Errors, rep.ErrorsByStatus, rep.ErrorSamples)
			}
			if tc.f.posts.Load() != 40 || tc.f.gets.Load() != 300 || rep.Preloaded != 40 {
				t.Fatalf("posts %d gets %d preloaded %d", tc.f.posts.Load(), tc.f.gets.Load(), rep.Preloaded)
			}
			if _, ok := rep.PerOp["read"]; !ok || len(rep.PerOp) != 1 {
				t.Fatalf("per-op %+v", rep.PerOp)
			}
			if tc.f.badRequests.Load() != 0 {
				t.Fatal("server saw malformed requests")
			}
		})
	}
}

func TestRunMixed(t *testing.T) {
	f := &fakeFHIR{}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixMixed, Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 400, Preload: 20, ReadRatio: 0.5, Seed: 3})
	c, r := rep.PerOp["create"], rep.PerOp["read"]
	if rep.Requests != 400 || rep.Errors != 0 || c.Requests+r.Requests != 400 {
		t.Fatalf("requests %d (create %d read %d) errors %d", rep.Requests, c.Requests, r.Requests, rep.Errors)
	}
	// 400 fair coin flips: both sides are far from 0 (P(<100) is negligible).
	if c.Requests < 100 || r.Requests < 100 {
		t.Fatalf("unbalanced mix: create %d read %d", c.Requests, r.Requests)
	}
	if f.posts.Load() != 20+c.Requests || f.gets.Load() != r.Requests {
		t.Fatalf("server posts %d gets %d; report create %d read %d", f.posts.Load(), f.gets.Load(), c.Requests, r.Requests)
	}
	if d := rep.Throughput - c.Throughput - r.Throughput; d > 1e-6 || d < -1e-6 {
		t.Fatalf("throughput %v != %v + %v", rep.Throughput, c.Throughput, r.Throughput)
	}
}

func TestRunDefaultReadRatio(t *testing.T) {
	f := &fakeFHIR{}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixMixed, Concurrency: 2, Duration: 5 * time.Second, MaxRequests: 500, Preload: 10, Seed: 4})
	if r := rep.PerOp["read"].Requests; r < 340 || r > 460 { // 0.8*500 = 400 ± >5 sigma
		t.Fatalf("reads %d of 500 with default ratio 0.8", r)
	}
}

func TestRunServerErrors(t *testing.T) {
	f := &fakeFHIR{failEvery: 3}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 300})
	if rep.Requests != 300 || rep.Errors != 100 || rep.ErrorsByStatus[500] != 100 || len(rep.ErrorsByStatus) != 1 {
		t.Fatalf("requests %d errors %d by status %v", rep.Requests, rep.Errors, rep.ErrorsByStatus)
	}
	if op := rep.PerOp["create"]; op.Requests != 300 || op.Errors != 100 {
		t.Fatalf("per-op %+v", op)
	}
	if len(rep.ErrorSamples) != 1 || rep.ErrorSamples[0] != "create: HTTP 500: boom" {
		t.Fatalf("error samples %q", rep.ErrorSamples)
	}
	wantTP := 200 / rep.Duration.Seconds()
	if d := rep.Throughput - wantTP; d > 1e-6 || d < -1e-6 {
		t.Fatalf("throughput %v, want successes/s %v", rep.Throughput, wantTP)
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "errors:     HTTP 500: 100\n  create: HTTP 500: boom\n") {
		t.Fatalf("print:\n%s", out.String())
	}
}

func TestRunTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL + "/fhir"
	srv.Close() // connections are now refused
	rep := run(t, Options{BaseURL: base, Mix: MixCreate, Concurrency: 2, Duration: 2 * time.Second, MaxRequests: 100})
	if rep.Requests != 100 || rep.Errors != 100 || rep.ErrorsByStatus[0] != 100 {
		t.Fatalf("requests %d errors %d by status %v", rep.Requests, rep.Errors, rep.ErrorsByStatus)
	}
	if rep.Throughput != 0 || rep.P50 != 0 || rep.Max != 0 {
		t.Fatalf("latency/throughput from failures: %+v", rep)
	}
	if len(rep.ErrorSamples) == 0 || !strings.HasPrefix(rep.ErrorSamples[0], "create: ") || strings.Contains(rep.ErrorSamples[0], base) {
		t.Fatalf("error samples %q", rep.ErrorSamples)
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "latency:    n/a (no successful requests)\n") || !strings.Contains(out.String(), "errors:     transport: 100\n") {
		t.Fatalf("print:\n%s", out.String())
	}
}

func TestRunStopsAtDeadlineInFlightNotCounted(t *testing.T) {
	f := &fakeFHIR{hang: true}
	base := startFake(t, f)
	start := time.Now()
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 4, Duration: 200 * time.Millisecond, BodyPool: 64})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Run took %v for a 200ms run", el)
	}
	if rep.Requests != 0 || rep.Errors != 0 {
		t.Fatalf("in-flight requests counted: requests %d errors %d %v", rep.Requests, rep.Errors, rep.ErrorsByStatus)
	}
	if rep.Duration != 200*time.Millisecond {
		t.Fatalf("duration %v", rep.Duration)
	}
}

func TestRunSlowServerDeadline(t *testing.T) {
	f := &fakeFHIR{delay: 20 * time.Millisecond}
	base := startFake(t, f)
	start := time.Now()
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 4, Duration: 300 * time.Millisecond, BodyPool: 64})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Run took %v", el)
	}
	// At most 4 workers * 300ms / 20ms = 60 requests can complete.
	if rep.Requests == 0 || rep.Requests > 60 || rep.Errors != 0 {
		t.Fatalf("requests %d errors %d %v", rep.Requests, rep.Errors, rep.ErrorSamples)
	}
	if rep.P50 < 20*time.Millisecond {
		t.Fatalf("p50 %v below the server's delay", rep.P50)
	}
	if rep.Duration != 300*time.Millisecond {
		t.Fatalf("duration %v", rep.Duration)
	}
}

func TestRunRequestTimeoutIsTransportError(t *testing.T) {
	f := &fakeFHIR{delay: 300 * time.Millisecond}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 2, Duration: 250 * time.Millisecond, RequestTimeout: 50 * time.Millisecond, BodyPool: 64})
	if rep.Errors == 0 || rep.Errors != rep.ErrorsByStatus[0] || rep.Requests != rep.Errors {
		t.Fatalf("requests %d errors %d %v", rep.Requests, rep.Errors, rep.ErrorsByStatus)
	}
}

func TestRunWarmupNotMeasured(t *testing.T) {
	f := &fakeFHIR{}
	base := startFake(t, f)
	rep := run(t, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 2, Duration: 5 * time.Second, Warmup: 50 * time.Millisecond, MaxRequests: 50})
	if rep.Requests != 50 {
		t.Fatalf("requests %d", rep.Requests)
	}
	if f.posts.Load() <= 50 {
		t.Fatalf("server saw %d POSTs; warm-up issued none", f.posts.Load())
	}
}

func TestRunCancel(t *testing.T) {
	f := &fakeFHIR{delay: 5 * time.Millisecond}
	base := startFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, Options{BaseURL: base, Token: "tok", Mix: MixCreate, Concurrency: 2, Duration: 10 * time.Second, BodyPool: 64})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Run took %v after cancellation", el)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rep == nil || rep.Requests == 0 || rep.Errors != 0 || rep.Duration >= 2*time.Second {
		t.Fatalf("partial report %+v", rep)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Options{BaseURL: "http://127.0.0.1:1/fhir", Mix: MixRead, Duration: time.Second, Preload: 5})
	if !errors.Is(err, context.Canceled) || rep != nil {
		t.Fatalf("rep %v err %v", rep, err)
	}
}

func TestRunPreloadFailure(t *testing.T) {
	f := &fakeFHIR{token: "right"}
	base := startFake(t, f)
	start := time.Now()
	rep, err := Run(context.Background(), Options{BaseURL: base, Token: "wrong", Mix: MixRead, Concurrency: 4, Duration: time.Second, Preload: 100})
	if err == nil || rep != nil {
		t.Fatalf("rep %v err %v", rep, err)
	}
	if !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "OperationOutcome") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("preload failure did not abort promptly")
	}
}

func TestOptionsValidation(t *testing.T) {
	ok := Options{BaseURL: "http://h/fhir", Mix: MixCreate, Duration: time.Second}
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"no base", func(o *Options) { o.BaseURL = "" }},
		{"relative base", func(o *Options) { o.BaseURL = "/fhir" }},
		{"ftp base", func(o *Options) { o.BaseURL = "ftp://h/fhir" }},
		{"base with query", func(o *Options) { o.BaseURL = "http://h/fhir?x=1" }},
		{"no mix", func(o *Options) { o.Mix = "" }},
		{"bad mix", func(o *Options) { o.Mix = "delete" }},
		{"zero duration", func(o *Options) { o.Duration = 0 }},
		{"negative warmup", func(o *Options) { o.Warmup = -1 }},
		{"negative concurrency", func(o *Options) { o.Concurrency = -1 }},
		{"negative preload", func(o *Options) { o.Preload = -1 }},
		{"ratio > 1", func(o *Options) { o.ReadRatio = 1.5 }},
		{"ratio < 0", func(o *Options) { o.ReadRatio = -0.1 }},
		{"negative max", func(o *Options) { o.MaxRequests = -1 }},
	}
	for _, tt := range tests {
		o := ok
		tt.mod(&o)
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	o := ok
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 1 || o.Preload != DefaultPreload || o.ReadRatio != DefaultReadRatio || o.BodyPool != DefaultBodyPool || o.RequestTimeout != DefaultRequestTimeout {
		t.Fatalf("defaults not applied: %+v", o)
	}
	for _, s := range []string{"create", "read", "mixed"} {
		if m, err := ParseMix(s); err != nil || string(m) != s {
			t.Errorf("ParseMix(%q) = %q, %v", s, m, err)
		}
	}
}

func TestIDFromLocation(t *testing.T) {
	tests := []struct {
		loc  string
		want string
		ok   bool
	}{
		{"http://127.0.0.1:8080/fhir/Patient/123/_history/1", "123", true},
		{"http://127.0.0.1:8080/fhir/Patient/123/_history/1/", "123", true},
		{"https://ward.example.org/base/r4/Patient/a1b2-c3.d4/_history/17", "a1b2-c3.d4", true},
		{"/fhir/Patient/abc/_history/2", "abc", true},
		{"/fhir/Patient/abc/", "abc", true},
		{"Patient/xyz/_history/3", "xyz", true},
		{"Patient/xyz", "xyz", true},
		{"http://h/Patient/1/_history/1", "1", true},
		{"http://h/fhir/Patient/0b6c1e7a-5f8d-4c3e-9a2b-7d4e6f8a9b0c/_history/1?x=y#f", "0b6c1e7a-5f8d-4c3e-9a2b-7d4e6f8a9b0c", true},
		// A base path that itself contains "Patient": the last one wins.
		{"http://h/Patient/fhir/Patient/42/_history/1", "42", true},
		{"http://h//fhir//Patient//42//_history//1", "42", true},
		{"", "", false},
		{"http://h/fhir/Patient", "", false},
		{"http://h/fhir/Patient/", "", false},
		{"http://h/fhir/Observation/5/_history/1", "", false},
		{"http://h/fhir/Patient/has%20space/_history/1", "", false},
		{"http://h/fhir/Patient/" + strings.Repeat("a", 65), "", false},
		{"://bad", "", false},
	}
	for _, tt := range tests {
		got, ok := idFromLocation(tt.loc, "Patient")
		if got != tt.want || ok != tt.ok {
			t.Errorf("idFromLocation(%q) = %q, %v; want %q, %v", tt.loc, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize([]byte("  line1\nline2\t\x00end\xff ")); got != "line1 line2  end\uFFFD" {
		t.Fatalf("sanitize = %q", got)
	}
}

func sampleReport() *Report {
	return &Report{
		Mix: MixCreate, Concurrency: 64, Duration: 30 * time.Second,
		Requests: 78123, ErrorsByStatus: map[int]int64{}, Throughput: 2604.1,
		P50: ms(21.3), P90: ms(30.1), P99: ms(44.0), Max: ms(80.2), Mean: ms(22),
		PerOp:        map[string]OpStats{"create": {Requests: 78123, Throughput: 2604.1, P50: ms(21.3), P90: ms(30.1), P99: ms(44.0), Max: ms(80.2)}},
		LatencyExact: true,
	}
}

func TestPrint(t *testing.T) {
	var b strings.Builder
	sampleReport().Print(&b)
	want := `ward bench: mix=create concurrency=64 duration=30.0s
requests:   78123 (errors 0)
throughput: 2604.1 req/s
latency:    p50 21.3ms  p90 30.1ms  p99 44.0ms  max 80.2ms
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	r := sampleReport()
	r.Mix, r.Preloaded, r.Errors, r.LatencyExact = MixMixed, 1000, 3, false
	r.ErrorsByStatus = map[int]int64{500: 2, 0: 1}
	r.ErrorSamples = []string{"create: HTTP 500: boom"}
	r.PerOp = map[string]OpStats{
		"create": {Requests: 100, Errors: 2, Throughput: 3.2, P50: 450 * time.Microsecond, P90: ms(4.5), P99: ms(45), Max: ms(450)},
		"read":   {Requests: 400, Errors: 1, Throughput: 13.3, P50: ms(1), P90: ms(2), P99: ms(3), Max: ms(4)},
	}
	b.Reset()
	r.Print(&b)
	want = `ward bench: mix=mixed concurrency=64 duration=30.0s preloaded=1000
requests:   78123 (errors 3)
throughput: 2604.1 req/s
latency:    p50 21.3ms  p90 30.1ms  p99 44.0ms  max 80.2ms  (histogram, <1% error)
  create:   requests 100 (errors 2)  throughput 3.2 req/s  p50 0.450ms  p90 4.50ms  p99 45.0ms  max 450.0ms
  read:     requests 400 (errors 1)  throughput 13.3 req/s  p50 1.00ms  p90 2.00ms  p99 3.00ms  max 4.00ms
errors:     transport: 1, HTTP 500: 2
  create: HTTP 500: boom
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestJSON(t *testing.T) {
	r := sampleReport()
	r.Errors = 1
	r.ErrorsByStatus = map[int]int64{0: 1}
	data, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mix            string           `json:"mix"`
		Concurrency    int              `json:"concurrency"`
		DurationS      float64          `json:"duration_s"`
		Requests       int64            `json:"requests"`
		Errors         int64            `json:"errors"`
		ErrorsByStatus map[string]int64 `json:"errors_by_status"`
		ThroughputRPS  float64          `json:"throughput_rps"`
		LatencyMS      struct{ P50, P90, P99, Max, Mean float64 }
		PerOp          map[string]struct {
			Requests  int64                 `json:"requests"`
			LatencyMS struct{ P50 float64 } `json:"latency_ms"`
		} `json:"per_op"`
		ErrorSamples []string `json:"error_samples"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Mix != "create" || got.Concurrency != 64 || got.DurationS != 30 || got.Requests != 78123 || got.Errors != 1 ||
		got.ErrorsByStatus["0"] != 1 || got.ThroughputRPS != 2604.1 || got.ErrorSamples == nil {
		t.Fatalf("json: %s", data)
	}
	if got.PerOp["create"].Requests != 78123 || got.PerOp["create"].LatencyMS.P50 != 21.3 {
		t.Fatalf("json per_op: %s", data)
	}
	if !strings.Contains(string(data), `"p99": 44`) {
		t.Fatalf("json latency: %s", data)
	}
}

// TestRunSearchReadsWholeBodies: a search page is read to its end, and a
// page cut short by the server is an error, not a success.
func TestRunSearchReadsWholeBodies(t *testing.T) {
	page := append(append([]byte(`{"resourceType":"Bundle","type":"searchset","x":"`), bytes.Repeat([]byte("a"), 3*readBufferSize)...), `"}`...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/Patient", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		if r.URL.Query().Get("cut") != "" {
			w.Write(page[:len(page)/2]) // then the handler returns: the connection is closed mid-body
			return
		}
		w.Write(page)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rep := run(t, Options{BaseURL: srv.URL + "/fhir", Mix: MixSearch, Paths: []string{"Patient?family=a"}, Concurrency: 2, Duration: 5 * time.Second, MaxRequests: 20})
	if rep.Requests != 20 || rep.Errors != 0 {
		t.Fatalf("whole pages: requests %d errors %d (%q)", rep.Requests, rep.Errors, rep.ErrorSamples)
	}
	rep = run(t, Options{BaseURL: srv.URL + "/fhir", Mix: MixSearch, Paths: []string{"Patient?family=a&cut=1"}, Concurrency: 2, Duration: 5 * time.Second, MaxRequests: 20})
	if rep.Requests != 20 || rep.Errors != 20 {
		t.Fatalf("cut pages: requests %d errors %d, want every one an error", rep.Requests, rep.Errors)
	}
	if len(rep.ErrorSamples) == 0 || !strings.Contains(rep.ErrorSamples[0], "reading response body") {
		t.Fatalf("cut pages: error samples %q", rep.ErrorSamples)
	}
}
