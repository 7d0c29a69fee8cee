package app_test

import (
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// TestPatientReadFoldsFencePostgres: on PostgreSQL a read or vread of a
// record sealed under a cached patient key sends no statement of its own
// for the erasure fence: the key's state is read by the version's own
// statement (store.Version.SealKey, keys.Manager.Observed), so a read
// costs the round trips a tenant-key read costs. Counted at the driver
// (pgx tracer), over HTTP.
func TestPatientReadFoldsFencePostgres(t *testing.T) {
	tr := pgtest.Trace(t)
	w := apptest.Start(t, apptest.Postgres)
	tok := w.Tokens[authz.RoleAdmin]
	p := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
	var paths []string
	for range 3 {
		o := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+p+`"}}`)
		paths = append(paths, "/fhir/Observation/"+o, "/fhir/Observation/"+o+"/_history/1")
	}
	paths = append(paths, "/fhir/Patient/"+p, "/fhir/Patient/"+p+"/_history/1")
	get := func() {
		for _, path := range paths {
			if r := w.Do(t, "GET", path, tok, nil); r.Status != 200 {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
	}
	get() // the key is cached now
	mark := tr.Mark()
	for range 3 {
		get()
	}
	if q := tr.Since(mark, "FROM keys WHERE id"); len(q) != 0 {
		t.Fatalf("%d reads of a key's state for %d reads under a cached patient key, want 0: %q", len(q), 3*len(paths), q)
	}
	if q := tr.Since(mark, "resource_versions", "LEFT JOIN keys"); len(q) != 3*len(paths) {
		t.Fatalf("%d version reads with their key's state for %d reads, want one each", len(q), 3*len(paths))
	}
}

// TestPatientCreateReadsNoKeyPostgres: creating a Patient (POST: a random
// id) makes its key without reading the store for it first: the only
// key statement is the writer's one read of the batch's keys.
func TestPatientCreateReadsNoKeyPostgres(t *testing.T) {
	tr := pgtest.Trace(t)
	w := apptest.Start(t, apptest.Postgres)
	// The first write of the tenant makes its other keys (index, ...).
	w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
	mark := tr.Mark()
	for range 3 {
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
	}
	if q := tr.Since(mark, "FROM keys WHERE id = "); len(q) != 0 {
		t.Fatalf("%d reads of a key by id for 3 new Patients, want 0: %q", len(q), q)
	}
}
