package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
)

// openObjects opens the store of Binary content the configuration names.
func openObjects(cfg config.Config) (blob.Store, error) {
	d := cfg.Documents
	switch d.Backend {
	case "s3":
		s, err := blob.NewS3(blob.S3Config{Endpoint: d.S3Endpoint, Region: d.S3Region, Bucket: d.S3Bucket, Prefix: d.S3Prefix,
			PathStyle: d.S3PathStyle, AccessKey: d.S3AccessKey, SecretKey: d.S3SecretKey,
			LockMode: d.S3LockMode, LockDays: int(d.S3LockDays)})
		if err != nil {
			return nil, fmt.Errorf("WARD_DOCUMENTS_S3_BUCKET: %w", err)
		}
		// Fail closed: objects meant to be locked are never written to a
		// bucket that would keep them unlocked.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.CheckObjectLock(ctx); err != nil {
			return nil, fmt.Errorf("WARD_S3_OBJECT_LOCK_MODE: %w", err)
		}
		return s, nil
	default:
		dir := d.Dir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "documents")
		}
		l, err := blob.NewLocal(dir)
		if err != nil {
			return nil, fmt.Errorf("WARD_DOCUMENTS_DIR: %w", err)
		}
		return l, nil
	}
}

// contentOptions are the records settings of Binary content. A content
// object that fails its integrity check is logged with ids only (the
// ledger gets a binary-integrity record from records itself).
func contentOptions(cfg config.Config, log *slog.Logger) (records.Content, error) {
	objs, err := openObjects(cfg)
	if err != nil {
		return records.Content{}, err
	}
	d := cfg.Documents
	return records.Content{Objects: objs, MaxBytes: d.MaxBytes, InlineMax: d.InlineMax, AttachmentMax: d.AttachmentMax,
		MaxStreams: int(d.MaxStreams), OnCorrupt: func(tenant, ref string) {
			log.Error("binary content failed its integrity check", "tenant", tenant, "binary", ref)
		}}, nil
}

// sweeper removes stray content objects every so often.
type sweeper struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startSweeper(rec *records.Service, every, grace time.Duration, log *slog.Logger) *sweeper {
	s := &sweeper{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), every)
			n, err := rec.SweepContent(ctx, grace)
			cancel()
			switch {
			case errors.Is(err, blob.ErrLocked):
				// Counts only (the error says how many were kept).
				log.Info("content sweep kept stray objects under retention", "removed", n, "detail", err.Error())
			case err != nil:
				log.Warn("content sweep failed", "error", err.Error())
			case n > 0:
				log.Info("content sweep removed stray objects", "count", n)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sweeper) close() {
	if s != nil {
		close(s.stop)
		s.wg.Wait()
	}
}
