package app_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// TestContentStreamLimit: with WARD_DOCUMENTS_MAX_STREAMS=1, a second
// download waits while the first one's body is open (its buffers are
// what the limit bounds) and completes once the first is closed. (A
// stream holds its slot until the server has written the last byte.)
func TestContentStreamLimit(t *testing.T) {
	w := &docWard{Ward: apptest.Start(t, apptest.SQLite, func(cfg *config.Config) { cfg.Documents.MaxStreams = 1 })}
	// Larger than what loopback socket buffers hold, so the first
	// handler is still streaming while its client does not read.
	body := fakePDF(48 << 20)
	id := w.upload(t, authz.RoleAdmin, "application/pdf", body)
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", w.URL+"/Binary/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
		req.Header.Set("Accept", "application/pdf")
		return w.Server.Client().Do(req)
	}
	first, err := get()
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first download: %v", err)
	}
	second := make(chan []byte, 1)
	go func() {
		resp, err := get()
		if err != nil {
			second <- nil
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		second <- b
	}()
	select {
	case b := <-second:
		t.Fatalf("the second download (%d bytes) was served while the first held the only stream", len(b))
	case <-time.After(300 * time.Millisecond):
	}
	got, _ := io.ReadAll(first.Body)
	first.Body.Close()
	if len(got) != len(body) {
		t.Fatalf("first download: %d bytes", len(got))
	}
	select {
	case b := <-second:
		if len(b) != len(body) {
			t.Fatalf("second download: %d bytes", len(b))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the second download never got the stream")
	}
}
