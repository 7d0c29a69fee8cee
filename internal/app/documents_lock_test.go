package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/blob/blobtest"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
)

// TestS3ObjectLock: with WARD_S3_OBJECT_LOCK_MODE, a Binary's content
// object is written with that retention (read back with
// GetObjectRetention from the real S3 server); an erasure whose object
// delete is refused by the lock still succeeds (the object stays, its key
// destroyed), and the sweeper keeps the locked stray object, saying so,
// for a later sweep. A Ward configured for object lock on a bucket
// without it does not start.
func TestS3ObjectLock(t *testing.T) {
	ctx := context.Background()
	lockCfg := func(bc blob.S3Config) func(*config.Config) {
		return func(cfg *config.Config) {
			cfg.Documents.Backend, cfg.Documents.S3Endpoint, cfg.Documents.S3Bucket = "s3", bc.Endpoint, bc.Bucket
			cfg.Documents.S3PathStyle, cfg.Documents.S3AccessKey, cfg.Documents.S3SecretKey = true, bc.AccessKey, bc.SecretKey
			cfg.Documents.S3LockMode, cfg.Documents.S3LockDays = "GOVERNANCE", 1
		}
	}
	bc := blobtest.S3Locked(t)
	w := apptest.Start(t, apptest.SQLite, lockCfg(bc))
	pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
	uploadFor(t, w, pid, bytes.Repeat([]byte("locked content "), 500))
	keys := blobtest.ContentKeys(t, bc)
	if len(keys) != 1 {
		t.Fatalf("objects after one upload: %v", keys)
	}
	out, err := blobtest.Client(bc).GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(bc.Bucket), Key: aws.String(keys[0])})
	if err != nil || out.Retention == nil || out.Retention.Mode != types.ObjectLockRetentionModeGovernance ||
		aws.ToTime(out.Retention.RetainUntilDate).Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("retention of the content object: %+v %v; want GOVERNANCE for a day", out, err)
	}

	body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"test erasure"}]}`)
	if r := w.Do(t, "POST", "/fhir/Patient/"+pid+"/$erase", w.Tokens[authz.RolePrivacyOfficer], body); r.Status != 200 {
		t.Fatalf("erase with a locked content object: %d %.300s", r.Status, r.Body)
	}
	if k := blobtest.ContentKeys(t, bc); len(k) != 1 {
		t.Fatalf("the locked object after the erasure: %v; want it kept", k)
	}
	// An unlocked stray object listed after the locked one: the sweep
	// goes on past the refused delete.
	stray := records.ObjectPrefix(w.Config.Tenant) + "zzzz-stray/1-00"
	blobtest.Put(t, blobtest.Client(bc), bc.Bucket, stray, []byte("sealed bytes"))
	n, err := w.App.Records.SweepContent(ctx, -time.Second)
	if !errors.Is(err, blob.ErrLocked) || strings.Contains(err.Error(), keys[0]) || n != 1 {
		t.Fatalf("sweep of a locked and an unlocked stray object: %d removed, %v; want 1 and ErrLocked, naming no object", n, err)
	}
	if k := blobtest.ContentKeys(t, bc); len(k) != 1 || k[0] != keys[0] {
		t.Fatalf("objects after a sweep: %v; want the locked one alone", k)
	}

	plain := blobtest.S3(t)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	lockCfg(plain)(&cfg)
	if a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard); err == nil {
		a.Close()
		t.Fatal("a Ward configured for object lock started on a bucket without it")
	} else if !strings.Contains(err.Error(), "WARD_S3_OBJECT_LOCK_MODE") {
		t.Fatalf("start on a bucket without object lock: %v", err)
	}
}
