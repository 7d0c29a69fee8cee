package app_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob/blobtest"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/docseal"
)

// docWard is a Ward with content on the file backend (db: the database)
// or, with s3, in a new bucket of the test S3 server.
type docWard struct {
	*apptest.Ward
	name string
	// objects lists the stored objects' keys; objectBytes reads one.
	objects     func() []string
	objectBytes func(key string) []byte
	putObject   func(key string, b []byte)
}

func docWards(t *testing.T, f func(t *testing.T, w *docWard)) {
	for _, c := range []struct {
		name string
		db   apptest.Backend
		s3   bool
	}{{"sqlite-file", apptest.SQLite, false}, {"postgres-file", apptest.Postgres, false}, {"sqlite-s3", apptest.SQLite, true}} {
		t.Run(c.name, func(t *testing.T) {
			var s3cfg func(*config.Config)
			dw := &docWard{name: c.name}
			if c.s3 {
				bc := blobtest.S3(t)
				s3cfg = func(cfg *config.Config) {
					cfg.Documents.Backend, cfg.Documents.S3Endpoint, cfg.Documents.S3Bucket = "s3", bc.Endpoint, bc.Bucket
					cfg.Documents.S3PathStyle, cfg.Documents.S3AccessKey, cfg.Documents.S3SecretKey = true, bc.AccessKey, bc.SecretKey
				}
				cl := blobtest.Client(bc)
				dw.objects = func() []string { return blobtest.Keys(t, bc) }
				dw.objectBytes = func(k string) []byte { return blobtest.Get(t, cl, bc.Bucket, k) }
				dw.putObject = func(k string, b []byte) { blobtest.Put(t, cl, bc.Bucket, k, b) }
			} else {
				s3cfg = func(*config.Config) {}
			}
			dw.Ward = apptest.Start(t, c.db, s3cfg, func(cfg *config.Config) { cfg.Documents.InlineMax = 64 << 10 })
			if !c.s3 {
				root := filepath.Join(dw.Config.DataDir, "documents", "objects")
				dw.objects = func() []string {
					var keys []string
					filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
						if err == nil && !d.IsDir() {
							rel, _ := filepath.Rel(root, p)
							keys = append(keys, filepath.ToSlash(rel))
						}
						return nil
					})
					return keys
				}
				dw.objectBytes = func(k string) []byte {
					b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(k)))
					if err != nil {
						t.Fatal(err)
					}
					return b
				}
				dw.putObject = func(k string, b []byte) {
					os.MkdirAll(filepath.Dir(filepath.Join(root, filepath.FromSlash(k))), 0o700)
					if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(k)), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Content objects only (b/...): the store also holds the
			// shred list (shred/...), which is not a document.
			all := dw.objects
			dw.objects = func() []string {
				var keys []string
				for _, k := range all() {
					if strings.HasPrefix(k, "b/") {
						keys = append(keys, k)
					}
				}
				return keys
			}
			f(t, dw)
		})
	}
}

// upload posts raw content as role and returns the Binary id.
func (w *docWard) upload(t *testing.T, role authz.Role, ct string, body []byte, headers ...string) string {
	t.Helper()
	r := w.raw(t, "POST", "/fhir/Binary", role, ct, body, headers...)
	if r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

func (w *docWard) raw(t *testing.T, method, path string, role authz.Role, ct string, body []byte, headers ...string) *apptest.Response {
	t.Helper()
	return w.Do(t, method, path, w.Tokens[role], body, append([]string{"Content-Type: " + ct}, headers...)...)
}

func fakePDF(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{3}).Read(b)
	copy(b, "%PDF-1.7\n% planted-document-7f3a9c\n")
	return b
}

func fakeJPEG(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{4}).Read(b)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

// segBoundary is the plaintext offset where ciphertext segment i starts
// (Tink's AES-GCM-HKDF header is 40 bytes for 32-byte keys).
func segBoundary(i int64) int64 {
	first := int64(docseal.SegmentSize - 40 - docseal.Overhead)
	return first + (i-1)*(docseal.SegmentSize-docseal.Overhead)
}

func TestBinaryContentRoundTrip(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		A := authz.RoleAdmin
		pdf := fakePDF(3*docseal.SegmentSize + 12345)
		jpeg := fakeJPEG(40 << 10)
		sparse := make([]byte, 5<<20) // mostly zeros: a sparse file
		sparse[len(sparse)-1] = 1
		for _, c := range []struct {
			name, ct string
			body     []byte
		}{{"pdf", "application/pdf", pdf}, {"jpeg", "image/jpeg", jpeg}, {"sparse", "application/octet-stream", sparse}} {
			id := w.upload(t, A, c.ct, c.body)
			r := w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: "+c.ct)
			if r.Status != 200 || !bytes.Equal(r.Body, c.body) {
				t.Fatalf("%s: %d, %d bytes, equal %v", c.name, r.Status, len(r.Body), bytes.Equal(r.Body, c.body))
			}
			if r.Header.Get("Content-Type") != c.ct || r.Header.Get("Content-Length") != fmt.Sprint(len(c.body)) || r.Header.Get("ETag") != `"1"` {
				t.Fatalf("%s: headers %v", c.name, r.Header)
			}
			// The FHIR resource: data only when small.
			r = w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: application/fhir+json")
			js := r.JSON(t)
			_, hasData := js["data"]
			if r.Status != 200 || js["contentType"] != c.ct || hasData != (len(c.body) <= 64<<10) {
				t.Fatalf("%s: FHIR read %d data=%v %.200s", c.name, r.Status, hasData, r.Body)
			}
			if hasData {
				d, _ := base64.StdEncoding.DecodeString(js["data"].(string))
				if !bytes.Equal(d, c.body) {
					t.Fatalf("%s: data differs", c.name)
				}
			}
		}
		// Ranges, at and around segment boundaries.
		id := w.upload(t, A, "application/pdf", pdf)
		n := int64(len(pdf))
		for _, rg := range [][2]int64{{0, 0}, {segBoundary(1) - 1, segBoundary(1)}, {segBoundary(1), segBoundary(2) - 1},
			{segBoundary(2) - 5, segBoundary(3) + 5}, {n - 10, n - 1}} {
			r := w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: application/pdf", fmt.Sprintf("Range: bytes=%d-%d", rg[0], rg[1]))
			if r.Status != 206 || !bytes.Equal(r.Body, pdf[rg[0]:rg[1]+1]) || r.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", rg[0], rg[1], n) {
				t.Fatalf("range %v: %d %q %d bytes", rg, r.Status, r.Header.Get("Content-Range"), len(r.Body))
			}
		}
		if r := w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: application/pdf", "Range: bytes=-100"); r.Status != 206 || !bytes.Equal(r.Body, pdf[n-100:]) {
			t.Fatalf("suffix range: %d", r.Status)
		}
		if r := w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: application/pdf", fmt.Sprintf("Range: bytes=%d-", n)); r.Status != 416 || r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
			t.Fatalf("unsatisfiable range: %d %v", r.Status, r.Header)
		}
		// A new version; the old content stays readable by version.
		v2 := fakeJPEG(1000)
		if r := w.raw(t, "PUT", "/fhir/Binary/"+id, A, "image/jpeg", v2, `If-Match: W/"1"`); r.Status != 200 {
			t.Fatalf("put v2: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "GET", "/fhir/Binary/"+id, w.Tokens[A], nil, "Accept: image/jpeg"); !bytes.Equal(r.Body, v2) {
			t.Fatal("current content is not version 2")
		}
		if r := w.Do(t, "GET", "/fhir/Binary/"+id+"/_history/1", w.Tokens[A], nil, "Accept: application/pdf"); r.Status != 200 || !bytes.Equal(r.Body, pdf) {
			t.Fatalf("version 1: %d", r.Status)
		}
		// Every download is in the ledger with its byte count.
		var found bool
		for _, rec := range w.Ledger(t) {
			if rec.Action == "read" && rec.ResourceType == "Binary" && rec.Detail == fmt.Sprintf("bytes=%d", len(pdf)) {
				found = true
			}
		}
		if !found {
			t.Fatal("no ledger record of a download with its byte count")
		}
	})
}
