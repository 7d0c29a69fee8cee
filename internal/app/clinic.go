package app

import (
	"context"

	"github.com/wardhealth/ward/internal/clinic"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
)

// newClinic builds the clinic JSON API (issue #30). Its keys derive from
// the key hierarchy, so every node of a cluster has the same: the cursor
// key from the system tenant's blind-index key, a research project's
// de-identification key from its tenant's (stable per project, unrelated
// across projects and tenants, never stored).
func newClinic(ctx context.Context, cfg config.Config, km *keys.Manager, sysBlind *seal.Blinder) (*clinic.API, error) {
	// Two 16-byte blind indexes make the 32-byte AES-256 cursor key.
	k1, k2 := sysBlind.Index("clinic-cursor", "v1/1"), sysBlind.Index("clinic-cursor", "v1/2")
	return clinic.New(clinic.Options{
		ListCap:    cfg.ClinicListCap,
		CursorKey:  append(k1[:], k2[:]...),
		ProjectKey: projectKey(km),
	})
}

// projectKey derives a research project's de-identification key from its
// tenant's blind-index key: the same on every node and for /anonymize and
// $export?_deidentify, stable per project, unrelated across projects and
// tenants, never stored.
func projectKey(km *keys.Manager) func(ctx context.Context, tenant, project string) ([]byte, error) {
	return func(ctx context.Context, tenant, project string) ([]byte, error) {
		b, err := km.Blinder(ctx, tenant)
		if err != nil {
			return nil, err
		}
		k := b.Index("deid-project", project)
		return k[:], nil
	}
}
