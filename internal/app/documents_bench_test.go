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
func BenchmarkBinaryConcurrent100KiB(b *testing.B) {
	w, ids := concurrentWard(b)
	for _, clients := range []int{100, 1000} {
		b.Run(strconv.Itoa(clients), func(b *testing.B) {
			var growth int64
			for b.Loop() {
				res := downloadWave(b, w, ids, clients)
				growth = max(growth, res.growth)
				b.ReportMetric(float64(clients)/res.elapsed.Seconds(), "downloads/s")
				b.ReportMetric(float64(clients)*concurrentSize/res.elapsed.Seconds()/1e6, "MB/s")
				b.ReportMetric(float64(res.p99.Milliseconds()), "p99-ms")
			}
			b.ReportMetric(float64(growth)/(1<<20), "rss-growth-MiB")
		})
	}
	// The same wave against a bare net/http server, in this process: the
	// growth that comes with the connections and not with Ward.
	b.Run("net-http-1000", func(b *testing.B) {
		var growth int64
		for b.Loop() {
			growth = max(growth, floorWave(b, 1000).growth)
		}
		b.ReportMetric(float64(growth)/(1<<20), "rss-growth-MiB")
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
	peak := peakRSS(t, func() { out, err = cmd.Output() })
	if err != nil {
		t.Fatalf("download clients: %v\n%s", err, out)
	}
	var res waveResult
	var errs int
	line := out[bytes.Index(out, []byte("download-wave:")):]
	if _, err := fmt.Sscanf(string(line), "download-wave: %d %d %d", &res.elapsed, &res.p99, &errs); err != nil || errs > 0 {
		t.Fatalf("download clients: %d failed (%v)\n%s", errs, err, out)
	}
	res.growth = peak - base
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
func floorWave(t testing.TB, clients int) waveResult {
	body := make([]byte, concurrentSize)
	var in atomic.Int64
	all := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.Add(1) == int64(clients) {
			close(all)
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
