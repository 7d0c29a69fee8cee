package records_test

import (
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestSupersedeAtomic: a DocumentReference that replaces another marks
// it superseded in the same commit as its own creation; a failure of
// that commit (injected) leaves neither the new document nor the old
// one's status change.
func TestSupersedeAtomic(t *testing.T) {
	for _, db := range []apptest.Backend{apptest.SQLite, apptest.Postgres} {
		t.Run(string(db), func(t *testing.T) {
			w := apptest.Start(t, db)
			A := authz.RoleAdmin
			pid := w.Create(t, A, `{"resourceType":"Patient","gender":"other"}`)
			doc := func(extra string) []byte {
				return []byte(`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/` + pid + `"},` +
					`"content":[{"attachment":{"contentType":"text/plain","url":"http://example.org/x"}}]` + extra + `}`)
			}
			old := w.Create(t, A, string(doc("")))
			replacing := doc(`,"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/` + old + `"}}]`)
			statusOf := func() string {
				r := w.Do(t, "GET", "/fhir/DocumentReference/"+old, w.Tokens[A], nil)
				s, _ := r.JSON(t)["status"].(string)
				return s
			}
			count := func() float64 {
				r := w.Do(t, "GET", "/fhir/DocumentReference?patient="+pid+"&_total=accurate", w.Tokens[A], nil)
				n, _ := r.JSON(t)["total"].(float64)
				return n
			}
			restore := records.SetCommitFault(func(u *store.Unit) error {
				for _, wr := range u.Writes {
					if wr.ID == old {
						return errors.New("injected failure")
					}
				}
				return nil
			})
			r := w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], replacing)
			restore()
			if r.Status < 500 {
				t.Fatalf("create with an injected failure: %d %s", r.Status, r.Body)
			}
			if n, s := count(), statusOf(); n != 1 || s != "current" {
				t.Fatalf("after the failed commit: %v documents, the old one %q; want 1 and current", n, s)
			}
			if r := w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], replacing); r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			if n, s := count(), statusOf(); n != 2 || s != "superseded" {
				t.Fatalf("after the commit: %v documents, the old one %q; want 2 and superseded", n, s)
			}
		})
	}
}
