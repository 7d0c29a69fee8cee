package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// patientRule: a Patient is its own patient; "org*" ids belong to none.
func patientRule(v store.Version, plain []byte) (string, error) {
	if v.Type == "Patient" {
		return v.ID, nil
	}
	return "", nil
}

// checkMigrated: every Patient version of tenant is under its own key,
// opens on a fresh node, and its key is stored.
func checkMigrated(t *testing.T, st store.Store, tenant string, n int) {
	t.Helper()
	ctx := context.Background()
	m := resealManager(t, st)
	vs, err := st.History(ctx, store.HistoryQuery{Tenant: tenant, Limit: 100000})
	if err != nil || len(vs) != 2*n {
		t.Fatalf("%d versions: %v", len(vs), err)
	}
	for _, v := range vs {
		if kid, _ := seal.EnvelopeKeyID(v.Body); kid != keys.PatientKeyID(tenant, v.ID) {
			t.Fatalf("%s version %d under %s", v.ID, v.Version, kid)
		}
		if _, err := m.Open(v.Body, seal.AAD(tenant, v.Type, v.ID, v.Version)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigratePatients: both databases; versions move to their patients'
// keys, the job reports and records its progress, another tenant is
// untouched, and running it again moves nothing.
func TestMigratePatients(t *testing.T) {
	for _, sc := range bothStores {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			st := sc.open(t)
			m := resealManager(t, st)
			writeVersions(t, st, m, "a", 25)
			writeVersions(t, st, m, "b", 3)
			var progress []int64
			rep, err := keys.MigratePatients(ctx, st, m, "a", keys.MigrateOptions{Batch: 7, Patient: patientRule, Progress: func(n int64) { progress = append(progress, n) }})
			if err != nil || rep.Moved != 50 || rep.Seen != 50 || len(progress) < 7 {
				t.Fatalf("migrate: %+v %v %v", rep, err, progress)
			}
			checkMigrated(t, st, "a", 25)
			vb, _ := st.History(ctx, store.HistoryQuery{Tenant: "b", Limit: 10})
			for _, v := range vb {
				if kid, _ := seal.EnvelopeKeyID(v.Body); kid != "t/b/1" {
					t.Fatalf("tenant b moved: %s", kid)
				}
			}
			if rep, err := keys.MigratePatients(ctx, st, m, "a", keys.MigrateOptions{Patient: patientRule}); err != nil || rep.Moved != 0 || rep.Resumed {
				t.Fatalf("again: %+v %v", rep, err)
			}
			storetest.VerifyLedger(t, st)
		})
	}
}

// TestMigratePatientsResumesAfterKill: a migration killed with SIGKILL in
// a child process resumes from its last committed batch and moves every
// version.
func TestMigratePatientsResumesAfterKill(t *testing.T) {
	if path := os.Getenv("WARD_TEST_MIGRATE_CHILD"); path != "" {
		st := openStore(t, path)
		_, err := keys.MigratePatients(context.Background(), st, resealManager(t, st), "a", keys.MigrateOptions{Batch: 20, Rate: 400, Patient: patientRule})
		t.Fatalf("the child was not killed: %v", err)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	st := openStore(t, path)
	m := resealManager(t, st)
	const n = 400
	writeVersions(t, st, m, "a", n)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMigratePatientsResumesAfterKill$", "-test.v")
	cmd.Env = append(os.Environ(), "WARD_TEST_MIGRATE_CHILD="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var done int64
	for deadline := time.Now().Add(60 * time.Second); done < 100 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		_, raw, _ := st.Cursor(ctx, "keys/migrate/a")
		var s struct{ Moved int64 }
		json.Unmarshal(raw, &s)
		done = s.Moved
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if done < 100 || done >= 2*n {
		t.Fatalf("child moved %d of %d before the kill:\n%s", done, 2*n, out.String())
	}
	rep, err := keys.MigratePatients(ctx, st, resealManager(t, st), "a", keys.MigrateOptions{Batch: 50, Patient: patientRule})
	if err != nil || !rep.Resumed || rep.Moved != 2*n {
		t.Fatalf("resumed: %+v %v (child had %d)", rep, err, done)
	}
	checkMigrated(t, st, "a", n)
	starts := 0
	for _, r := range storetest.Records(t, st) {
		if r.Action == "patient-keys-migrate" && r.Detail == "start" {
			starts++
		}
	}
	if starts != 1 {
		t.Fatalf("%d migration starts: the job restarted instead of resuming", starts)
	}
	storetest.VerifyLedger(t, st)
}

// TestMigratePatientsKeyRace: the job stores the patient keys it creates
// in the same unit as the page sealed under them; when another node
// stores one of those patients' first key meanwhile (here: from inside
// the patient rule, after the job created its own, before the page
// commits), the page's unit conflicts and is sealed again under the key
// that won. Every version opens on a fresh node afterwards.
func TestMigratePatientsKeyRace(t *testing.T) {
	for _, sc := range bothStores {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			st := sc.open(t)
			writeVersions(t, st, resealManager(t, st), "a", 10)
			other := resealManager(t, st) // another node
			var first string
			raced := false
			rule := func(v store.Version, plain []byte) (string, error) {
				switch {
				case first == "":
					first = v.ID
				case v.ID != first && !raced:
					raced = true
					id, err := other.PatientKey(ctx, "a", first)
					if err != nil {
						return "", err
					}
					if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: other.PendingKey(id)}}}); err != nil {
						return "", err
					}
					other.Stored(id)
				}
				return v.ID, nil
			}
			m := resealManager(t, st)
			rep, err := keys.MigratePatients(ctx, st, m, "a", keys.MigrateOptions{Batch: 6, Patient: rule})
			if err != nil || rep.Moved != 20 || !raced {
				t.Fatalf("migrate: %+v %v (raced %v)", rep, err, raced)
			}
			checkMigrated(t, st, "a", 10)
			// The job's node seals under the key that won, as does the other.
			body, _ := other.Seal(keys.PatientKeyID("a", first), []byte("x"), nil)
			if _, err := m.Open(body, nil); err != nil {
				t.Fatalf("the job's node kept the key that lost: %v", err)
			}
			storetest.VerifyLedger(t, st)
		})
	}
}
