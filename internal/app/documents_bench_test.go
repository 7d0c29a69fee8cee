package app_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob/blobtest"
	"github.com/wardhealth/ward/internal/config"
)

// repeating yields n bytes of a random 1 MiB block, repeated: content
// that costs the client nothing to make.
type repeating struct {
	block []byte
	n, i  int64
}

func newRepeating(n int64) *repeating {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{5}).Read(b)
	return &repeating{block: b, n: n}
}

func (r *repeating) Read(p []byte) (int, error) {
	if r.i >= r.n {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), r.n-r.i)], r.block[r.i%int64(len(r.block)):])
	r.i += int64(k)
	return k, nil
}

func benchWard(b *testing.B, backend string) *apptest.Ward {
	if backend == "s3" {
		bc := blobtest.S3(b)
		return apptest.Start(b, apptest.SQLite, func(cfg *config.Config) {
			cfg.Documents.Backend, cfg.Documents.S3Endpoint, cfg.Documents.S3Bucket = "s3", bc.Endpoint, bc.Bucket
			cfg.Documents.S3PathStyle, cfg.Documents.S3AccessKey, cfg.Documents.S3SecretKey = true, bc.AccessKey, bc.SecretKey
			cfg.APIRate = 0
		})
	}
	// One subject makes every request here: no rate limit.
	return apptest.Start(b, apptest.SQLite, func(cfg *config.Config) { cfg.APIRate = 0 })
}

func benchUpload(b testing.TB, w *apptest.Ward, n int64) string {
	req, _ := http.NewRequest("POST", w.URL+"/Binary", newRepeating(n))
	req.ContentLength = n
	req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
	req.Header.Set("Content-Type", "application/pdf")
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		b.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	return (&apptest.Response{Body: body}).JSON(b)["id"].(string)
}

func benchDownload(b *testing.B, w *apptest.Ward, id string, want int64) {
	req, _ := http.NewRequest("GET", w.URL+"/Binary/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
	req.Header.Set("Accept", "application/pdf")
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != want || resp.StatusCode != 200 {
		b.Fatalf("download: %d %d bytes %v", resp.StatusCode, n, err)
	}
}

// BenchmarkBinary1GiB: a sealed upload and a download of 1 GiB through
// a real listener, on the file backend and on S3 (versitygw).
func BenchmarkBinary1GiB(b *testing.B) {
	const size = 1 << 30
	for _, backend := range []string{"file", "s3"} {
		b.Run(backend, func(b *testing.B) {
			w := benchWard(b, backend)
			var id string
			b.Run("upload", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					id = benchUpload(b, w, size)
				}
			})
			b.Run("download", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					benchDownload(b, w, id, size)
				}
			})
		})
	}
}

// BenchmarkBinaryConcurrent100KiB: concurrent downloads of 100 KiB
// documents (100 documents, each read by clients/100 clients), 100 and
// 1,000 at once: throughput, p99 latency and the growth of Ward's RSS
// over its level after a warm-up wave. The clients run in a child
// process (downloadWave), so the RSS is the server's alone.
//
// Memory is flat when what Ward adds per download does not grow with
// the number of downloads in flight: net-http-1000 reports
// over-floor-MiB, Ward's growth at 1,000 less that of a bare net/http
// server doing the same wave (the connections' own cost) less Ward's
// growth at 100 (what Ward holds whatever the concurrency: its buffer
// pools, stream slots and the garbage collector's headroom over its
// resident heap). Flat is a few MiB (docs/documents.md); one 100 KiB
// download more would be 100 MiB at 1,000. net-http-1000-churn is the
// bare server allocating as much per request as a Ward download did
// (alloc-KiB/download), so that its wave too reaches the garbage
// collector's heap goal: over-churn-floor-MiB is Ward's growth less
// that floor and its growth at 100. heap-goal-MiB and stacks-MiB say
// where the growth goes. waves-1000x10 then runs ten
// waves of 1,000 and reports whether the peak or the level after a
// garbage collection rises from the first waves to the last (a leak).
func BenchmarkBinaryConcurrent100KiB(b *testing.B) {
	w, ids := concurrentWard(b)
	growth, alloc := map[int]int64{}, map[int]int64{}
	for _, clients := range []int{100, 1000} {
		b.Run(strconv.Itoa(clients), func(b *testing.B) {
			var last waveResult
			for b.Loop() {
				res := downloadWave(b, w, ids, clients)
				last = res
				growth[clients] = max(growth[clients], res.growth)
				b.ReportMetric(float64(clients)/res.elapsed.Seconds(), "downloads/s")
				b.ReportMetric(float64(clients)*concurrentSize/res.elapsed.Seconds()/1e6, "MB/s")
				b.ReportMetric(float64(res.p99.Milliseconds()), "p99-ms")
			}
			b.ReportMetric(float64(growth[clients])/(1<<20), "rss-growth-MiB")
			b.ReportMetric(float64(last.goal)/(1<<20), "heap-goal-MiB")
			b.ReportMetric(float64(last.stacks)/(1<<20), "stacks-MiB")
			b.ReportMetric(float64(last.alloc)/(1<<10), "alloc-KiB/download")
			alloc[clients] = last.alloc
		})
	}
	// The same wave against a bare net/http server, in this process: the
	// growth that comes with the connections and not with Ward.
	b.Run("net-http-1000", func(b *testing.B) {
		var floor int64
		var last waveResult
		for b.Loop() {
			last = floorWave(b, 1000)
			floor = max(floor, last.growth)
		}
		b.ReportMetric(float64(floor)/(1<<20), "rss-growth-MiB")
		b.ReportMetric(float64(last.goal)/(1<<20), "heap-goal-MiB")
		b.ReportMetric(float64(last.stacks)/(1<<20), "stacks-MiB")
		if growth[100] > 0 && growth[1000] > 0 {
			b.ReportMetric(float64(growth[1000]-floor-growth[100])/(1<<20), "over-floor-MiB")
		}
	})
	// The bare server again, its handler allocating (and dropping) as
	// much as a Ward download does: a floor for any server that makes
	// garbage, whose wave reaches the garbage collector's heap goal as
	// Ward's does.
	b.Run("net-http-1000-churn", func(b *testing.B) {
		var floor int64
		var last waveResult
		for b.Loop() {
			last = floorWaveChurn(b, 1000, max(alloc[1000], 64<<10))
			floor = max(floor, last.growth)
		}
		b.ReportMetric(float64(floor)/(1<<20), "rss-growth-MiB")
		b.ReportMetric(float64(last.goal)/(1<<20), "heap-goal-MiB")
		b.ReportMetric(float64(last.stacks)/(1<<20), "stacks-MiB")
		if growth[100] > 0 && growth[1000] > 0 {
			b.ReportMetric(float64(growth[1000]-floor-growth[100])/(1<<20), "over-churn-floor-MiB")
		}
	})
	b.Run("waves-1000x10", func(b *testing.B) {
		for b.Loop() {
			const waves = 10
			level := func() (rssMiB, heapMiB float64) {
				runtime.GC()
				debug.FreeOSMemory()
				s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				metrics.Read(s)
				return float64(rss(b)) / (1 << 20), float64(s[0].Value.Uint64()) / (1 << 20)
			}
			rss0, heap0 := level()
			var first, last int64 // highest absolute RSS of the first and the last half of the waves
			for i := range waves {
				res := downloadWave(b, w, ids, 1000)
				if i < waves/2 {
					first = max(first, res.peak)
				} else {
					last = max(last, res.peak)
				}
			}
			rss1, heap1 := level()
			b.ReportMetric(float64(last-first)/(1<<20), "peak-rise-MiB")
			b.ReportMetric(rss1-rss0, "rss-after-gc-rise-MiB")
			b.ReportMetric(heap1-heap0, "heap-after-gc-rise-MiB")
		}
	})
}

const concurrentSize, concurrentDocs = 100 << 10, 100

// concurrentWard starts Ward with 100 documents of 100 KiB and runs one
// warm-up wave of 100 downloads (pools, statements and caches filled).
func concurrentWard(t testing.TB) (*apptest.Ward, []string) {
	var w *apptest.Ward
	if b, ok := t.(*testing.B); ok {
		w = benchWard(b, "file")
	} else {
		w = apptest.Start(t, apptest.SQLite, func(cfg *config.Config) { cfg.APIRate = 0 })
	}
	ids := make([]string, concurrentDocs)
	for i := range ids {
		ids[i] = benchUpload(t, w, concurrentSize)
	}
	downloadWave(t, w, ids, 100)
	return w, ids
}

type waveResult struct {
	elapsed, p99 time.Duration
	// growth is the peak of the server's RSS during the wave over its
	// level before it (after a GC that returned free memory).
	growth int64
	// peak is that peak.
	peak int64
	// goal and stacks are the highest heap goal of the garbage collector
	// and goroutine stack memory during the wave.
	goal, stacks int64
	// alloc is what this process allocated during the wave, per client
	// (the RSS sampler's share included: a few KiB a wave).
	alloc int64
}

// downloadWave runs clients concurrent downloads of ids (round robin)
// from a child process: this test binary re-run as TestDownloadClients.
// The child does the HTTP client's share of the work (a thousand
// connections, their goroutines and buffers), so this process's RSS is
// the server's alone.
func downloadWave(t testing.TB, w *apptest.Ward, ids []string, clients int) waveResult {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDownloadClients$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "WARD_DOWNLOAD_CLIENTS="+strconv.Itoa(clients), "WARD_DOWNLOAD_URL="+w.URL,
		"WARD_DOWNLOAD_TOKEN="+w.Tokens[authz.RoleAdmin], "WARD_DOWNLOAD_IDS="+strings.Join(ids, ","),
		"WARD_DOWNLOAD_SIZE="+strconv.Itoa(concurrentSize))
	runtime.GC()
	debug.FreeOSMemory()
	base := rss(t)
	var out []byte
	var err error
	var res waveResult
	// The garbage collector's heap goal and the goroutine stacks at their
	// highest: where the RSS growth goes.
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			metrics.Read(s)
			res.goal, res.stacks = max(res.goal, int64(s[0].Value.Uint64())), max(res.stacks, int64(s[1].Value.Uint64()))
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	peak := peakRSS(t, func() { out, err = cmd.Output() })
	close(stop)
	<-sampled
	runtime.ReadMemStats(&m1)
	res.alloc = int64(m1.TotalAlloc-m0.TotalAlloc) / int64(clients)
	if err != nil {
		t.Fatalf("download clients: %v\n%s", err, out)
	}
	var errs int
	line := out[bytes.Index(out, []byte("download-wave:")):]
	if _, err := fmt.Sscanf(string(line), "download-wave: %d %d %d", &res.elapsed, &res.p99, &errs); err != nil || errs > 0 {
		t.Fatalf("download clients: %d failed (%v)\n%s", errs, err, out)
	}
	res.growth, res.peak = peak-base, peak
	return res
}

// TestDownloadClients is the child process of downloadWave (it does
// nothing in a normal test run): WARD_DOWNLOAD_CLIENTS concurrent
// downloads, each on its own connection, then one line with the
// wall time, the p99 latency and the failures.
func TestDownloadClients(t *testing.T) {
	clients, _ := strconv.Atoi(os.Getenv("WARD_DOWNLOAD_CLIENTS"))
	if clients == 0 {
		t.Skip("the child process of downloadWave")
	}
	size, _ := strconv.ParseInt(os.Getenv("WARD_DOWNLOAD_SIZE"), 10, 64)
	ids := strings.Split(os.Getenv("WARD_DOWNLOAD_IDS"), ",")
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	lat := make([]time.Duration, clients)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			t0 := time.Now()
			req, _ := http.NewRequest("GET", os.Getenv("WARD_DOWNLOAD_URL")+"/Binary/"+ids[c%len(ids)], nil)
			req.Header.Set("Authorization", "Bearer "+os.Getenv("WARD_DOWNLOAD_TOKEN"))
			req.Header.Set("Accept", "application/pdf")
			resp, err := cl.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != size {
				failed.Add(1)
			}
			lat[c] = time.Since(t0)
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	fmt.Printf("download-wave: %d %d %d\n", el, lat[clients*99/100], failed.Load())
}

// floorWave is downloadWave against a bare net/http server that holds
// every request until all clients are in (or a second has passed), then
// writes 100 KiB from memory: the memory any Go HTTP server needs for
// that many requests in flight at once, which Ward cannot go below.
func floorWave(t testing.TB, clients int) waveResult { return floorWaveChurn(t, clients, 0) }

// floorSink keeps floorWaveChurn's garbage from being optimized away.
var floorSink atomic.Pointer[[]byte]

// floorWaveChurn is floorWave with each request allocating garbage bytes
// (in 4 KiB pieces) before it answers.
func floorWaveChurn(t testing.TB, clients int, garbage int64) waveResult {
	body := make([]byte, concurrentSize)
	var in atomic.Int64
	all := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.Add(1) == int64(clients) {
			close(all)
		}
		for n := int64(0); n < garbage; n += 4 << 10 {
			b := make([]byte, 4<<10)
			floorSink.Store(&b)
		}
		select {
		case <-all:
		case <-time.After(time.Second):
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(body)
	}))
	defer srv.Close()
	ids := make([]string, concurrentDocs)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return downloadWave(t, &apptest.Ward{URL: srv.URL, Tokens: map[authz.Role]string{authz.RoleAdmin: "floor"}}, ids, clients)
}
