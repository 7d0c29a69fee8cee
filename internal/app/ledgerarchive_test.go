package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// TestArchiveRoundTrip: archiving moves the old prefix of the ledger into
// a signed file with the checkpoint at its boundary and out of the
// database; the archive reads back to the very records (same hashes);
// verify then covers archives plus the live ledger, against a checkpoint
// signed before the archive; records within the retention are refused
// unless forced, and the forcing is a ledger record; a missing or altered
// archive is detected.
func TestArchiveRoundTrip(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			// The server's clock is in 2033: what the test users did at
			// start (now) is beyond a six-year retention; the traffic is
			// stamped 2033.
			var clock atomic.Int64
			clock.Store(time.Date(2033, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
			now := func() time.Time { return time.UnixMicro(clock.Load()).UTC() }
			dir := filepath.Join(t.TempDir(), "archive")
			w := apptest.StartWith(t, b, []app.Option{app.WithNow(now)}, func(c *config.Config) {
				c.Ledger.CheckpointInterval = 0
				c.Ledger.ArchiveDir = dir
			})
			ctx := context.Background()
			traffic(t, w, 6)
			cp := checkpoint(t, w)
			note := w.Do(t, "GET", "/audit/checkpoint", "", nil).Body
			vs, err := ledger.Verifiers(string(verifiers(t, w)))
			if err != nil {
				t.Fatal(err)
			}
			before := storetest.Records(t, w.App.Store)
			old := 0
			for _, r := range before {
				if r.Time.Before(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
					old++
				}
			}
			if old == 0 || old == len(before) {
				t.Fatalf("%d of %d records are old: the scenario needs some of each", old, len(before))
			}

			res, err := w.App.Proof.Archive(ctx, app.ArchiveOptions{Before: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			if res.First != 1 || res.Last != int64(old) || res.Removed != int64(old) || res.Forced {
				t.Fatalf("archive %+v, want 1..%d", res, old)
			}
			if fi, err := os.Stat(res.File); err != nil || fi.Mode().Perm() != 0o400 {
				t.Fatalf("archive file: %v %v", fi, err)
			}
			live := storetest.Records(t, w.App.Store)
			if live[0].Seq != int64(old)+1 {
				t.Fatalf("live ledger starts at %d, want %d", live[0].Seq, old+1)
			}
			// Round trip: the archive holds exactly the records removed.
			f, _ := os.Open(res.File)
			prev := audit.Genesis
			i := 0
			_, err = ledger.ReadArchive(f, vs, func(r *audit.Record) error {
				prev = audit.Chain(prev, r)
				if r.Hash != before[i].Hash || r.Actor != before[i].Actor {
					t.Errorf("archived record %d differs from the one removed", r.Seq)
				}
				i++
				return nil
			})
			f.Close()
			if err != nil || i != old {
				t.Fatalf("read back %d records: %v", i, err)
			}
			opts := app.VerifyOptions{ArchiveDir: dir, Checkpoint: note, Keys: vs}
			v, err := app.VerifyLedgerFull(ctx, w.App.Store, opts)
			if err != nil {
				t.Fatalf("verify after archive: %v", err)
			}
			if v.Archives != 1 || v.Archived != int64(old) || !v.TreeChecked || v.Checkpoint.Size != cp.Size {
				t.Fatalf("verification %+v", v)
			}
			// The chain-only verify alone would call this a gap: archives
			// are part of the ledger now.
			if _, err := app.VerifyLedgerFull(ctx, w.App.Store, app.VerifyOptions{Keys: vs}); err == nil {
				t.Fatal("verify without the archive directory passes although records 1.. are gone")
			} else if pe := (*app.ProofError)(nil); !errors.As(err, &pe) || pe.Reason != app.ReasonArchiveMissing {
				t.Fatalf("verify without the archives: %v", err)
			}

			// Within the retention: refused, nothing recorded or removed.
			n := len(storetest.Records(t, w.App.Store))
			if _, err := w.App.Proof.Archive(ctx, app.ArchiveOptions{Before: now().Add(time.Hour)}); !errors.Is(err, app.ErrWithinRetention) {
				t.Fatalf("archive within retention: %v", err)
			}
			if len(storetest.Records(t, w.App.Store)) != n {
				t.Fatal("a refused archive changed the ledger")
			}
			// Forced: done, and the forcing is in the ledger (before the
			// boundary moves past it, it is the record after the archive).
			traffic(t, w, 2)
			res2, err := w.App.Proof.Archive(ctx, app.ArchiveOptions{Before: now().Add(time.Hour), Force: true, Actor: "ops-1"})
			if err != nil {
				t.Fatal(err)
			}
			if !res2.Forced || res2.First != int64(old)+1 {
				t.Fatalf("forced archive %+v", res2)
			}
			live = storetest.Records(t, w.App.Store)
			var forced, archived bool
			for _, r := range live {
				forced = forced || r.Action == "audit-archive-forced" && r.Actor == "ops-1"
				archived = archived || r.Action == "audit-archive" && r.Actor == "ops-1"
			}
			if !archived {
				t.Fatal("the archive run is not in the live ledger")
			}
			if !forced {
				// The forcing record was stamped with the clock, so it may
				// have gone into the archive itself: look there.
				f, _ := os.Open(res2.File)
				ledger.ReadArchive(f, vs, func(r *audit.Record) error {
					forced = forced || r.Action == "audit-archive-forced" && r.Actor == "ops-1"
					return nil
				})
				f.Close()
			}
			if !forced {
				t.Fatal("forcing the retention is not recorded")
			}
			if _, err := app.VerifyLedgerFull(ctx, w.App.Store, opts); err != nil {
				t.Fatalf("verify after two archives: %v", err)
			}

			// A missing first archive.
			hidden := res.File + ".away"
			os.Rename(res.File, hidden)
			assertReason(t, w, opts, app.ReasonArchiveMissing)
			os.Rename(hidden, res.File)
			// An altered archive: one record line swapped for another.
			raw, _ := os.ReadFile(res2.File)
			lines := strings.Split(string(raw), "\n")
			os.Chmod(res2.File, 0o600)
			os.WriteFile(res2.File, []byte(strings.Replace(string(raw), lines[1]+"\n", lines[2]+"\n", 1)), 0o600)
			assertReason(t, w, opts, app.ReasonArchiveAltered)
			// Restored, it verifies again.
			os.WriteFile(res2.File, raw, 0o600)
			if _, err := app.VerifyLedgerFull(ctx, w.App.Store, opts); err != nil {
				t.Fatalf("restored archive: %v", err)
			}
			// The last archive gone: the live ledger starts after a hole.
			os.Remove(res2.File)
			assertReason(t, w, opts, app.ReasonArchiveMissing)
			if !bytes.Contains(note, []byte(cp.Origin)) {
				t.Fatal("checkpoint note lost its origin")
			}
		})
	}
}

func assertReason(t *testing.T, w *apptest.Ward, o app.VerifyOptions, reason string) {
	t.Helper()
	_, err := app.VerifyLedgerFull(context.Background(), w.App.Store, o)
	var pe *app.ProofError
	if !errors.As(err, &pe) || pe.Reason != reason {
		t.Fatalf("verify: %v, want %s", err, reason)
	}
}
