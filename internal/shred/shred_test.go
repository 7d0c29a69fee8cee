package shred_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/blob/blobtest"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/shred"
)

func wrapper(t *testing.T) *keys.FileWrapper {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	kek, err := seal.NewKEK(k)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewFileWrapper(kek)
}

func entry(seq int64, patient string) shred.Entry {
	return shred.Entry{Tenant: "t1", Patient: patient, Keys: []string{"p/t1/" + patient + "/1"}, Resources: []string{"Patient/" + patient, "Observation/o-" + patient},
		Seq: seq, Hash: strings.Repeat("ab", 32), At: time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)}
}

func stores(t *testing.T) map[string]func(t *testing.T) blob.Store {
	return map[string]func(t *testing.T) blob.Store{
		"local": func(t *testing.T) blob.Store {
			l, err := blob.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
		"s3": func(t *testing.T) blob.Store {
			s, err := blob.NewS3(blobtest.S3(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// TestList: a list is created once and reopened with the same KEK; its
// entries come back verified, in ledger order; appending one twice is
// no error and stores it once; without the list Open is ErrMissing; a
// list under another KEK does not open.
func TestList(t *testing.T) {
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			objs := open(t)
			w := wrapper(t)
			if _, err := shred.Open(ctx, objs, w, false); !errors.Is(err, shred.ErrMissing) {
				t.Fatalf("open a missing list: %v", err)
			}
			l, err := shred.Open(ctx, objs, w, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []shred.Entry{entry(20, "b"), entry(7, "a"), entry(20, "b")} {
				if err := l.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			l2, err := shred.Open(ctx, objs, w, true)
			if err != nil {
				t.Fatal(err)
			}
			es, err := l2.Entries(ctx)
			if err != nil || len(es) != 2 || es[0].Patient != "a" || es[1].Patient != "b" || len(es[1].Resources) != 2 {
				t.Fatalf("entries: %+v %v", es, err)
			}
			if e, err := l2.Find(ctx, "t1", "b"); err != nil || e == nil || e.Seq != 20 {
				t.Fatalf("find: %+v %v", e, err)
			}
			if _, err := shred.Open(ctx, objs, wrapper(t), false); err == nil {
				t.Fatal("the list opened under another KEK")
			}
			if err := l.Append(ctx, shred.Entry{Tenant: "t1", Patient: "c", Seq: 3}); err == nil {
				t.Fatal("an entry without its keys and hash was appended")
			}
		})
	}
}

// TestTamper: an entry changed, or moved to another name, or one written
// under another MAC key, is ErrTampered.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	cases := map[string]func(t *testing.T, objs blob.Store, body []byte){
		"changed": func(t *testing.T, objs blob.Store, body []byte) {
			put(t, objs, shred.EntryName(7, strings.Repeat("ab", 32)), bytes.Replace(body, []byte(`"patient":"a"`), []byte(`"patient":"z"`), 1))
		},
		"moved": func(t *testing.T, objs blob.Store, body []byte) {
			put(t, objs, shred.EntryName(7, strings.Repeat("ab", 32)), []byte("{}"))
			objs.Delete(ctx, shred.EntryName(7, strings.Repeat("ab", 32)))
			put(t, objs, shred.EntryName(8, strings.Repeat("ab", 32)), body)
		},
		"forged": func(t *testing.T, objs blob.Store, body []byte) {
			other, _ := blob.NewLocal(t.TempDir())
			l, _ := shred.Open(ctx, other, wrapper(t), true)
			l.Append(ctx, entry(9, "f"))
			rc, _ := other.Open(ctx, shred.EntryName(9, strings.Repeat("ab", 32)), 0)
			b, _ := io.ReadAll(rc)
			rc.Close()
			put(t, objs, shred.EntryName(7, strings.Repeat("ab", 32)), body)
			put(t, objs, shred.EntryName(9, strings.Repeat("ab", 32)), b)
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			objs, _ := blob.NewLocal(t.TempDir())
			w := wrapper(t)
			l, err := shred.Open(ctx, objs, w, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(ctx, entry(7, "a")); err != nil {
				t.Fatal(err)
			}
			n := shred.EntryName(7, strings.Repeat("ab", 32))
			rc, err := objs.Open(ctx, n, 0)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(rc)
			rc.Close()
			objs.Delete(ctx, n)
			tamper(t, objs, body)
			if _, err := l.Entries(ctx); !errors.Is(err, shred.ErrTampered) {
				t.Fatalf("entries of a tampered list: %v", err)
			}
		})
	}
}

func put(t *testing.T, objs blob.Store, name string, b []byte) {
	t.Helper()
	objs.Delete(context.Background(), name)
	if _, err := objs.Put(context.Background(), name, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: Parse never panics, and what it accepts is a complete entry.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"entry":{"tenant":"t","patient":"p","keys":["k"],"seq":1,"hash":"` + strings.Repeat("ab", 32) + `","at":"2026-12-07T21:00:00Z"},"mac":"` + strings.Repeat("00", 32) + `"}`))
	f.Add([]byte(`{"entry":{"tenant":"t","patient":"p","keys":["k"],"resources":["Patient"],"seq":1,"hash":"` + strings.Repeat("ab", 32) + `"},"mac":"` + strings.Repeat("00", 32) + `"}`))
	f.Add([]byte(`{"entry":null,"mac":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, mac, err := shred.Parse(b)
		if err != nil {
			return
		}
		if e.Seq <= 0 || e.Tenant == "" || e.Patient == "" || len(e.Keys) == 0 || len(mac) != 32 || len(e.Hash) != 64 {
			t.Fatalf("accepted an incomplete entry: %+v", e)
		}
	})
}

// TestRewrap: after the MAC key is re-wrapped under a new key file, a
// wrapper that knows only the new file (the old one retired) still opens
// the list and verifies entries appended under the old one; without the
// re-wrap it cannot.
func TestRewrap(t *testing.T) {
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			objs := open(t)
			oldW := wrapper(t)
			l, err := shred.Open(ctx, objs, oldW, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(ctx, entry(3, "a")); err != nil {
				t.Fatal(err)
			}
			k := make([]byte, 32)
			rand.Read(k)
			newKEK, err := seal.NewKEK(k)
			if err != nil {
				t.Fatal(err)
			}
			newOnly := keys.NewFileWrapper(newKEK)
			if _, err := shred.Open(ctx, objs, newOnly, false); err == nil {
				t.Fatal("the list opened under a KEK that never wrapped its key")
			}
			both := keys.NewFileWrapper(newKEK, oldW.KEKs()...)
			if err := l.Rewrap(ctx, both); err != nil {
				t.Fatal(err)
			}
			l2, err := shred.Open(ctx, objs, newOnly, false)
			if err != nil {
				t.Fatalf("after the re-wrap, the new KEK alone: %v", err)
			}
			es, err := l2.Entries(ctx)
			if err != nil || len(es) != 1 || es[0].Patient != "a" {
				t.Fatalf("entries after the re-wrap: %v, %v", es, err)
			}
			if err := l2.Append(ctx, entry(9, "b")); err != nil {
				t.Fatal(err)
			}
			// The old KEK alone still opens the original object and
			// verifies the same entries: the MAC key did not change.
			l3, err := shred.Open(ctx, objs, oldW, false)
			if err != nil {
				t.Fatal(err)
			}
			if es, err := l3.Entries(ctx); err != nil || len(es) != 2 {
				t.Fatalf("entries under the old KEK: %d, %v", len(es), err)
			}
		})
	}
}
