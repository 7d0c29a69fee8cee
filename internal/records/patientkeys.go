package records

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wardhealth/ward/internal/facts"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Key selection: a version of a resource in exactly one patient's
// compartment (the official Patient compartment definition; a Binary by
// its securityContext) is sealed under that patient's own data key, so
// that erasing the patient (destroying the key) shreds it and nothing
// else; anything else (no patient, or several) under the tenant's key.
// The choice is made here, in the one sealing path, from the content
// being sealed: every write path, a merge's re-seal included, gets it.

// patientKeyer is the optional capability of a keyring with per-patient
// data keys (keys.Manager).
type patientKeyer interface {
	PatientKey(ctx context.Context, tenant, patient string) (string, error)
	// PendingKey is the wrapped key a write sealed under id must store
	// with it (store.Write.NewKey), nil once the store holds it; Stored
	// says a commit stored it.
	PendingKey(id string) *store.Key
	Stored(id string)
}

// erasedError is how the keyring says a patient's key was destroyed.
type erasedError interface{ Erased() bool }

// SealPatient returns the patient whose key seals a version of typ/id
// with content doc, "" for the tenant's key.
func SealPatient(typ, id string, doc map[string]any) string {
	if typ == "Binary" {
		sc, _ := doc["securityContext"].(map[string]any)
		ref, _ := sc["reference"].(string)
		if p, ok := strings.CutPrefix(ref, "Patient/"); ok && p != "" && !strings.Contains(p, "/") {
			return p
		}
		return ""
	}
	if ps := facts.PatientsOf(typ, id, doc); len(ps) == 1 {
		return ps[0]
	}
	return ""
}

// sealKey picks the data key for a version of typ/id with content doc.
func (s *Service) sealKey(ctx context.Context, tenant, typ, id string, doc map[string]any) (string, error) {
	pk, ok := s.keys.(patientKeyer)
	if ok && !s.tenantKeysOnly {
		if p := SealPatient(typ, id, doc); p != "" {
			kid, err := pk.PatientKey(ctx, tenant, p)
			if err != nil {
				return "", keyError(err)
			}
			return kid, nil
		}
	}
	kid, err := s.keys.DataKey(ctx, tenant)
	if err != nil {
		return "", fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
	}
	return kid, nil
}

// keyError maps a keyring failure: an erased patient is gone, anything
// else unavailable.
func keyError(err error) error {
	var e erasedError
	if errors.As(err, &e) && e.Erased() {
		return problem.New(problem.ErrGone, "deleted", "the patient's records were erased")
	}
	return fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
}

// keyedCommitter stores, with each write, the new patient key its body
// was sealed under while the store does not hold it yet.
type keyedCommitter struct {
	st   store.Committer
	keys patientKeyer
}

func (c keyedCommitter) Commit(ctx context.Context, u *store.Unit) error {
	var stored []string
	for i := range u.Writes {
		w := &u.Writes[i]
		if w.NewKey != nil || len(w.Body) == 0 {
			continue
		}
		if kid, err := seal.EnvelopeKeyID(w.Body); err == nil {
			if w.NewKey = c.keys.PendingKey(kid); w.NewKey != nil {
				stored = append(stored, kid)
			}
		}
	}
	err := c.st.Commit(ctx, u)
	if err == nil {
		for _, kid := range stored {
			c.keys.Stored(kid)
		}
	}
	return err
}
