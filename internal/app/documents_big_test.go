//go:build !race

// The 2 GiB round trip is left out under the race detector (which slows
// it tenfold and multiplies memory); `go test` without -race runs it.

package app_test

import (
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// TestTwoGiBRoundTrip uploads and downloads a 2 GiB sparse file through
// a real listener: the content round-trips and the process's RSS grows
// by less than 64 MiB over its level before either.
func TestTwoGiBRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const size = 2 << 30
	w := &docWard{Ward: apptest.Start(t, apptest.SQLite)}
	path := filepath.Join(t.TempDir(), "sparse.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.WriteAt([]byte("%PDF-1.7 head"), 0)
	f.WriteAt([]byte("tail %%EOF"), size-10)
	h := sha256.New()
	f.Seek(0, 0)
	io.Copy(h, f)
	want := h.Sum(nil)

	runtime.GC()
	debug.FreeOSMemory()
	base := rss(t)
	var id string
	up := peakRSS(t, func() {
		f.Seek(0, 0)
		req, _ := http.NewRequest("POST", w.URL+"/Binary", f)
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
		req.Header.Set("Content-Type", "application/pdf")
		start := time.Now()
		resp, err := w.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("upload: %d %s", resp.StatusCode, b)
		}
		id = (&apptest.Response{Body: b}).JSON(t)["id"].(string)
		t.Logf("upload: %.0f MB/s", size/time.Since(start).Seconds()/1e6)
	})
	f.Close()
	down := peakRSS(t, func() {
		req, _ := http.NewRequest("GET", w.URL+"/Binary/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
		req.Header.Set("Accept", "application/pdf")
		start := time.Now()
		resp, err := w.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != size || string(h.Sum(nil)) != string(want) {
			t.Fatalf("download: %d bytes, %v, same content %v", n, err, string(h.Sum(nil)) == string(want))
		}
		t.Logf("download: %.0f MB/s", size/time.Since(start).Seconds()/1e6)
	})
	t.Logf("RSS before %d MiB, peak during upload %d MiB, during download %d MiB", base>>20, up>>20, down>>20)
	for name, peak := range map[string]int64{"upload": up, "download": down} {
		if peak-base >= 64<<20 {
			t.Errorf("%s: RSS grew by %d MiB (limit 64 MiB)", name, (peak-base)>>20)
		}
	}
}

// TestConcurrentDownloadsMemory: 1,000 concurrent downloads of 100 KiB
// documents (the clients in a child process, see downloadWave) grow
// Ward's RSS by less than 96 MiB, and by less than 80 MiB more than
// 100 concurrent downloads do. Before a download waited for its stream
// slot with the resource loaded and its 64 KiB segment buffers
// allocated before its ledger record was durable, the two were
// 117-137 MiB and 100-120 MiB. What remains grows with the number of
// connections, not with Ward's work: net/http's own buffers and two
// goroutines per request in flight, which the garbage collector's heap
// goal then doubles (docs/documents.md).
func TestConcurrentDownloadsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	w, ids := concurrentWard(t)
	small := downloadWave(t, w, ids, 100)
	large := downloadWave(t, w, ids, 1000)
	t.Logf("RSS growth: %d MiB for 100 concurrent downloads, %d MiB for 1,000", small.growth>>20, large.growth>>20)
	if large.growth >= 96<<20 || large.growth-small.growth >= 80<<20 {
		t.Errorf("RSS growth: %d MiB for 1,000 concurrent downloads (limit 96), %d MiB more than for 100 (limit 80)",
			large.growth>>20, (large.growth-small.growth)>>20)
	}
}
