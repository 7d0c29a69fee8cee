package audit

import "testing"

func BenchmarkChain(b *testing.B) {
	rec := typicalRecord()
	prev := Genesis
	b.ReportAllocs()
	for b.Loop() {
		prev = Chain(prev, rec)
	}
}

func BenchmarkHasherChain(b *testing.B) {
	rec := typicalRecord()
	prev := Genesis
	var h Hasher
	b.ReportAllocs()
	for b.Loop() {
		prev = h.Chain(prev, rec)
	}
}

func BenchmarkCanonical(b *testing.B) {
	rec := typicalRecord()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = rec.AppendCanonical(buf[:0])
	}
}

// BenchmarkVerify reports the cost per record of verifying a 1000-record
// ledger against its head.
func BenchmarkVerify(b *testing.B) {
	const n = 1000
	recs := make([]*Record, n)
	prev := Genesis
	for i := range recs {
		r := typicalRecord()
		r.Seq = int64(i + 1)
		prev = Chain(prev, r)
		recs[i] = r
	}
	head := headOf(recs)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(all(recs), head); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}
