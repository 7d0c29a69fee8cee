package records_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestTransactionMovedBinaryAtomic: the Binary that takes a transaction
// entry's large inline Attachment data commits in the transaction's own
// unit. A commit that fails leaves no Binary; one that is retried (a lost
// race, injected) leaves exactly one, the one the DocumentReference names.
func TestTransactionMovedBinaryAtomic(t *testing.T) {
	for _, db := range []apptest.Backend{apptest.SQLite, apptest.Postgres} {
		t.Run(string(db), func(t *testing.T) {
			w := apptest.Start(t, db)
			A := authz.RoleAdmin
			pid := w.Create(t, A, `{"resourceType":"Patient","gender":"other"}`)
			data := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("%PDF-1.4 moved ", 10<<10)))
			bundle := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c0c1e-0000-4000-8000-000000000001",` +
				`"request":{"method":"POST","url":"DocumentReference"},"resource":{"resourceType":"DocumentReference","status":"current",` +
				`"subject":{"reference":"Patient/` + pid + `"},"content":[{"attachment":{"contentType":"application/pdf","data":"` + data + `"}}]}}]}`)
			// binaries are the Binaries committed (each commit writes its
			// ledger records in the same unit; search would not show an
			// orphan, whose security context does not exist).
			binaries := func() []string {
				var ids []string
				for _, rec := range w.Ledger(t) {
					for _, e := range rec.Entities {
						if rest, ok := strings.CutPrefix(e, "Binary/"); ok && rec.Action == "create" {
							ids = append(ids, strings.Split(rest, "/")[0])
						}
					}
				}
				return ids
			}
			// objects are the content objects stored.
			// Content objects only (b/...): the store also holds the
			// shred list's key (shred/...).
			objects := func() (n int) {
				filepath.WalkDir(filepath.Join(w.Config.DataDir, "documents", "objects", "b"), func(_ string, d os.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						n++
					}
					return nil
				})
				return n
			}
			// failOn fails the commit of the units that write a
			// DocumentReference, n times, with err.
			failOn := func(n int, err error) func() {
				return records.SetCommitFault(func(u *store.Unit) error {
					for _, wr := range u.Writes {
						if wr.Type == "DocumentReference" && n > 0 {
							n--
							return err
						}
					}
					return nil
				})
			}

			restore := failOn(1, errors.New("injected failure"))
			r := w.Do(t, "POST", "/fhir", w.Tokens[A], bundle)
			restore()
			if r.Status < 500 {
				t.Fatalf("transaction with an injected failure: %d %.300s", r.Status, r.Body)
			}
			if ids := binaries(); len(ids) != 0 {
				t.Fatalf("a failed transaction left Binaries %v", ids)
			}
			// A failure other than a lost race may have committed after
			// all: its object is the sweeper's to remove.
			if _, err := w.App.Records.SweepContent(context.Background(), -time.Second); err != nil {
				t.Fatal(err)
			}
			if n := objects(); n != 0 {
				t.Fatalf("a failed transaction left %d objects after the sweep", n)
			}

			restore = failOn(1, fmt.Errorf("%w: injected lost race", store.ErrConflict))
			r = w.Do(t, "POST", "/fhir", w.Tokens[A], bundle)
			restore()
			if r.Status != 200 {
				t.Fatalf("retried transaction: %d %.300s", r.Status, r.Body)
			}
			loc, _ := r.JSON(t)["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["location"].(string)
			doc := w.Do(t, "GET", "/fhir/"+strings.Join(strings.Split(loc, "/")[:2], "/"), w.Tokens[A], nil).JSON(t)
			att := doc["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
			ids := binaries()
			if n := objects(); len(ids) != 1 || att["url"] != "Binary/"+ids[0] || n != 1 {
				t.Fatalf("after a retried transaction: Binaries %v and %d objects, the document names %v; want exactly the one it names", ids, n, att["url"])
			}
		})
	}
}
