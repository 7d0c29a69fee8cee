package seal

import (
	"bytes"
	"testing"
)

func BenchmarkSeal2KiB(b *testing.B) {
	r := newTestKeyring(b, "tenant/acme/1")
	pt := bytes.Repeat([]byte("x"), 2048)
	aad := AAD("acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seal("tenant/acme/1", pt, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealTo2KiB(b *testing.B) {
	r := newTestKeyring(b, "tenant/acme/1")
	pt := bytes.Repeat([]byte("x"), 2048)
	aad := AAD("acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = r.SealTo(buf[:0], "tenant/acme/1", pt, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen2KiB(b *testing.B) {
	r := newTestKeyring(b, "tenant/acme/1")
	pt := bytes.Repeat([]byte("x"), 2048)
	aad := AAD("acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	env, err := r.Seal("tenant/acme/1", pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(env, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenTo2KiBParallel(b *testing.B) {
	r := newTestKeyring(b, "tenant/acme/1", "tenant/other/1")
	pt := bytes.Repeat([]byte("x"), 2048)
	aad := AAD("acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	env, err := r.Seal("tenant/acme/1", pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 4096)
		for pb.Next() {
			var err error
			if buf, err = r.OpenTo(buf[:0], env, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAAD(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = AAD("acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	}
}

func BenchmarkAppendAAD(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendAAD(buf[:0], "acme", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 3)
	}
}
