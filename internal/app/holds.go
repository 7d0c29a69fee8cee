package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
)

// HoldOptions are the choices of `ward patients hold|release`.
type HoldOptions struct {
	Tenant, Patient string
	// Reason is required to set a hold; free text, of which only a
	// SHA-256 is stored and recorded.
	Reason string
	// Release lifts the hold instead.
	Release bool
}

// LegalHold sets or releases a patient's legal hold (Patient/$erase is
// refused while one is set), with a ledger record in the same commit.
// Setting one twice, or releasing none, is store.ErrConflict.
func LegalHold(ctx context.Context, cfg config.Config, o HoldOptions) error {
	if o.Tenant == "" || o.Patient == "" {
		return errors.New("name the tenant (--tenant) and the patient id")
	}
	if !o.Release && o.Reason == "" {
		return errors.New("give the reason for the hold (--reason)")
	}
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	rec := &audit.Record{Time: now, Tenant: o.Tenant, Actor: "ward-cli", Role: "system", Action: "legal-hold",
		ResourceType: "Patient", Entities: []string{"Patient/" + o.Patient}, Patients: []string{o.Patient}}
	var part store.Part = store.ReleaseHold{Tenant: o.Tenant, Patient: o.Patient}
	if o.Release {
		rec.Action = "legal-hold-release"
	} else {
		sum := sha256.Sum256([]byte(o.Reason))
		rec.Detail = "reason-sha256:" + hex.EncodeToString(sum[:])
		part = store.SetHold{Tenant: o.Tenant, Patient: o.Patient, Reason: sum[:], At: now}
	}
	return store.NewRecorder(st).Commit(ctx, &store.Unit{Parts: []store.Part{part}}, rec)
}
