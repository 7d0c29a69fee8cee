package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// testLedgerPatientIndex: records with patients verify (their lists come
// back for the hash), are found by patient and time newest first with a
// cursor, by actor, entity, action and outcome, and nothing of another
// tenant or patient leaks in.
func testLedgerPatientIndex(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	mk := func(tenant, actor, action string, at int, out audit.Outcome, patients []string, entities ...string) *audit.Record {
		return &audit.Record{Time: t0.Add(time.Duration(at) * time.Minute), Tenant: tenant, RequestID: "r", Actor: actor, Role: "nurse",
			Action: action, ResourceType: "Observation", Entities: entities, Outcome: out, Patients: patients}
	}
	recs := []*audit.Record{
		mk("a", "u1", "read", 1, 0, []string{"p1"}, "Observation/o1/_history/1"),
		mk("a", "u2", "search-type", 2, 0, []string{"p2", "p1", "p2"}, "Observation/o1/_history/1", "Observation/o2/_history/3"),
		mk("a", "u1", "read", 3, audit.OutcomeMinor, []string{"p1"}),
		mk("b", "u1", "read", 4, 0, []string{"p1"}, "Observation/o1/_history/1"), // other tenant
		mk("a", "u1", "login", 5, 0, nil),
		mk("a", "u3", "read", 6, 0, []string{"p2"}, "Observation/o10/_history/1"),
	}
	recs[4].Address = "9f86d081884c7d65" // an address alone: format version 2 too
	must(t, st.Commit(ctx, &store.Unit{Audit: recs[:2]}))
	for _, r := range recs[2:] {
		must(t, st.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}))
	}
	if n := VerifyLedger(t, st); n != len(recs) {
		t.Fatalf("%d records verified, want %d", n, len(recs))
	}
	seqs := func(q store.AuditQuery) string {
		t.Helper()
		got, err := st.AuditSearch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var s []int64
		for _, r := range got {
			s = append(s, r.Seq)
		}
		return fmt.Sprint(s)
	}
	for _, c := range []struct {
		q    store.AuditQuery
		want string
	}{
		{store.AuditQuery{Tenant: "a", Patient: "p1"}, "[3 2 1]"},
		{store.AuditQuery{Tenant: "a", Patient: "p2"}, "[6 2]"},
		{store.AuditQuery{Tenant: "b", Patient: "p1"}, "[4]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", Since: t0.Add(2 * time.Minute)}, "[3 2]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", Until: t0.Add(2 * time.Minute)}, "[1]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", Limit: 1}, "[3]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", After: &store.AuditCursor{Time: t0.Add(3 * time.Minute), Seq: 3}}, "[2 1]"},
		{store.AuditQuery{Tenant: "a", Actor: "u1"}, "[5 3 1]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", Actor: "u1", Actions: []string{"read", "vread"}}, "[3 1]"},
		{store.AuditQuery{Tenant: "a", Patient: "p1", Outcome: new(audit.Outcome(audit.OutcomeMinor))}, "[3]"},
		{store.AuditQuery{Tenant: "a", Entity: "Observation/o1"}, "[2 1]"},
		{store.AuditQuery{Tenant: "a", Entity: "Observation/o1/_history/1"}, "[2 1]"},
		{store.AuditQuery{Tenant: "a", Entity: "Observation/o%"}, "[]"},
		{store.AuditQuery{Tenant: "a"}, "[6 5 3 2 1]"},
	} {
		if got := seqs(c.q); got != c.want {
			t.Errorf("%+v: seqs %s, want %s", c.q, got, c.want)
		}
	}
	// A search hands back each record's whole patient list (read in the
	// search's own statement), not only the patient searched for.
	got, err := st.AuditSearch(ctx, store.AuditQuery{Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var lists []string
	for _, r := range got {
		lists = append(lists, fmt.Sprint(r.Seq, r.Patients))
	}
	if want := "[6 [p2] 5 [] 3 [p1] 2 [p1 p2] 1 [p1]]"; fmt.Sprint(lists) != want {
		t.Errorf("patients of the searched records: %v, want %s", lists, want)
	}
	r, err := st.AuditRecord(ctx, "a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Patients) != "[p1 p2]" || r.Hash != recs[1].Hash {
		t.Fatalf("record 2: patients %v, hash matches %v", r.Patients, r.Hash == recs[1].Hash)
	}
	if r, err := st.AuditRecord(ctx, "a", 5); err != nil || r.Address != recs[4].Address || r.Hash != recs[4].Hash {
		t.Fatalf("record 5: %v %+v", err, r)
	}
	if _, err := st.AuditRecord(ctx, "b", 2); err == nil {
		t.Fatal("record of tenant a read as tenant b")
	}
}
