package app_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// TestEraseSurvivesRestore: a backup taken before Patient/$erase, restored
// after it, does not bring the patient back. The restore re-applies the
// erasure from the shred list (kept in the document store, outside the
// backup) with a ledger record: the patient reads 410, no data key the
// restored Ward holds opens any stored version, the planted values are in
// no file of the restored data directory, the documents or a pg_dump, the
// ledger verifies and the other patient is untouched. A shred list that
// is missing, tampered with or lacks an erasure the restored ledger holds
// is refused.
func TestEraseSurvivesRestore(t *testing.T) {
	const (
		family = "Zqyrestorefamily"
		mrn    = "MRN-ZQY-551234"
		note   = "Zqyplantednote of a restored record"
		blob   = "Zqyblobcontent "
	)
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			if backend == apptest.Postgres {
				if _, err := exec.LookPath("pg_dump"); err != nil {
					t.Skip("pg_dump not installed")
				}
			}
			ctx := context.Background()
			w := apptest.Start(t, backend)
			cfg := w.Config
			docs := filepath.Join(cfg.DataDir, "documents")
			po := w.Tokens[authz.RolePrivacyOfficer]
			p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+family+`","given":["Zqygiven"]}],"identifier":[{"system":"urn:mrn","value":"`+mrn+`"}],"birthDate":"1929-03-19"}`)
			p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Staysfamily"}]}`)
			o1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p1+`"},"note":[{"text":"`+note+`"}]}`)
			o3 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"z"},"subject":{"reference":"Patient/`+p2+`"}}`)
			bin := uploadFor(t, w, p1, bytes.Repeat([]byte(blob), 500))
			erased := []string{"Patient/" + p1, "Observation/" + o1, "Binary/" + bin}

			// The backup, before the erasure.
			out := filepath.Join(t.TempDir(), "backup")
			if _, err := app.Backup(ctx, cfg, out); err != nil {
				t.Fatal(err)
			}
			var src, schema string
			if backend == apptest.Postgres {
				src, schema = pgSplit(t, cfg.DatabaseURL)
				if b, err := exec.Command("pg_dump", "-Fc", "-n", schema, "-f", filepath.Join(out, "ward.dump"), src).CombinedOutput(); err != nil {
					t.Fatalf("pg_dump: %v %s", err, b)
				}
			}
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`)
			if r := w.Do(t, "POST", "/fhir/Patient/"+p1+"/$erase", po, body); r.Status != 200 {
				t.Fatalf("erase: %d %s", r.Status, r.Body)
			}
			// A second backup, after it (for the refusals below).
			after := filepath.Join(t.TempDir(), "after")
			if _, err := app.Backup(ctx, cfg, after); err != nil {
				t.Fatal(err)
			}
			if backend == apptest.Postgres {
				if b, err := exec.Command("pg_dump", "-Fc", "-n", schema, "-f", filepath.Join(after, "ward.dump"), src).CombinedOutput(); err != nil {
					t.Fatalf("pg_dump: %v %s", err, b)
				}
			}
			w.Server.Close()
			w.App.Close()

			// restoreTo prepares an empty target of a backup: a data
			// directory (SQLite) or a database filled by pg_restore.
			n := 0
			restoreTo := func(from string) config.Config {
				n++
				c := cfg
				c.DataDir = filepath.Join(t.TempDir(), "restored")
				c.Documents.Dir = docs // the same document store
				if backend == apptest.SQLite {
					c.KeyFile = filepath.Join(cfg.DataDir, app.KeyFileName)
					return c
				}
				name := "ward_shred_restored_" + string(rune('a'+n))
				admin := pgtest.DB(t, src, 1)
				admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
				if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
				u, _ := url.Parse(src)
				u.Path = "/" + name
				if b, err := exec.Command("pg_restore", "-d", u.String(), filepath.Join(from, "ward.dump")).CombinedOutput(); err != nil {
					t.Fatalf("pg_restore: %v %s", err, b)
				}
				q := u.Query()
				q.Set("search_path", schema)
				u.RawQuery = q.Encode()
				c.DatabaseURL = u.String()
				return c
			}

			// Refusals: no shred list where named; a tampered entry; a
			// list that lacks an erasure the restored ledger holds.
			empty := t.TempDir()
			if _, err := app.Restore(ctx, restoreTo(out), out, app.RestoreOptions{ShredList: empty}); err == nil || !strings.Contains(err.Error(), "no shred list") {
				t.Fatalf("restore without a shred list: %v", err)
			}
			entries := shredEntries(t, docs)
			if len(entries) != 1 {
				t.Fatalf("%d shred-list entries, want 1", len(entries))
			}
			tampered := copyTree(t, docs)
			f := filepath.Join(tampered, "objects", "shred", "e", filepath.Base(entries[0]))
			b, _ := os.ReadFile(f)
			os.WriteFile(f, bytes.Replace(b, []byte(p1), []byte(p2), 1), 0o600)
			if _, err := app.Restore(ctx, restoreTo(out), out, app.RestoreOptions{ShredList: tampered}); err == nil || !strings.Contains(err.Error(), "tampered") {
				t.Fatalf("restore with a tampered shred list: %v", err)
			}
			cut := copyTree(t, docs)
			os.Remove(filepath.Join(cut, "objects", "shred", "e", filepath.Base(entries[0])))
			if _, err := app.Restore(ctx, restoreTo(after), after, app.RestoreOptions{ShredList: cut}); err == nil || !strings.Contains(err.Error(), "lacks the erasure") {
				t.Fatalf("restore with a shred list missing an erasure: %v", err)
			}

			// The restore of the backup taken before the erasure.
			restored := restoreTo(out)
			var progress bytes.Buffer
			v, err := app.Restore(ctx, restored, out, app.RestoreOptions{Progress: &progress})
			if err != nil || v.Reapplied != 1 || !strings.Contains(progress.String(), p1) {
				t.Fatalf("restore: reapplied %d, %v (%s)", v.Reapplied, err, progress.String())
			}
			w2 := apptest.Reopen(t, w, restored)
			for _, ref := range erased {
				if r := w2.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 410 {
					t.Fatalf("read %s after the restore: %d %s", ref, r.Status, r.Body)
				}
				if r := w2.Do(t, "GET", "/fhir/"+ref+"/_history/1", po, nil); r.Status != 410 {
					t.Fatalf("vread %s after the restore: %d %s", ref, r.Status, r.Body)
				}
			}
			if r := w2.Do(t, "GET", "/fhir/Patient?identifier="+mrn, po, nil); r.Status != 200 || strings.Contains(string(r.Body), p1) {
				t.Fatalf("search after the restore: %d %s", r.Status, r.Body)
			}
			if k, err := w2.App.Store.Key(ctx, keys.PatientKeyID(cfg.Tenant, p1)); err != nil || k.State != store.KeyDestroyed || len(k.Wrapped) != 0 {
				t.Fatalf("the patient's key after the restore: %+v %v", k, err)
			}
			assertUnreadable(t, w2.App.Store, restored, erased)
			ledger := w2.Ledger(t)
			found := false
			for _, r := range ledger {
				if r.Action == "erase-reapply" && slices.Contains(r.Entities, "Patient/"+p1) {
					found = true
				}
			}
			if !found {
				t.Fatal("no erase-reapply ledger record")
			}
			if _, _, err := app.VerifyLedger(ctx, w2.App.Store); err != nil {
				t.Fatalf("ledger: %v", err)
			}
			for _, ref := range []string{"Patient/" + p2, "Observation/" + o3} {
				if r := w2.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 200 {
					t.Fatalf("read %s after the restore: %d %s", ref, r.Status, r.Body)
				}
			}

			// Nothing planted on disk: the restored data directory, the
			// documents, a pg_dump of the restored database.
			planted := []string{family, mrn, "Zqyplantednote", "1929-03-19", "Zqyblobcontent", "Zqygiven"}
			dumps := onDisk(t, backend, restored.DatabaseURL, restored.DataDir, docs)
			if len(dumps) < 2 {
				t.Fatal("nothing on disk to grep")
			}
			for _, d := range dumps {
				for _, s := range planted {
					if bytes.Contains(d, []byte(s)) {
						t.Fatalf("%q found on disk after the restore", s)
					}
				}
			}
			// Restoring the same backup again re-applies it again, into
			// that new copy; a restore of the backup taken after the
			// erasure has nothing to re-apply.
			w2.Server.Close()
			w2.App.Close()
			if v, err := app.Restore(ctx, restoreTo(after), after, app.RestoreOptions{}); err != nil || v.Reapplied != 0 {
				t.Fatalf("restore of the later backup: %d %v", v.Reapplied, err)
			}
		})
	}
}

// uploadFor uploads raw content as a Binary of patient p.
func uploadFor(t *testing.T, w *apptest.Ward, p string, content []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", w.URL+"/Binary", bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Security-Context", "Patient/"+p)
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return (&apptest.Response{Body: b}).JSON(t)["id"].(string)
}

// shredEntries lists the entry files of the shred list in docs.
func shredEntries(t *testing.T, docs string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(docs, "objects", "shred", "e", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyTree copies the directory src into a new temporary one.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestEraseTenantKeyVersions: records written before per-patient keys
// (sealed under the tenant's key, not moved by keys migrate) are erased
// too: every stored version of the patient's resources, whatever key
// sealed it, no longer opens with any key Ward holds, and the Binary
// content under the tenant key is deleted. The other patient, under the
// same tenant key, is untouched.
func TestEraseTenantKeyVersions(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.StartWith(t, backend, []app.Option{app.WithTenantKeysOnly()})
			cfg := w.Config
			po := w.Tokens[authz.RolePrivacyOfficer]
			p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Oldkeyfamily"}]}`)
			p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Otherfamily"}]}`)
			o1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p1+`"}}`)
			o2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"y"},"subject":{"reference":"Patient/`+p2+`"}}`)
			bin := uploadFor(t, w, p1, bytes.Repeat([]byte("Zqwtenantblob "), 300))
			for _, ref := range []string{"Patient/" + p1, "Observation/" + o1, "Binary/" + bin} {
				typ, id, _ := strings.Cut(ref, "/")
				if v, _ := w.App.Store.Current(context.Background(), cfg.Tenant, typ, id); keys.IsPatientKey(mustKeyID(t, v.Body)) {
					t.Fatalf("%s under a patient key: the test would prove nothing", ref)
				}
			}
			w.Server.Close()
			w.App.Close()
			w2 := apptest.Reopen(t, w, cfg) // per-patient keys from now on
			// A new version of the Patient creates its key.
			if r := w2.Do(t, "PUT", "/fhir/Patient/"+p1, w2.Tokens[authz.RoleAdmin], []byte(`{"resourceType":"Patient","id":"`+p1+`","name":[{"family":"Oldkeyfamily"}],"active":true}`)); r.Status != 200 {
				t.Fatalf("update: %d %s", r.Status, r.Body)
			}
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`)
			if r := w2.Do(t, "POST", "/fhir/Patient/"+p1+"/$erase", po, body); r.Status != 200 || !strings.Contains(string(r.Body), `"name":"resources","valueInteger":3`) {
				t.Fatalf("erase: %d %s", r.Status, r.Body)
			}
			erased := []string{"Patient/" + p1, "Observation/" + o1, "Binary/" + bin}
			for _, ref := range erased {
				if r := w2.Do(t, "GET", "/fhir/"+ref+"/_history/1", po, nil); r.Status != 410 {
					t.Fatalf("vread %s after erasure: %d %s", ref, r.Status, r.Body)
				}
			}
			assertUnreadable(t, w2.App.Store, cfg, erased)
			filepath.WalkDir(filepath.Join(cfg.DataDir, "documents"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.Contains(p, bin) {
					t.Fatalf("content object %s remains", p)
				}
				return nil
			})
			for _, ref := range []string{"Patient/" + p2, "Observation/" + o2} {
				if r := w2.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 200 {
					t.Fatalf("read %s: %d %s", ref, r.Status, r.Body)
				}
			}
		})
	}
}

// TestEraseShredListFailsClosed: an erasure whose shred-list entry cannot
// be written does not report success (503); repeating the request writes
// the entry from the erasure's ledger record, then answers 410.
func TestEraseShredListFailsClosed(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			po := w.Tokens[authz.RolePrivacyOfficer]
			p := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Failfamily"}]}`)
			docs := filepath.Join(w.Config.DataDir, "documents")
			// A file where the entries' directory goes: no entry can be
			// written.
			block := filepath.Join(docs, "objects", "shred", "e")
			if err := os.WriteFile(block, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`)
			if r := w.Do(t, "POST", "/fhir/Patient/"+p+"/$erase", po, body); r.Status != 503 || strings.Contains(string(r.Body), `"resources"`) {
				t.Fatalf("erase without a writable shred list: %d %s", r.Status, r.Body)
			}
			os.Remove(block)
			if r := w.Do(t, "POST", "/fhir/Patient/"+p+"/$erase", po, body); r.Status != 410 {
				t.Fatalf("erase repeated: %d %s", r.Status, r.Body)
			}
			es := shredEntries(t, docs)
			if len(es) != 1 {
				t.Fatalf("%d shred-list entries after the repeat, want 1", len(es))
			}
			b, _ := os.ReadFile(es[0])
			if !bytes.Contains(b, []byte(p)) {
				t.Fatalf("the entry does not name the patient: %s", b)
			}
			if r := w.Do(t, "POST", "/fhir/Patient/"+p+"/$erase", po, body); r.Status != 410 || len(shredEntries(t, docs)) != 1 {
				t.Fatalf("erase a third time: %d %s", r.Status, r.Body)
			}
		})
	}
}
