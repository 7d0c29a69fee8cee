package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store/storetest"
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

// TestDocumentUploadedEvent: a raw upload appends document.uploaded to
// the outbox with its version (both databases): ids only, never the
// content, its hashes or its size.
func TestDocumentUploadedEvent(t *testing.T) {
	for _, db := range apptest.Backends {
		t.Run(string(db), func(t *testing.T) {
			w := &docWard{Ward: apptest.Start(t, db)}
			body := append([]byte("%PDF-1.4 planted-document "), fakePDF(3000)...)
			id := w.upload(t, authz.RoleAdmin, "application/pdf", body)
			if r := w.Do(t, "POST", "/fhir/Patient", w.Tokens[authz.RoleAdmin], []byte(`{"resourceType":"Patient"}`)); r.Status != 201 {
				t.Fatalf("patient: %d", r.Status)
			}
			evs, err := w.App.Store.(storetest.Outboxer).OutboxAfter(context.Background(), 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range evs {
				if e.Type != events.DocumentUploaded {
					continue
				}
				n++
				env, err := events.Parse(e.JSON)
				if err != nil {
					t.Fatal(err)
				}
				if env.Subject != "Binary/"+id {
					t.Fatalf("document.uploaded subject %q", env.Subject)
				}
				if bytes.Contains(e.JSON, []byte("planted-document")) || bytes.Contains(e.JSON, []byte("sha")) {
					t.Fatalf("content in the event: %s", e.JSON)
				}
			}
			if n != 1 {
				t.Fatalf("%d document.uploaded events, want 1", n)
			}
		})
	}
}
