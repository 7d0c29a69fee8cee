package app_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/alerts"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/docseal"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// fetch is a GET that tolerates a response cut short (Do fails on it).
func fetch(t *testing.T, w *docWard, path string, role authz.Role, headers ...string) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", w.Server.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+w.Tokens[role])
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (w *docWard) objectOf(t *testing.T, id string) string {
	t.Helper()
	var found []string
	for _, k := range w.objects() {
		if strings.Contains(k, "/"+id+"/") {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("objects of Binary/%s: %v", id, found)
	}
	return found[0]
}

func (w *docWard) ledgerHas(t *testing.T, action, entity string) bool {
	for _, rec := range w.Ledger(t) {
		if rec.Action == action && len(rec.Entities) > 0 && strings.Contains(rec.Entities[0], entity) {
			return true
		}
	}
	return false
}

// TestBinaryTamper: a changed segment, segments reordered, an object cut
// short, and two objects swapped are each detected; no byte past the
// bad segment is sent; the failure is logged (ids only) and recorded.
func TestBinaryTamper(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		A := authz.RoleAdmin
		doc := fakePDF(4*docseal.SegmentSize + 999)
		seg := func(b []byte, i int) []byte { return b[i*docseal.SegmentSize : min((i+1)*docseal.SegmentSize, len(b))] }
		for _, c := range []struct {
			name   string
			change func(obj, other []byte) []byte
			max    int64 // plaintext bytes that may be sent before the failure
		}{
			{"flip", func(o, _ []byte) []byte { o = bytes.Clone(o); o[2*docseal.SegmentSize+7] ^= 0x80; return o }, segBoundary(2)},
			{"reorder", func(o, _ []byte) []byte {
				o = bytes.Clone(o)
				s1, s2 := bytes.Clone(seg(o, 1)), bytes.Clone(seg(o, 2))
				copy(seg(o, 1), s2)
				copy(seg(o, 2), s1)
				return o
			}, segBoundary(1)},
			{"truncate", func(o, _ []byte) []byte { return o[:3*docseal.SegmentSize] }, segBoundary(3)},
			{"swap", func(_, other []byte) []byte { return other }, 0},
		} {
			id := w.upload(t, A, "application/pdf", doc)
			other := w.upload(t, A, "application/pdf", doc) // same content, another Binary
			key := w.objectOf(t, id)
			w.putObject(key, c.change(w.objectBytes(key), w.objectBytes(w.objectOf(t, other))))
			status, body, err := fetch(t, w, "/fhir/Binary/"+id, A, "Accept: application/pdf")
			if status == 200 && err == nil && len(body) == len(doc) {
				t.Fatalf("%s: the tampered content was served whole", c.name)
			}
			if int64(len(body)) > c.max && status == 200 || status == 200 && !bytes.Equal(body, doc[:len(body)]) {
				t.Fatalf("%s: %d bytes sent, at most %d allowed", c.name, len(body), c.max)
			}
			if !w.ledgerHas(t, "binary-integrity", "Binary/"+id) {
				t.Fatalf("%s: no binary-integrity ledger record", c.name)
			}
		}
		if !strings.Contains(w.Log.String(), "binary content failed its integrity check") {
			t.Fatal("the failure was not logged")
		}
		// Each failure raises the shipped content-integrity alert, whose
		// ledger record becomes a security.alert event.
		ctx := context.Background()
		runner := w.App.NewAlertRunner(alerts.Default())
		for {
			n, _, err := runner.Step(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		raised, failures := 0, 0
		for _, r := range w.Ledger(t) {
			if r.Action == alerts.ActionAlert && r.Detail == "content-integrity" {
				raised++
			}
			if r.Action == "binary-integrity" {
				failures++
			}
		}
		if failures < 4 || raised != failures {
			t.Fatalf("%d content-integrity alerts for %d integrity failures (at least 4)", raised, failures)
		}
		evs, err := w.App.Store.(storetest.Outboxer).OutboxAfter(ctx, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, e := range evs {
			if e.Type == events.SecurityAlert {
				sent++
			}
		}
		if sent < 4 {
			t.Fatalf("%d security.alert events, want at least 4", sent)
		}
		if strings.Contains(w.Log.String(), "planted-document") {
			t.Fatal("document content in the log")
		}
	})
}

// TestAttachmentIntegrity: a declared hash or size that does not match
// is 422 and leaves nothing; absent ones are filled in; large inline data
// is moved to a Binary.
func TestAttachmentIntegrity(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		A := authz.RoleAdmin
		pid := uniq("docpat")
		patientOf(t, w.Ward, pid, physicianRef)
		big := fakePDF(200 << 10)
		good := sha1.Sum(big)
		docRef := func(att string) []byte {
			return []byte(`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/` + pid + `"},"content":[{"attachment":` + att + `}]}`)
		}
		before := len(w.objects())
		bad := base64.StdEncoding.EncodeToString(make([]byte, 20))
		for _, att := range []string{
			`{"contentType":"application/pdf","data":"` + base64.StdEncoding.EncodeToString(big) + `","hash":"` + bad + `"}`,
			`{"contentType":"application/pdf","data":"` + base64.StdEncoding.EncodeToString(big) + `","size":5}`,
		} {
			r := w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], docRef(att))
			if r.Status != 422 {
				t.Fatalf("mismatch: %d %s", r.Status, r.Body)
			}
		}
		if n := len(w.objects()); n != before {
			t.Fatalf("a refused document left %d objects", n-before)
		}
		if r := w.Do(t, "GET", "/fhir/DocumentReference?subject=Patient/"+pid, w.Tokens[A], nil); strings.Contains(string(r.Body), `"DocumentReference"`) && strings.Contains(string(r.Body), `"entry"`) {
			t.Fatalf("a refused document is visible: %s", r.Body)
		}
		r := w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], docRef(`{"contentType":"application/pdf","data":"`+base64.StdEncoding.EncodeToString(big)+`","hash":"`+base64.StdEncoding.EncodeToString(good[:])+`"}`))
		if r.Status != 201 {
			t.Fatalf("good hash: %d %s", r.Status, r.Body)
		}
		att := r.JSON(t)["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
		ref, _ := att["url"].(string)
		if _, inline := att["data"]; inline || !strings.HasPrefix(ref, "Binary/") || fmt.Sprint(att["size"]) != fmt.Sprint(len(big)) {
			t.Fatalf("large inline data not moved to a Binary: %v", att)
		}
		if status, body, err := fetch(t, w, "/fhir/"+ref, authz.RolePhysician, "Accept: application/pdf"); status != 200 || err != nil || !bytes.Equal(body, big) {
			t.Fatalf("moved content as the physician (through the DocumentReference): %d %v", status, err)
		}
		// A url to a Binary: size and hash filled in, or checked.
		id := w.upload(t, A, "image/jpeg", fakeJPEG(3000))
		r = w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], docRef(`{"contentType":"image/jpeg","url":"Binary/`+id+`"}`))
		att = r.JSON(t)["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
		sum := sha1.Sum(fakeJPEG(3000))
		if r.Status != 201 || att["hash"] != base64.StdEncoding.EncodeToString(sum[:]) || fmt.Sprint(att["size"]) != "3000" {
			t.Fatalf("hash and size not filled in: %d %v", r.Status, att)
		}
		if r := w.Do(t, "POST", "/fhir/DocumentReference", w.Tokens[A], docRef(`{"url":"Binary/`+id+`","hash":"`+bad+`"}`)); r.Status != 422 {
			t.Fatalf("url with a wrong hash: %d", r.Status)
		}
	})
}

// TestBinaryAccess: with a security context, the referenced resource's
// decision (care relationship, consent, labels); without one, the
// creator and admins.
func TestBinaryAccess(t *testing.T) {
	for _, db := range []apptest.Backend{apptest.SQLite, apptest.Postgres} {
		t.Run(string(db), func(t *testing.T) { testBinaryAccess(t, db) })
	}
}

// testBinaryAccess: reads, searches and history of a Binary follow its
// securityContext (care relationship, consent, labels) or, without one,
// its creator and admins.
func testBinaryAccess(t *testing.T, db apptest.Backend) {
	w := &docWard{Ward: apptest.Start(t, db)}
	A, P, N := authz.RoleAdmin, authz.RolePhysician, authz.RoleNurse
	cared, denied := uniq("cared"), uniq("denied")
	patientOf(t, w.Ward, cared, physicianRef)
	patientOf(t, w.Ward, denied, physicianRef)
	cid := uniq("consent")
	put(t, w.Ward, A, "Consent", cid, consentBody(cid, denied, "active"))
	apptest.AddLinkedUser(t, w.App.Store, w.Config.Tenant, "cleared-admin", A, &store.User{Clearances: []string{"PSY"}})
	cleared := w.Login(t, "cleared-admin", apptest.Password)
	r := w.Do(t, "POST", "/fhir/Observation", cleared, []byte(`{"resourceType":"Observation","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]},"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+cared+`"}}`))
	labeled, _ := r.JSON(t)["id"].(string)
	plain := w.Create(t, A, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+cared+`"}}`)
	doc := fakeJPEG(500)
	byRef := map[string]string{}
	for _, sc := range []string{"Patient/" + cared, "Patient/" + denied, "Observation/" + plain} {
		byRef[sc] = w.upload(t, A, "image/jpeg", doc, "X-Security-Context: "+sc)
	}
	if r := w.Do(t, "POST", "/fhir/Binary", cleared, doc, "Content-Type: image/jpeg", "X-Security-Context: Observation/"+labeled); r.Status != 201 {
		t.Fatalf("upload bound to the labeled observation: %d %s", r.Status, r.Body)
	} else {
		byRef["Observation/"+labeled] = r.JSON(t)["id"].(string)
	}
	mine := w.upload(t, P, "image/jpeg", doc)
	apptest.AddLinkedUser(t, w.App.Store, w.Config.Tenant, "physician-2", P, &store.User{Practitioner: "pract-2"})
	w.Tokens["physician-2"] = w.Login(t, "physician-2", apptest.Password)
	for _, c := range []struct {
		name string
		role authz.Role
		id   string
		want int
	}{
		{"physician, patient in care", P, byRef["Patient/"+cared], 200},
		{"physician, consent denies", P, byRef["Patient/"+denied], 403},
		{"nurse, no care relationship", N, byRef["Patient/"+cared], 403},
		{"physician, labeled observation", P, byRef["Observation/"+labeled], 403},
		{"physician, unlabeled observation", P, byRef["Observation/"+plain], 200},
		{"creator", P, mine, 200},
		{"not the creator", "physician-2", mine, 403},
		{"admin", A, mine, 200},
	} {
		for _, accept := range []string{"image/jpeg", "application/fhir+json"} {
			status, body, _ := fetch(t, w, "/fhir/Binary/"+c.id, c.role, "Accept: "+accept)
			if status != c.want {
				t.Errorf("%s (%s): %d, want %d: %.200s", c.name, accept, status, c.want, body)
			}
		}
		// Search, type history and instance history say the same.
		seen := c.want == 200
		for _, path := range []string{"/fhir/Binary?_id=" + c.id, "/fhir/Binary?_count=100", "/fhir/Binary/_history?_count=100"} {
			status, body, _ := fetch(t, w, path, c.role, "Accept: application/fhir+json")
			if status != 200 {
				t.Errorf("%s: %s: %d %.200s", c.name, path, status, body)
				continue
			}
			if got := bytes.Contains(body, []byte(`"id":"`+c.id+`"`)); got != seen {
				t.Errorf("%s: %s lists the Binary: %v, want %v", c.name, path, got, seen)
			}
		}
		status, body, _ := fetch(t, w, "/fhir/Binary/"+c.id+"/_history", c.role, "Accept: application/fhir+json")
		if seen != (status == 200) || status == 200 && !bytes.Contains(body, []byte(`"id":"`+c.id+`"`)) {
			t.Errorf("%s: instance history: %d, want it shown: %v: %.200s", c.name, status, seen, body)
		}
	}
	// A security context the uploader may not read is refused.
	if r := w.raw(t, "POST", "/fhir/Binary", P, "image/jpeg", doc, "X-Security-Context: Patient/"+denied); r.Status != 403 {
		t.Fatalf("upload bound to a denied patient: %d", r.Status)
	}
	if r := w.raw(t, "POST", "/fhir/Binary", P, "image/jpeg", doc, "X-Security-Context: nonsense"); r.Status != 400 {
		t.Fatalf("bad security context: %d", r.Status)
	}
}

// TestNoPlaintextDocument: a planted document's text appears nowhere in
// the data directory (database, WAL, objects), the bucket or the logs.
func TestNoPlaintextDocument(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		planted := []byte("PLANTED-DISCHARGE-LETTER-" + strings.Repeat("Jane Roe, 1961-02-03, MRN 8841; ", 200))
		w.upload(t, authz.RoleAdmin, "text/plain", planted)
		w.upload(t, authz.RoleAdmin, "application/pdf", append(fakePDF(2<<20), planted...))
		needle := []byte("PLANTED-DISCHARGE-LETTER")
		for _, k := range w.objects() {
			if bytes.Contains(w.objectBytes(k), needle) {
				t.Fatalf("plaintext in object %s", k)
			}
		}
		filepath.WalkDir(w.Config.DataDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, needle) {
					t.Errorf("plaintext in %s", p)
				}
			}
			return nil
		})
		if strings.Contains(w.Log.String(), "PLANTED") {
			t.Fatal("plaintext in the log")
		}
		if w.Backend == apptest.Postgres {
			u, _ := url.Parse(w.Config.DatabaseURL)
			q := u.Query()
			schema := q.Get("search_path")
			q.Del("search_path")
			u.RawQuery = q.Encode()
			dump, err := exec.Command("pg_dump", "--data-only", "-n", schema, u.String()).Output()
			if err != nil {
				t.Fatalf("pg_dump: %v", err)
			}
			if len(dump) < 1000 || bytes.Contains(dump, needle) {
				t.Fatalf("plaintext in the database dump (or no dump: %d bytes)", len(dump))
			}
		}
	})
}

// TestTransactionAttachments: a transaction's Attachments are checked
// and moved as a single create's are: a wrong hash in any entry fails
// the whole Bundle with nothing stored (no object, no document), and
// large inline data becomes a Binary the entry's resource points to.
func TestTransactionAttachments(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		A := authz.RoleAdmin
		pid := uniq("txpat")
		patientOf(t, w.Ward, pid, physicianRef)
		big := fakePDF(200 << 10)
		good := sha1.Sum(big)
		bad := base64.StdEncoding.EncodeToString(make([]byte, 20))
		entry := func(hash string) string {
			return `{"fullUrl":"urn:uuid:` + uniq("u") + `","request":{"method":"POST","url":"DocumentReference"},"resource":` +
				`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/` + pid + `"},` +
				`"content":[{"attachment":{"contentType":"application/pdf","data":"` + base64.StdEncoding.EncodeToString(big) + `","hash":"` + hash + `"}}]}}`
		}
		bundle := func(es ...string) []byte {
			return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(es, ",") + `]}`)
		}
		goodHash := base64.StdEncoding.EncodeToString(good[:])
		before := len(w.objects())
		r := w.Do(t, "POST", "/fhir", w.Tokens[A], bundle(entry(goodHash), entry(bad)))
		if r.Status != 422 {
			t.Fatalf("a transaction with a wrong hash: %d %.300s", r.Status, r.Body)
		}
		if n := len(w.objects()); n != before {
			t.Fatalf("a refused transaction left %d objects", n-before)
		}
		if r := w.Do(t, "GET", "/fhir/DocumentReference?subject=Patient/"+pid, w.Tokens[A], nil); strings.Contains(string(r.Body), `"entry"`) {
			t.Fatalf("a refused transaction's document is visible: %.300s", r.Body)
		}
		r = w.Do(t, "POST", "/fhir", w.Tokens[A], bundle(entry(goodHash)))
		if r.Status != 200 {
			t.Fatalf("transaction: %d %.300s", r.Status, r.Body)
		}
		loc, _ := r.JSON(t)["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["location"].(string)
		id := strings.Split(loc, "/")[1]
		doc := w.Do(t, "GET", "/fhir/DocumentReference/"+id, w.Tokens[A], nil).JSON(t)
		att := doc["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
		ref, _ := att["url"].(string)
		if _, inline := att["data"]; inline || !strings.HasPrefix(ref, "Binary/") || fmt.Sprint(att["size"]) != fmt.Sprint(len(big)) {
			t.Fatalf("large inline data not moved to a Binary: %v", att)
		}
		if status, body, err := fetch(t, w, "/fhir/"+ref, authz.RolePhysician, "Accept: application/pdf"); status != 200 || err != nil || !bytes.Equal(body, big) {
			t.Fatalf("moved content as the physician: %d %v", status, err)
		}

		// An attachment naming a Binary the same transaction writes is
		// checked against that Binary's data (the clinic facade's upload).
		small := []byte("%PDF-1.4 same transaction")
		smallSum := sha1.Sum(small)
		pair := func(hash string) []byte {
			bin := uniq("bin")
			return bundle(`{"request":{"method":"PUT","url":"Binary/`+bin+`"},"resource":{"resourceType":"Binary","id":"`+bin+`","contentType":"application/pdf","data":"`+base64.StdEncoding.EncodeToString(small)+`"}}`,
				`{"fullUrl":"urn:uuid:`+uniq("u")+`","request":{"method":"POST","url":"DocumentReference"},"resource":{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/`+pid+`"},`+
					`"content":[{"attachment":{"contentType":"application/pdf","url":"Binary/`+bin+`","hash":"`+hash+`"}}]}}`)
		}
		if r := w.Do(t, "POST", "/fhir", w.Tokens[A], pair(base64.StdEncoding.EncodeToString(smallSum[:]))); r.Status != 200 {
			t.Fatalf("a document and its Binary in one transaction: %d %.300s", r.Status, r.Body)
		}
		if r := w.Do(t, "POST", "/fhir", w.Tokens[A], pair(bad)); r.Status != 422 {
			t.Fatalf("a wrong hash of a Binary of the same transaction: %d %.300s", r.Status, r.Body)
		}
	})
}
