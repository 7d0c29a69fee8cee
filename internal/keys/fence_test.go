package keys_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// bothStores opens a fresh SQLite and a fresh PostgreSQL store.
var bothStores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store { return openStore(t, filepath.Join(t.TempDir(), "w.db")) }},
	{"postgres", func(t *testing.T) store.Store {
		st, err := postgres.Open(context.Background(), pgtest.URL(t), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// TestRotateDataStaleWriter: a node that never learns the new data-key
// version keeps sealing writes under the old one during rotate-data and
// after it. The rotation still finishes and destroys the old key, the
// stale node's writes after the fence fail with ErrKeyRetired (none is
// stored under the destroyed key), and every stored version opens on a
// fresh node: no acknowledged write is lost.
func TestRotateDataStaleWriter(t *testing.T) {
	for _, sc := range bothStores {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			st := sc.open(t)
			m := resealManager(t, st)
			writeVersions(t, st, m, "a", 20)
			// The stale node: started before the rotation, it never
			// probes, so it seals under t/a/1 for ever.
			stale := resealManager(t, st)
			kid, err := stale.DataKey(ctx, "a")
			if err != nil || kid != "t/a/1" {
				t.Fatalf("stale key %q %v", kid, err)
			}
			var (
				mu              sync.Mutex
				stored, retired int
				other           error
			)
			stop, done := make(chan struct{}), make(chan struct{})
			first := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("s%06d", i)
					body, err := stale.Seal(kid, []byte(`{"resourceType":"Patient","id":"`+id+`"}`), seal.AAD("a", "Patient", id, 1))
					if err == nil {
						err = st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(), Body: body}}})
					}
					mu.Lock()
					switch {
					case err == nil:
						stored++
						if stored == 1 {
							close(first)
						}
					case errors.Is(err, store.ErrKeyRetired):
						retired++
					default:
						other = err
					}
					mu.Unlock()
					if err != nil && !errors.Is(err, store.ErrKeyRetired) {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			<-first
			rep, err := keys.RotateData(ctx, st, m, "a", keys.ResealOptions{Batch: 5})
			if err != nil || !rep.Destroyed {
				close(stop)
				<-done
				t.Fatalf("rotate-data with a stale writer: %+v %v", rep, err)
			}
			// The stale node keeps trying after the destruction.
			mu.Lock()
			after := retired
			mu.Unlock()
			for deadline := time.Now().Add(10 * time.Second); ; {
				mu.Lock()
				n := retired
				mu.Unlock()
				if n >= after+5 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			close(stop)
			<-done
			if other != nil {
				t.Fatalf("stale writer: %v", other)
			}
			if stored == 0 || retired < after+5 {
				t.Fatalf("stale writer: %d stored, %d refused (%d at the end of the rotation)", stored, retired, after)
			}
			// A fresh node (which no longer holds t/a/1) opens every
			// stored version: nothing acknowledged was lost.
			fresh := resealManager(t, st)
			vs, err := st.History(ctx, store.HistoryQuery{Tenant: "a", Limit: 100000})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 40+stored {
				t.Fatalf("%d versions stored, want %d", len(vs), 40+stored)
			}
			for _, v := range vs {
				if _, err := fresh.Open(v.Body, seal.AAD(v.Tenant, v.Type, v.ID, v.Version)); err != nil {
					t.Fatalf("%s version %d lost: %v", v.ID, v.Version, err)
				}
			}
			ks, _ := st.Keys(ctx, keys.DataKeyPurpose)
			for _, k := range ks {
				if k.ID == "t/a/1" {
					t.Fatalf("the old key is still held: %+v", k)
				}
			}
			t.Logf("stale writer: %d stored, %d refused", stored, retired)
		})
	}
}
