package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

var resealKEK = bytes.Repeat([]byte{5}, 32)

func resealManager(t testing.TB, st store.Store) *keys.Manager {
	t.Helper()
	kek, _ := seal.NewKEK(resealKEK)
	m, err := keys.New(context.Background(), st, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeVersions stores n Patients of tenant with two versions each,
// sealed as the records layer seals them.
func writeVersions(t testing.TB, st store.Store, m *keys.Manager, tenant string, n int) {
	t.Helper()
	ctx := context.Background()
	kid, err := m.DataKey(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for v := int64(1); v <= 2; v++ {
		for i := 0; i < n; i += 1000 {
			u := &store.Unit{}
			for j := i; j < n && j < i+1000; j++ {
				id := fmt.Sprintf("p%06d", j)
				body, err := m.Seal(kid, []byte(`{"resourceType":"Patient","id":"`+id+`","v":`+strconv.FormatInt(v, 10)+`}`), seal.AAD(tenant, "Patient", id, v))
				if err != nil {
					t.Fatal(err)
				}
				u.Writes = append(u.Writes, store.Write{Tenant: tenant, Type: "Patient", ID: id, Version: v, LastUpdated: now, Body: body})
			}
			if err := st.Commit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkResealed: every version and current row of tenant opens under the
// new key only.
func checkResealed(t *testing.T, st store.Store, m *keys.Manager, tenant, to string, n int) {
	t.Helper()
	ctx := context.Background()
	vs, err := st.History(ctx, store.HistoryQuery{Tenant: tenant, Limit: 10000})
	if err != nil || len(vs) != 2*n {
		t.Fatalf("%d versions: %v", len(vs), err)
	}
	for _, v := range vs {
		if kid, _ := seal.EnvelopeKeyID(v.Body); kid != to {
			t.Fatalf("%s version %d under %s", v.ID, v.Version, kid)
		}
		if _, err := m.Open(v.Body, seal.AAD(tenant, v.Type, v.ID, v.Version)); err != nil {
			t.Fatal(err)
		}
		cur, err := st.Current(ctx, tenant, v.Type, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if kid, _ := seal.EnvelopeKeyID(cur.Body); kid != to {
			t.Fatalf("current row of %s under %s", v.ID, kid)
		}
	}
}

// TestRotateData: new writes go under the new version, every stored
// version is re-sealed, other tenants are untouched, the old key is
// destroyed, blind indexes stay the same, and a restarted node opens
// everything.
func TestRotateData(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m := resealManager(t, st)
	writeVersions(t, st, m, "a", 30)
	writeVersions(t, st, m, "b", 5)
	bBefore, _ := st.History(ctx, store.HistoryQuery{Tenant: "b", Limit: 100})
	blindBefore, _ := m.Blinder(ctx, "a")
	idx := blindBefore.Index("family", "smith")
	if _, err := keys.RotateData(ctx, st, m, keys.SystemTenant, keys.ResealOptions{}); err == nil {
		t.Fatal("the system tenant's key was rotated")
	}
	var progress []int64
	rep, err := keys.RotateData(ctx, st, m, "a", keys.ResealOptions{Batch: 7, Progress: func(n int64) { progress = append(progress, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.To != "t/a/2" || rep.Resealed != 60 || !rep.Destroyed || rep.Resumed || len(rep.From) != 1 || len(progress) < 8 {
		t.Fatalf("report %+v, progress %v", rep, progress)
	}
	if kid, _ := m.DataKey(ctx, "a"); kid != "t/a/2" {
		t.Fatalf("new writes under %s", kid)
	}
	checkResealed(t, st, m, "a", "t/a/2", 30)
	bAfter, _ := st.History(ctx, store.HistoryQuery{Tenant: "b", Limit: 100})
	for i := range bBefore {
		if !bytes.Equal(bBefore[i].Body, bAfter[i].Body) {
			t.Fatal("another tenant's body changed")
		}
	}
	ks, _ := st.Keys(ctx, keys.DataKeyPurpose)
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	if strings.Contains(strings.Join(ids, ","), "t/a/1") || !strings.Contains(strings.Join(ids, ","), "b/a/1") {
		t.Fatalf("keys after rotation: %v", ids)
	}
	// A restarted node: everything opens, the blind index is the same.
	m2 := resealManager(t, st)
	checkResealed(t, st, m2, "a", "t/a/2", 30)
	if b2, err := m2.Blinder(ctx, "a"); err != nil || b2.Index("family", "smith") != idx {
		t.Fatalf("blind index changed after the first key was destroyed: %v", err)
	}
	actions := map[string]int{}
	for _, r := range storetest.Records(t, st) {
		if r.Tenant == "a" {
			actions[r.Action+"/"+r.Detail]++
		}
	}
	if actions["data-key-create/rotate-data"] != 1 || actions["data-key-retire/"] != 1 || actions["data-reseal-done/resealed=60"] != 1 || actions["data-key-destroy/"] != 1 {
		t.Fatalf("ledger: %v", actions)
	}
	// Throttled: tenant b's 10 versions at 20 a second take half a second.
	start := time.Now()
	if rep, err := keys.RotateData(ctx, st, m, "b", keys.ResealOptions{Batch: 2, Rate: 20}); err != nil || rep.Resealed != 10 {
		t.Fatalf("throttled: %+v %v", rep, err)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("10 versions at 20/s took %s", el)
	}
	storetest.VerifyLedger(t, st)
}

// TestRotateDataResumesAfterKill: a re-seal job killed with SIGKILL in a
// child process resumes from its last committed batch, re-seals every
// version once and destroys the old key.
func TestRotateDataResumesAfterKill(t *testing.T) {
	if path := os.Getenv("WARD_TEST_RESEAL_CHILD"); path != "" {
		resealChild(t, path)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	st := openStore(t, path)
	m := resealManager(t, st)
	const n = 400
	writeVersions(t, st, m, "a", n)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRotateDataResumesAfterKill$", "-test.v")
	cmd.Env = append(os.Environ(), "WARD_TEST_RESEAL_CHILD="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some batches, not all, are committed.
	var done int64
	deadline := time.Now().Add(60 * time.Second)
	for done < 100 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, raw, _ := st.Cursor(ctx, "keys/reseal/a")
		var s struct{ Resealed int64 }
		json.Unmarshal(raw, &s)
		done = s.Resealed
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if done < 100 || done >= 2*n {
		t.Fatalf("child re-sealed %d of %d before the kill:\n%s", done, 2*n, out.String())
	}
	rep, err := keys.RotateData(ctx, st, resealManager(t, st), "a", keys.ResealOptions{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.To != "t/a/2" || rep.Resealed != 2*n {
		t.Fatalf("resumed: %+v (child had %d)", rep, done)
	}
	checkResealed(t, st, resealManager(t, st), "a", "t/a/2", n)
	starts := 0
	for _, r := range storetest.Records(t, st) {
		if r.Action == "data-key-create" && r.Detail == "rotate-data" {
			starts++
		}
	}
	if starts != 1 {
		t.Fatalf("%d rotation starts: the job restarted instead of resuming", starts)
	}
	storetest.VerifyLedger(t, st)
}

// resealChild runs a slow job until it is killed.
func resealChild(t *testing.T, path string) {
	st := openStore(t, path)
	_, err := keys.RotateData(context.Background(), st, resealManager(t, st), "a", keys.ResealOptions{Batch: 20, Rate: 400})
	t.Fatalf("the child was not killed: %v", err)
}
