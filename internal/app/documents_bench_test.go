package app_test

import (
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
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

func benchUpload(b *testing.B, w *apptest.Ward, n int64) string {
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

// BenchmarkBinaryConcurrent100KiB: 1,000 concurrent downloads of 100 KiB
// documents (100 documents, each read by 10 clients): throughput, p99
// latency and the RSS peak.
func BenchmarkBinaryConcurrent100KiB(b *testing.B) {
	const size, docs, clients = 100 << 10, 100, 1000
	w := benchWard(b, "file")
	ids := make([]string, docs)
	for i := range ids {
		ids[i] = benchUpload(b, w, size)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	base := rss(b)
	var peak int64
	for b.Loop() {
		lat := make([]time.Duration, clients)
		var wg sync.WaitGroup
		start := time.Now()
		p := peakRSS(b, func() {
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					req, _ := http.NewRequest("GET", w.URL+"/Binary/"+ids[c%docs], nil)
					req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
					req.Header.Set("Accept", "application/pdf")
					resp, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || n != size {
						b.Errorf("download: %d, %d bytes", resp.StatusCode, n)
					}
					lat[c] = time.Since(t0)
				}()
			}
			wg.Wait()
		})
		el := time.Since(start)
		peak = max(peak, p)
		slices.Sort(lat)
		b.ReportMetric(float64(clients)/el.Seconds(), "downloads/s")
		b.ReportMetric(float64(clients*size)/el.Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(lat[clients*99/100].Milliseconds()), "p99-ms")
	}
	b.ReportMetric(float64(peak-base)/(1<<20), "rss-growth-MiB")
}
