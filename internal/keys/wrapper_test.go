package keys_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/pkcs11/pkcs11test"
	"github.com/wardhealth/ward/internal/keys/transit"
	"github.com/wardhealth/ward/internal/keys/transittest"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// wrappers are the three KEK homes, each fresh.
var wrappers = []struct {
	name string
	new  func(t *testing.T) keys.KeyWrapper
}{
	{"file", func(t *testing.T) keys.KeyWrapper {
		kek, err := seal.NewKEK(bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		return keys.NewFileWrapper(kek)
	}},
	{"pkcs11", func(t *testing.T) keys.KeyWrapper {
		w, err := pkcs11.New(pkcs11test.Config(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}},
	{"transit", func(t *testing.T) keys.KeyWrapper {
		srv := transittest.Start()
		t.Cleanup(srv.Close)
		w, err := transit.New(context.Background(), transit.Config{Address: srv.URL, Token: srv.Token})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}},
}

func TestWrappers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range wrappers {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.new(t)
			dek := bytes.Repeat([]byte{0xd5}, 32)
			wrapped, kek, err := w.Wrap(ctx, "t/a/1", dek)
			if err != nil || kek == "" {
				t.Fatalf("wrap: %q %v", kek, err)
			}
			if bytes.Contains(wrapped, dek[:8]) {
				t.Fatal("wrapped key contains the key")
			}
			if cur, ok := w.(keys.Current); ok {
				if c, err := cur.CurrentKEK(ctx); err != nil || c != kek {
					t.Fatalf("current %q, wrapped under %q: %v", c, kek, err)
				}
			}
			got, err := w.Unwrap(ctx, "t/a/1", wrapped)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("unwrap: %v", err)
			}
			// Bound to its key id.
			if _, err := w.Unwrap(ctx, "t/b/1", wrapped); err == nil {
				t.Fatal("a wrapped key unwrapped under another key id")
			}
			// Tampered.
			bad := bytes.Clone(wrapped)
			bad[len(bad)-3] ^= 1
			if _, err := w.Unwrap(ctx, "t/a/1", bad); err == nil {
				t.Fatal("a modified wrapped key unwrapped")
			}
		})
	}
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRotateKEK: rotation re-wraps every key to the new version without
// touching sealed data, is audited and emits keys.rotated, and after
// retirement the old wrapped forms no longer unwrap.
func TestRotateKEK(t *testing.T) {
	ctx := context.Background()
	for _, tc := range wrappers {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
			w := tc.new(t)
			rotateWith := w
			opts := keys.RotateOptions{Rotate: true, Retire: true, Batch: 2}
			if tc.name == "file" {
				// A key file is rotated by giving a new one as current
				// and the old one as previous.
				next, _ := seal.NewKEK(bytes.Repeat([]byte{8}, 32))
				rotateWith = keys.NewFileWrapper(next, oldKEK(t))
				opts = keys.RotateOptions{Batch: 2}
			}
			m, err := keys.NewWithWrapper(ctx, st, w, nil)
			if err != nil {
				t.Fatal(err)
			}
			var envs [][]byte
			for _, tenant := range []string{"a", "b", "c", "d", "e"} {
				id, err := m.DataKey(ctx, tenant)
				if err != nil {
					t.Fatal(err)
				}
				env, err := m.Seal(id, []byte("body of "+tenant), []byte(tenant))
				if err != nil {
					t.Fatal(err)
				}
				envs = append(envs, env)
			}
			before, _ := st.Keys(ctx, keys.DataKeyPurpose)
			var progress []int
			opts.Progress = func(n int) { progress = append(progress, n) }
			rep, err := keys.RotateKEK(ctx, st, rotateWith, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rewrapped != len(before) || rep.To == before[0].KEK || len(progress) != 3 {
				t.Fatalf("report %+v, progress %v, %d keys before", rep, progress, len(before))
			}
			after, _ := st.Keys(ctx, keys.DataKeyPurpose)
			for i, k := range after {
				if k.KEK != rep.To || bytes.Equal(k.Wrapped, before[i].Wrapped) {
					t.Fatalf("key %s still under %q", k.ID, k.KEK)
				}
			}
			// A second run finds nothing to do.
			if rep2, err := keys.RotateKEK(ctx, st, rotateWith, keys.RotateOptions{}); err != nil || rep2.Rewrapped != 0 || rep2.Kept != len(after) {
				t.Fatalf("second run: %+v %v", rep2, err)
			}
			// A node started after the rotation opens what was sealed
			// before it.
			m2, err := keys.NewWithWrapper(ctx, st, rotateWith, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, tenant := range []string{"a", "b", "c", "d", "e"} {
				if pt, err := m2.Open(envs[i], []byte(tenant)); err != nil || string(pt) != "body of "+tenant {
					t.Fatalf("open after rotation: %v", err)
				}
			}
			if rep.Retired {
				if _, err := rotateWith.Unwrap(ctx, before[0].ID, before[0].Wrapped); err == nil {
					t.Fatal("a key wrapped under a retired version still unwraps")
				}
			}
			var rotated, rewrapped, five, retired int
			for _, r := range storetest.Records(t, st) {
				switch r.Action {
				case "kek-retire":
					// Names the versions retired (by name, no key material).
					if len(r.Entities) != 1 || r.Entities[0] != "kek/"+before[0].KEK {
						t.Fatalf("kek-retire names %v, retired %s", r.Entities, before[0].KEK)
					}
					retired++
				case "kek-rotate":
					rotated++
				case "kek-rewrap":
					rewrapped++
					if strings.HasPrefix(r.Detail, "rewrapped=5") {
						five++
					}
				}
			}
			if rewrapped != 2 || five != 1 || (opts.Rotate && rotated != 1) || (rep.Retired != (retired == 1)) || retired > 1 {
				t.Fatalf("%d kek-rotate, %d kek-rewrap and %d kek-retire records (retired %v)", rotated, rewrapped, retired, rep.Retired)
			}
			evs, err := st.(interface {
				OutboxAfter(ctx context.Context, after int64, limit int) ([]store.OutboxEvent, error)
			}).OutboxAfter(ctx, 0, 1000)
			var n int
			for _, e := range evs {
				if e.Type == "keys.rotated" && strings.Contains(string(e.JSON), "kek-rewrap") {
					n++
				}
			}
			if err != nil || n != 2 {
				t.Fatalf("%d keys.rotated events for re-wraps: %v", n, err)
			}
		})
	}
}

func oldKEK(t *testing.T) *seal.KEK {
	k, err := seal.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTransitStartFailsClosed: no start without the KEK.
func TestTransitStartFailsClosed(t *testing.T) {
	ctx := context.Background()
	srv := transittest.Start()
	defer srv.Close()
	if _, err := transit.New(ctx, transit.Config{Address: srv.URL, Token: "wrong"}); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	w, err := transit.New(ctx, transit.Config{Address: srv.URL, Token: srv.Token, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m, err := keys.NewWithWrapper(ctx, st, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.DataKey(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := keys.NewWithWrapper(ctx, st, w, nil); !errors.Is(err, keys.ErrKEKUnavailable) {
		t.Fatalf("start with the transit server down: %v", err)
	}
	if _, err := transit.New(ctx, transit.Config{Address: srv.URL, Token: srv.Token, Timeout: time.Second}); err == nil {
		t.Fatal("transit.New succeeded with the server down")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.NewWithWrapper(ctx, st, w, nil); err != nil {
		t.Fatalf("start after the server came back: %v", err)
	}
}

// TestPKCS11WrongPIN: no start with a wrong PIN.
func TestPKCS11WrongPIN(t *testing.T) {
	cfg := pkcs11test.Config(t)
	cfg.Pin = "not-the-pin"
	if w, err := pkcs11.New(cfg); err == nil {
		w.Close()
		t.Fatal("a wrong PIN was accepted")
	} else if strings.Contains(err.Error(), cfg.Pin) {
		t.Fatalf("the error names the PIN: %v", err)
	}
	// No HSM library: no start either.
	cfg = pkcs11test.Config(t)
	cfg.Module = filepath.Join(t.TempDir(), "no-such-pkcs11.so")
	if w, err := pkcs11.New(cfg); err == nil {
		w.Close()
		t.Fatal("a missing PKCS#11 module was accepted")
	}
}

// TestPKCS11CacheLifetime: a running node whose token stops answering
// (its session to the HSM is gone) keeps serving from its unwrapped keys
// for the cache lifetime, then fails closed (503 class) for opening and
// sealing alike. (Recovery when the KEK answers again is shown with the
// transit server, TestCacheLifetime: a closed PKCS#11 session does not
// come back in the same process.)
func TestPKCS11CacheLifetime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := pkcs11.New(pkcs11test.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m, err := keys.NewWithWrapper(ctx, st, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.DataKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	env, _ := m.Seal(id, []byte("x"), nil)
	const ttl = 1500 * time.Millisecond
	go m.Watch(ctx, 50*time.Millisecond, ttl)
	time.Sleep(100 * time.Millisecond)
	w.Close()
	failsClosedAfter(t, m, id, env, time.Now(), ttl)
	// Nor can a node start on it.
	if _, err := keys.NewWithWrapper(ctx, st, w, nil); !errors.Is(err, keys.ErrKEKUnavailable) {
		t.Fatalf("start without the token: %v", err)
	}
}

// TestCacheLifetime: a running node keeps serving from its unwrapped keys
// while the KEK is away for less than the cache lifetime, then fails
// closed (503 class), and serves again once the KEK answers.
func TestCacheLifetime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := transittest.Start()
	defer srv.Close()
	w, err := transit.New(ctx, transit.Config{Address: srv.URL, Token: srv.Token, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m, err := keys.NewWithWrapper(ctx, st, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.DataKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	env, _ := m.Seal(id, []byte("x"), nil)
	const ttl = 1500 * time.Millisecond
	go m.Watch(ctx, 50*time.Millisecond, ttl)
	time.Sleep(100 * time.Millisecond)
	srv.Stop()
	failsClosedAfter(t, m, id, env, time.Now(), ttl)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := m.Open(env, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still refusing after the KEK came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failsClosedAfter checks a node whose KEK went away at gone: it keeps
// opening env from its cache within the lifetime ttl, then refuses to
// open and to seal under id, as unavailable (503 class), not earlier.
func failsClosedAfter(t *testing.T, m *keys.Manager, id string, env []byte, gone time.Time, ttl time.Duration) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	if _, err := m.Open(env, nil); err != nil {
		t.Fatalf("open within the cache lifetime: %v", err)
	}
	var failedAfter time.Duration
	for time.Since(gone) < 5*time.Second {
		if _, err := m.Open(env, nil); err != nil {
			if !errors.Is(err, keys.ErrKEKUnavailable) || !errors.Is(err, problem.ErrUnavailable) {
				t.Fatalf("failure is not unavailable: %v", err)
			}
			failedAfter = time.Since(gone)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if failedAfter == 0 || failedAfter < ttl-200*time.Millisecond {
		t.Fatalf("failed closed after %s, lifetime %s", failedAfter, ttl)
	}
	if _, err := m.Seal(id, []byte("y"), nil); !errors.Is(err, keys.ErrKEKUnavailable) {
		t.Fatalf("seal past the lifetime: %v", err)
	}
}
