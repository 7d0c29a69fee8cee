package bulk_test

import (
	"context"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// TestRefusedRunFailsOnce: a job whose requester is refused when it runs
// (here: a patient account that no longer exists, so no patient link) ends
// failed on its first run, with the reason the status URL answers as 403;
// it is not "given up" and run again until its attempts are used up.
func TestRefusedRunFailsOnce(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			w.App.Bulk.Stop()
			ctx := context.Background()
			js := w.App.Store.(bulk.Store)
			svc := bulk.New(js, w.App.Records, w.App.Keys, bulk.Options{})
			gone := authz.Subject{Tenant: w.Config.Tenant, ID: "no-such-account", Role: authz.RoleUser, Patient: "p0", Scopes: []string{authn.DefaultScope}}
			job, err := svc.Kickoff(ctx, w.App.Records.For(gone, "bulk-test"), bulk.Request{Kind: records.ExportPatient, Types: []string{"Observation"}})
			if err != nil {
				t.Fatal(err)
			}
			if ran, err := svc.RunOnce(ctx); !ran || err != nil {
				t.Fatalf("run: %v %v", ran, err)
			}
			j, _, err := svc.Job(ctx, gone, job.ID)
			if err != nil || j.Status != store.ExportFailed || j.Error != bulk.ReasonRefused {
				t.Fatalf("job after one run: %+v %v", j, err)
			}
		})
	}
}
