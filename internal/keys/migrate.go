package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// MigrateOptions tune MigratePatients.
type MigrateOptions struct {
	// Batch is the versions read per transaction (default 500).
	Batch int
	// Rate bounds the versions moved per second (0: no bound).
	Rate float64
	// Patient names the patient whose key must seal a version (its
	// content given in the clear), "" for the tenant's key. The records
	// layer's rule (one patient's compartment) is given by the caller.
	Patient func(v store.Version, plain []byte) (string, error)
	// Progress is told the versions moved so far.
	Progress func(done int64)
	// Actor is who asked (for the ledger; "system" if empty).
	Actor string
}

// MigrateReport says what a migration to per-patient keys did.
type MigrateReport struct {
	Moved, Seen int64
	Resumed     bool
}

type migrateState struct {
	Phase   string `json:"phase"` // moving, done
	Moved   int64  `json:"moved"`
	Seen    int64  `json:"seen"`
	Started int64  `json:"started"`
}

func migrateCursor(tenant string) string { return "keys/migrate/" + tenant }

// MigratePatients moves the tenant's stored versions that belong to one
// patient from the tenant's data key to that patient's own key, online:
// newest first, in throttled batches, each committed with the job's
// cursor (compare-and-swap per version, so a version written meanwhile
// is left as the writer sealed it: new writes already go under patients'
// keys). Killed, even with SIGKILL, it resumes from its last committed
// batch when run again. Start and end are ledger records.
func MigratePatients(ctx context.Context, st ResealStore, m *Manager, tenant string, o MigrateOptions) (*MigrateReport, error) {
	if o.Patient == nil {
		return nil, errors.New("keys: migrate needs the patient rule")
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Actor == "" {
		o.Actor = "system"
	}
	name := migrateCursor(tenant)
	before, raw, err := st.Cursor(ctx, name)
	if err != nil {
		return nil, err
	}
	var s migrateState
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("keys: migrate state of %s: %w", tenant, err)
		}
	}
	rep := &MigrateReport{Resumed: s.Phase == "moving"}
	if !rep.Resumed {
		s = migrateState{Phase: "moving", Started: m.now().UnixMicro()}
		state, _ := json.Marshal(s)
		before = 0
		rec := &audit.Record{Time: m.now().UTC(), Tenant: tenant, Actor: o.Actor, Role: "system", Action: "patient-keys-migrate", Detail: "start"}
		if err := store.NewRecorder(st).Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: name, State: state}}}, rec); err != nil {
			return nil, err
		}
	}
	start, startMoved := time.Now(), s.Moved
	for {
		page, err := st.History(ctx, store.HistoryQuery{Tenant: tenant, Before: before, Limit: o.Batch})
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		before = page[len(page)-1].Seq
		next := s
		commit := func(together bool) ([]string, error) {
			parts, created, moved, err := m.migratePage(ctx, page, o, together)
			if err != nil {
				return created, err
			}
			next = s
			next.Moved += int64(moved)
			next.Seen += int64(len(page))
			state, _ := json.Marshal(next)
			parts = append(parts, store.SaveCursor{Name: name, Seq: before, State: state})
			return created, st.Commit(ctx, &store.Unit{Parts: parts})
		}
		created, err := commit(true)
		if errors.Is(err, store.ErrConflict) && len(created) > 0 {
			// Another node stored the first key of one of these patients
			// meanwhile, so the page was sealed under a key that lost:
			// drop the page's new keys and seal it again, storing each
			// key on its own and reading the winner back.
			for _, id := range created {
				m.Forget(id)
			}
			created, err = commit(false)
		}
		if err != nil {
			return rep, fmt.Errorf("store moved versions: %w", err)
		}
		for _, id := range created {
			m.Stored(id)
		}
		s = next
		rep.Moved, rep.Seen = s.Moved, s.Seen
		if o.Progress != nil {
			o.Progress(s.Moved)
		}
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(s.Moved-startMoved) / o.Rate * float64(time.Second)))
			if err := sleepUntil(ctx, due); err != nil {
				return rep, err
			}
		}
	}
	s.Phase = "done"
	state, _ := json.Marshal(s)
	rep.Moved, rep.Seen = s.Moved, s.Seen
	rec := &audit.Record{Time: m.now().UTC(), Tenant: tenant, Actor: o.Actor, Role: "system", Action: "patient-keys-migrate",
		Detail: fmt.Sprintf("done moved=%d", s.Moved)}
	return rep, store.NewRecorder(st).Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: name, State: state}}}, rec)
}

// migratePage re-seals a page of versions. together, the patient keys
// it creates are stored by the same unit as the versions sealed under
// them (NewKey parts first, returned in created): a page of new patients
// costs one transaction, not one per patient. Otherwise each new key is
// stored on its own first (storedPatientKey), which survives another node
// creating the same key meanwhile.
func (m *Manager) migratePage(ctx context.Context, page []store.Version, o MigrateOptions, together bool) (parts []store.Part, created []string, moved int, err error) {
	var vs []store.Part
	seen := map[string]bool{}
	for _, v := range page {
		p, err := m.migrateOne(ctx, v, o, together)
		if err != nil {
			return nil, created, 0, err
		}
		if p == nil {
			continue
		}
		vs = append(vs, *p)
		if kid, _ := seal.EnvelopeKeyID(p.New); together && !seen[kid] {
			seen[kid] = true
			if k := m.PendingKey(kid); k != nil {
				parts = append(parts, store.NewKey{Key: k})
				created = append(created, kid)
			}
		}
	}
	return append(parts, vs...), created, len(vs), nil
}

// migrateOne re-seals v under its patient's key if a tenant key sealed it
// and it belongs to one patient (nil: nothing to do). pending, a new
// patient key is left for the caller to store (PendingKey).
func (m *Manager) migrateOne(ctx context.Context, v store.Version, o MigrateOptions, pending bool) (*store.ResealVersion, error) {
	if v.Deleted || len(v.Body) == 0 {
		return nil, nil
	}
	kid, err := seal.EnvelopeKeyID(v.Body)
	if err != nil {
		return nil, fmt.Errorf("migrate %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
	}
	if IsPatientKey(kid) {
		return nil, nil
	}
	aad := seal.AAD(v.Tenant, v.Type, v.ID, v.Version)
	plain, err := m.Open(v.Body, aad)
	if err != nil {
		return nil, fmt.Errorf("migrate %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
	}
	defer clear(plain)
	patient, err := o.Patient(v, plain)
	if err != nil || patient == "" {
		return nil, err
	}
	var to string
	if pending {
		to, err = m.PatientKey(ctx, v.Tenant, patient)
	} else {
		to, err = m.storedPatientKey(ctx, v.Tenant, patient)
	}
	if errors.Is(err, ErrErased) {
		return nil, nil // erased meanwhile: its versions are shredded anyway
	}
	if err != nil {
		return nil, err
	}
	sealed, err := m.Seal(to, plain, aad)
	if err != nil {
		return nil, err
	}
	return &store.ResealVersion{Tenant: v.Tenant, Type: v.Type, ID: v.ID, Version: v.Version, Old: v.Body, New: sealed}, nil
}

// storedPatientKey is PatientKey for a job whose re-sealed bodies carry
// no new key: a key created here is stored first, on its own.
func (m *Manager) storedPatientKey(ctx context.Context, tenant, patient string) (string, error) {
	id, err := m.PatientKey(ctx, tenant, patient)
	if err != nil {
		return "", err
	}
	k := m.PendingKey(id)
	if k == nil {
		return id, nil
	}
	err = m.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: k}}})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return "", err
	}
	// Stored by us, by a write, or another node's key won: read it back.
	if _, err := m.fetchPatientKey(ctx, id, tenant, patient, false); err != nil {
		return "", err
	}
	return id, nil
}
