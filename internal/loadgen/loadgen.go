// Package loadgen is the engine behind `ward bench`: a small HTTP load
// generator for Ward's FHIR API, in the spirit of pgbench.
//
// A run has up to three phases:
//
//  1. preparation (not measured): a pool of distinct synthetic Patient
//     bodies (RealisticPatient: two names, two identifiers, three telecoms,
//     an address and a contact, all invented) is generated from
//     Options.Seed, and for the read and mixed workloads Options.Preload
//     Patients are created concurrently and their ids kept;
//  2. warm-up (optional, not measured): the workload runs for
//     Options.Warmup and its results are discarded;
//  3. the measured phase: Options.Concurrency goroutines (one client each,
//     sharing a keep-alive connection pool) issue requests back to back
//     until Options.Duration elapses, Options.MaxRequests have been issued,
//     or ctx is cancelled.
//
// Accounting. A request counts if it completed before the measured phase
// ended; requests still in flight at the deadline (or at cancellation) are
// abandoned and counted neither as requests nor as errors. A request
// succeeds on 201 (create) or 200 (read) with its body fully read; any
// other status is an error under that status, and a transport failure
// (including a failure while reading the response body, and a per-request
// timeout) is an error under status 0.
//
// Latency is wall-clock time around the whole request, from before the
// request is sent until its response body has been drained. Percentiles and
// the mean are over successful requests only (fast error responses would
// otherwise flatter the numbers); Throughput is successful requests per
// second of the measured phase.
//
// Percentiles use the nearest-rank method. Each worker records its own
// samples (no locks on the hot path). While the run stays within a budget of
// 5,000,000 samples (split evenly over workers and operations) percentiles
// are exact: samples are merged and sorted at the end. A worker that exceeds
// its share switches to a log-linear histogram (64 buckets per power of
// two, ~16 KiB) whose reported values are within 0.8% of the true
// percentile; Report.LatencyExact tells which method was used. Max is always
// exact.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Mix selects the workload.
type Mix string

// The workloads.
const (
	MixCreate Mix = "create" // POST {base}/Patient
	MixRead   Mix = "read"   // GET {base}/Patient/{id} of preloaded Patients
	MixMixed  Mix = "mixed"  // per request: read with probability ReadRatio, else create
	MixSearch Mix = "search" // GET {base}/{path} of a path drawn uniformly from Options.Paths
	// MixTransaction POSTs {base} a transaction Bundle of BundleEntries
	// entries (a quarter Patients, the rest Observations referring to
	// them by urn:uuid).
	MixTransaction Mix = "transaction"
)

// ParseMix validates a workload name.
func ParseMix(s string) (Mix, error) {
	switch m := Mix(s); m {
	case MixCreate, MixRead, MixMixed, MixSearch, MixTransaction:
		return m, nil
	}
	return "", fmt.Errorf("loadgen: unknown mix %q (want create, read, mixed, search or transaction)", s)
}

// Defaults applied by Run to zero-valued Options fields.
const (
	DefaultPreload        = 1000
	DefaultReadRatio      = 0.8
	DefaultBodyPool       = 4096
	DefaultRequestTimeout = 30 * time.Second

	// maxExactSamples bounds the number of latency samples kept exactly;
	// past a worker's share of it that worker switches to a histogram.
	maxExactSamples = 5_000_000
	// minSamplesPerRecorder is the floor of a worker's share.
	minSamplesPerRecorder = 256
	// maxErrorSamples is how many distinct error messages a report keeps.
	maxErrorSamples = 5
	// errorBodyPrefix is how much of an error response body is kept.
	errorBodyPrefix = 200
)

// Options configures a run. Zero values select the documented defaults.
type Options struct {
	BaseURL     string        // FHIR base, e.g. http://127.0.0.1:8080/fhir (trailing slash optional)
	Token       string        // bearer token sent on every request ("" sends no Authorization header)
	Mix         Mix           // required: create, read or mixed
	Concurrency int           // concurrent clients (goroutines); default 1
	Duration    time.Duration // measured phase length; required (> 0)
	Warmup      time.Duration // optional unmeasured phase before the measured one
	Seed        int64         // seed for synthetic data and per-worker random choices
	Preload     int           // read/mixed: Patients created first (default 1000); reads pick uniformly among them (also in mixed: Patients created while measuring are not read)
	ReadRatio   float64       // mixed: fraction of reads in [0,1] (0 means default 0.8)
	MaxRequests int64         // optional bound on requests issued in the measured phase (0 = none)
	// Paths are the search mix's requests: paths relative to BaseURL
	// (e.g. "Patient?family=ka"), each expected to answer 200.
	Paths []string
	// BundleEntries is the transaction mix's Bundle size (a multiple of
	// 4; default 100).
	BundleEntries int

	// Client is the HTTP client to use. Default: a client whose Transport
	// has no proxy, HTTP/1.1 only with keep-alive, MaxIdleConnsPerHost =
	// Concurrency, and does not follow redirects (a 3xx is an error).
	Client *http.Client

	// BodyPool is the number of distinct synthetic bodies generated before
	// measuring and reused round-robin (default 4096, capped at MaxRequests
	// plus Preload when those are smaller).
	BodyPool int
	// RequestTimeout bounds each individual request, including preload
	// requests (default 30s). A request timing out during the measured
	// phase is a transport error (status 0).
	RequestTimeout time.Duration
}

// OpStats are the results of one operation kind.
type OpStats struct {
	Requests   int64         // completed requests (successes + errors)
	Errors     int64         // completed requests that failed
	Throughput float64       // successful requests per second
	P50        time.Duration // latency percentiles of successful requests (nearest rank)
	P90        time.Duration
	P99        time.Duration
	Max        time.Duration
	Mean       time.Duration
}

// Report is the result of a run.
type Report struct {
	Mix            Mix
	Concurrency    int
	Duration       time.Duration // actual length of the measured phase
	Requests       int64         // completed requests in the measured phase (successes + errors)
	Errors         int64
	ErrorsByStatus map[int]int64 // HTTP status -> count; 0 = transport error
	Throughput     float64       // successful requests per second
	P50            time.Duration // latency percentiles of successful requests (nearest rank)
	P90            time.Duration
	P99            time.Duration
	Max            time.Duration
	Mean           time.Duration
	PerOp          map[string]OpStats // "create", "read": the operations the mix uses
	Preloaded      int                // Patients created before measuring (read/mixed)
	LatencyExact   bool               // false if percentiles came from the histogram (≤0.8% error)
	ErrorSamples   []string           // first few distinct error messages (status + start of response body)
}

// Operation kinds.
const (
	opCreate = iota
	opRead
	opSearch
	opTransaction
	numOps
)

var opNames = [numOps]string{"create", "read", "search", "transaction"}

// uses reports whether mix m issues operation op.
func uses(m Mix, op int) bool {
	switch m {
	case MixCreate:
		return op == opCreate
	case MixRead:
		return op == opRead
	case MixSearch:
		return op == opSearch
	case MixTransaction:
		return op == opTransaction
	}
	return op == opCreate || op == opRead
}

// errorSamples keeps the first few distinct error messages.
type errorSamples struct {
	full atomic.Bool
	mu   sync.Mutex
	msgs []string
}

func (e *errorSamples) wanted() bool { return !e.full.Load() }

func (e *errorSamples) add(msg string) {
	if e.full.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.msgs {
		if m == msg {
			return
		}
	}
	if len(e.msgs) < maxErrorSamples {
		e.msgs = append(e.msgs, msg)
	}
	if len(e.msgs) >= maxErrorSamples {
		e.full.Store(true)
	}
}

func (e *errorSamples) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.msgs...)
}

// runner holds the immutable state shared by all workers of a run.
type runner struct {
	client     *http.Client
	base       string   // FHIR base without a trailing slash
	paths      []string // search mix: paths relative to base
	createURL  string
	readPrefix string   // {base}/Patient/
	auth       []string // Authorization header value, nil if no token
	bodies     [][]byte
	ids        []string // preloaded Patient ids (read-only once measuring)
	mix        Mix
	readRatio  float64
	reqTimeout time.Duration
	seed       int64
	conc       int
	errs       errorSamples
}

var (
	hdrFHIRJSON = []string{"application/fhir+json"}
)

// Run executes a benchmark. It returns an error for invalid options, a
// failed preload (the first failing request is described), or a ctx
// cancelled before measuring started. If ctx is cancelled during the
// measured phase, Run returns the partial report together with ctx.Err().
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(o.BaseURL, "/")
	r := &runner{
		client:     o.Client,
		base:       base,
		paths:      o.Paths,
		createURL:  base + "/Patient",
		readPrefix: base + "/Patient/",
		bodies:     nil,
		mix:        o.Mix,
		readRatio:  o.ReadRatio,
		reqTimeout: o.RequestTimeout,
		seed:       o.Seed,
		conc:       o.Concurrency,
	}
	if o.Token != "" {
		r.auth = []string{"Bearer " + o.Token}
	}
	if r.client == nil {
		tr := defaultTransport(o.Concurrency)
		defer tr.CloseIdleConnections()
		r.client = &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}

	// Body pool, generated before anything is measured.
	// Only as many bodies as can be used: preload creates plus, unless the
	// mix is read-only, measured creates (bounded by MaxRequests if set).
	preload := 0
	if o.Mix == MixRead || o.Mix == MixMixed {
		preload = o.Preload
	}
	pool := o.BodyPool
	if o.Mix == MixRead || o.Mix == MixSearch {
		pool = min(pool, preload)
	} else if o.MaxRequests > 0 && o.MaxRequests+int64(preload) < int64(pool) {
		pool = int(o.MaxRequests) + preload
	}
	pool = max(pool, 1)
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15))
	r.bodies = make([][]byte, pool)
	if o.Mix == MixTransaction {
		// Bundles are large: a small pool, reused (each POST creates new
		// resources all the same).
		pool = min(pool, 32)
		r.bodies = r.bodies[:pool]
	}
	for i := range r.bodies {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if o.Mix == MixTransaction {
			r.bodies[i] = SyntheticTransaction(rng, o.BundleEntries)
			continue
		}
		r.bodies[i] = RealisticPatient(rng)
	}

	rep := &Report{Mix: o.Mix, Concurrency: o.Concurrency}
	if o.Mix == MixRead || o.Mix == MixMixed {
		ids, err := r.preload(ctx, o.Preload)
		if err != nil {
			return nil, err
		}
		r.ids = ids
		rep.Preloaded = len(ids)
	}

	if o.Warmup > 0 {
		r.runPhase(ctx, o.Warmup, false, 0, 1)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}

	workers, elapsed := r.runPhase(ctx, o.Duration, true, o.MaxRequests, 2)
	r.fill(rep, workers, elapsed)
	return rep, ctx.Err()
}

func (o *Options) normalize() error {
	if o.BaseURL == "" {
		return errors.New("loadgen: BaseURL is required")
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil {
		return fmt.Errorf("loadgen: BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadgen: BaseURL %q: want an absolute http or https URL", o.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("loadgen: BaseURL %q: must not have a query or fragment", o.BaseURL)
	}
	if _, err := ParseMix(string(o.Mix)); err != nil {
		return err
	}
	if o.BundleEntries == 0 {
		o.BundleEntries = 100
	}
	if o.BundleEntries < 4 || o.BundleEntries%4 != 0 || o.BundleEntries > 10000 {
		return errors.New("loadgen: BundleEntries must be a multiple of 4 between 4 and 10000")
	}
	if o.Mix == MixSearch && len(o.Paths) == 0 {
		return errors.New("loadgen: the search mix needs Paths")
	}
	if o.Duration <= 0 {
		return errors.New("loadgen: Duration must be > 0")
	}
	if o.Warmup < 0 {
		return errors.New("loadgen: Warmup must be >= 0")
	}
	if o.Concurrency < 0 {
		return errors.New("loadgen: Concurrency must be >= 0")
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Preload < 0 {
		return errors.New("loadgen: Preload must be >= 0")
	}
	if o.Preload == 0 {
		o.Preload = DefaultPreload
	}
	if o.ReadRatio < 0 || o.ReadRatio > 1 {
		return fmt.Errorf("loadgen: ReadRatio %v out of range [0,1]", o.ReadRatio)
	}
	if o.ReadRatio == 0 {
		o.ReadRatio = DefaultReadRatio
	}
	if o.MaxRequests < 0 {
		return errors.New("loadgen: MaxRequests must be >= 0")
	}
	if o.BodyPool < 0 {
		return errors.New("loadgen: BodyPool must be >= 0")
	}
	if o.BodyPool == 0 {
		o.BodyPool = DefaultBodyPool
	}
	if o.RequestTimeout < 0 {
		return errors.New("loadgen: RequestTimeout must be >= 0")
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	return nil
}

// readBufferSize is how much of a response the client asks for per read:
// a search page of 20 Patients is about 40 KB, which io.Discard's 8 KB
// copies and the Transport's default 4 KB buffer take in many reads. On
// the 2-core machine of docs/benchmarks.md this made no measurable
// difference to the load generator's CPU per request.
const readBufferSize = 64 << 10

// discardBody reads body to its end through buf.
func discardBody(body io.Reader, buf []byte) error {
	for {
		_, err := body.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func defaultTransport(conc int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          conc + 16,
		MaxIdleConnsPerHost:   conc,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		Protocols:             &protos,
		ReadBufferSize:        readBufferSize,
	}
}

// worker is the per-goroutine state of a phase.
type worker struct {
	rng  *rand.Rand
	next int // next body index
	rec  [numOps]*recorder
	buf  []byte // reads response bodies (discardBody)
}

func (r *runner) newWorker(i int, salt uint64, limit int) *worker {
	w := &worker{
		rng:  rand.New(rand.NewPCG(uint64(r.seed), salt<<32|uint64(i))),
		next: (i * 7919) % len(r.bodies),
		buf:  make([]byte, readBufferSize),
	}
	for op := range numOps {
		w.rec[op] = newRecorder(limit)
	}
	return w
}

// runPhase runs the workload for d (or until maxReq requests were issued,
// if maxReq > 0). It returns the workers (whose recorders hold the results
// if record is set) and the phase's length.
func (r *runner) runPhase(parent context.Context, d time.Duration, record bool, maxReq int64, salt uint64) ([]*worker, time.Duration) {
	nOps := 1
	if r.mix == MixMixed {
		nOps = 2
	}
	limit := max(minSamplesPerRecorder, maxExactSamples/(r.conc*nOps))
	if !record {
		limit = 0 // not used
	}
	workers := make([]*worker, r.conc)
	for i := range workers {
		workers[i] = r.newWorker(i, salt, limit)
	}

	start := time.Now()
	ctx, cancel := context.WithDeadline(parent, start.Add(d))
	defer cancel()
	var issued atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, w, record, maxReq, &issued)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if elapsed > d {
		elapsed = d // requests after the deadline were not counted
	}
	return workers, elapsed
}

func (r *runner) loop(ctx context.Context, w *worker, record bool, maxReq int64, issued *atomic.Int64) {
	for ctx.Err() == nil {
		if maxReq > 0 && issued.Add(1) > maxReq {
			return
		}
		op := opCreate
		switch r.mix {
		case MixRead:
			op = opRead
		case MixSearch:
			op = opSearch
		case MixTransaction:
			op = opTransaction
		case MixMixed:
			if w.rng.Float64() < r.readRatio {
				op = opRead
			}
		}
		wantMsg := record && r.errs.wanted()
		start := time.Now()
		status, msg, ok := r.do(ctx, w, op, wantMsg)
		lat := time.Since(start)
		if ctx.Err() != nil {
			return // in flight at the deadline or cancellation: not counted
		}
		if !record {
			continue
		}
		rec := w.rec[op]
		if ok {
			rec.success(lat)
			continue
		}
		rec.failure(status)
		if wantMsg {
			r.errs.add(msg)
		}
	}
}

// do performs one request. It reports the status (0 for a transport
// error), whether it succeeded and, if wantMsg, an error description.
func (r *runner) do(ctx context.Context, w *worker, op int, wantMsg bool) (status int, msg string, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, r.reqTimeout)
	defer cancel()
	var (
		req  *http.Request
		err  error
		want int
		u    string
	)
	if op == opCreate || op == opTransaction {
		body := r.bodies[w.next]
		if w.next++; w.next == len(r.bodies) {
			w.next = 0
		}
		u, want = r.createURL, http.StatusCreated
		if op == opTransaction {
			u, want = r.base, http.StatusOK
		}
		req, err = r.newPost(ctx, u, body)
	} else if op == opSearch {
		req, err = r.newGet(ctx, r.base+"/"+r.paths[w.rng.IntN(len(r.paths))])
		want = http.StatusOK
	} else {
		id := r.ids[w.rng.IntN(len(r.ids))]
		req, err = r.newRead(ctx, id)
		want = http.StatusOK
	}
	if err != nil {
		return 0, opNames[op] + ": " + err.Error(), false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, opNames[op] + ": " + transportMessage(err), false
	}
	defer resp.Body.Close()
	if resp.StatusCode == want {
		if err := discardBody(resp.Body, w.buf); err != nil {
			return 0, opNames[op] + ": reading response body: " + err.Error(), false
		}
		return resp.StatusCode, "", true
	}
	if wantMsg {
		msg = statusMessage(opNames[op], resp)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, msg, false
}

func (r *runner) newCreate(ctx context.Context, body []byte) (*http.Request, error) {
	return r.newPost(ctx, r.createURL, body)
}

func (r *runner) newPost(ctx context.Context, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Content-Type": hdrFHIRJSON, "Accept": hdrFHIRJSON}
	if r.auth != nil {
		req.Header["Authorization"] = r.auth
	}
	return req, nil
}

func (r *runner) newRead(ctx context.Context, id string) (*http.Request, error) {
	return r.newGet(ctx, r.readPrefix+url.PathEscape(id))
}

func (r *runner) newGet(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Accept": hdrFHIRJSON}
	if r.auth != nil {
		req.Header["Authorization"] = r.auth
	}
	return req, nil
}

// transportMessage strips the URL from a client error (it would make every
// read's message distinct); the operation name says what failed.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// statusMessage reads up to errorBodyPrefix bytes of the response body and
// describes the failure. Only the response is quoted, never the request.
func statusMessage(op string, resp *http.Response) string {
	buf := make([]byte, errorBodyPrefix)
	n, _ := io.ReadFull(resp.Body, buf)
	snippet := sanitize(buf[:n])
	m := fmt.Sprintf("%s: HTTP %d", op, resp.StatusCode)
	if snippet != "" {
		m += ": " + snippet
	}
	return m
}

// sanitize makes a body prefix printable on one line.
func sanitize(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// preload creates n Patients with up to r.conc concurrent requests and
// returns their ids. The first failure aborts the preload.
func (r *runner) preload(parent context.Context, n int) ([]string, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ids := make([]string, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	for range min(r.conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id, err := r.createOne(ctx, r.bodies[i%len(r.bodies)])
				if err != nil {
					fail(err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, fmt.Errorf("loadgen: preload of %d Patients failed: %w", n, firstErr)
	}
	return ids, nil
}

// maxPreloadBody bounds how much of a create response is read to find the
// new resource's id when there is no usable Location header.
const maxPreloadBody = 1 << 20

// createOne POSTs a body and returns the new Patient's id, taken from the
// Location header or else from the "id" of the response body.
func (r *runner) createOne(ctx context.Context, body []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.reqTimeout)
	defer cancel()
	req, err := r.newCreate(ctx, body)
	if err != nil {
		return "", err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusCreated {
		return "", errors.New(statusMessage("create", resp))
	}
	if id, ok := idFromLocation(resp.Header.Get("Location"), "Patient"); ok {
		return id, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPreloadBody))
	if err != nil {
		return "", fmt.Errorf("create: reading response body: %w", err)
	}
	var res struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(data, &res); err == nil && validID(res.ID) &&
		(res.ResourceType == "" || res.ResourceType == "Patient") {
		return res.ID, nil
	}
	return "", fmt.Errorf("create: HTTP 201 but no Patient id in the Location header (%q) or the response body", resp.Header.Get("Location"))
}

// idFromLocation extracts the logical id from a Location (or
// Content-Location) header such as
//
//	http://host/fhir/Patient/123/_history/1
//	/fhir/Patient/123/_history/1/
//	Patient/123
//
// It takes the segment after the last segment equal to resourceType.
func idFromLocation(loc, resourceType string) (string, bool) {
	if loc == "" {
		return "", false
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	var segs []string
	for _, s := range strings.Split(u.EscapedPath(), "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	for i := len(segs) - 2; i >= 0; i-- {
		if segs[i] != resourceType {
			continue
		}
		id, err := url.PathUnescape(segs[i+1])
		if err != nil || !validID(id) {
			return "", false
		}
		return id, true
	}
	return "", false
}

// validID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// fill computes the report from the workers of the measured phase.
func (r *runner) fill(rep *Report, workers []*worker, elapsed time.Duration) {
	rep.Duration = elapsed
	secs := elapsed.Seconds()
	rate := func(ok int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(ok) / secs
	}
	var all []*recorder
	rep.PerOp = make(map[string]OpStats)
	for op := range numOps {
		if !uses(r.mix, op) {
			continue
		}
		recs := make([]*recorder, len(workers))
		for i, w := range workers {
			recs[i] = w.rec[op]
		}
		all = append(all, recs...)
		m := mergeRecorders(recs)
		rep.PerOp[opNames[op]] = OpStats{
			Requests:   m.ok + m.errs,
			Errors:     m.errs,
			Throughput: rate(m.ok),
			P50:        m.lat.P50,
			P90:        m.lat.P90,
			P99:        m.lat.P99,
			Max:        m.lat.Max,
			Mean:       m.lat.Mean,
		}
	}
	m := mergeRecorders(all)
	rep.Requests = m.ok + m.errs
	rep.Errors = m.errs
	rep.ErrorsByStatus = m.errByStatus
	rep.Throughput = rate(m.ok)
	rep.P50, rep.P90, rep.P99, rep.Max, rep.Mean = m.lat.P50, m.lat.P90, m.lat.P99, m.lat.Max, m.lat.Mean
	rep.LatencyExact = m.lat.Exact
	rep.ErrorSamples = r.errs.list()
}
