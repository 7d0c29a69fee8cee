package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func TestPercentileRank(t *testing.T) {
	tests := []struct {
		p    float64
		n    int64
		want int64
	}{
		{0, 10, 1},
		{-5, 10, 1},
		{1, 10, 1},
		{10, 10, 1},
		{11, 10, 2},
		{50, 10, 5},
		{50, 11, 6},
		{90, 10, 9},
		{99, 10, 10},
		{100, 10, 10},
		{150, 10, 10},
		{99, 100, 99},
		{99.9, 1000, 999},
		{50, 1, 1},
		{99, 1, 1},
		{90, 20, 18},
		{99, 1_000_000, 990_000},
	}
	for _, tt := range tests {
		if got := percentileRank(tt.p, tt.n); got != tt.want {
			t.Errorf("percentileRank(%v, %d) = %d, want %d", tt.p, tt.n, got, tt.want)
		}
	}
}

func TestPercentileSorted(t *testing.T) {
	// 1..100 ms: the nearest-rank p-th percentile is p ms.
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(float64(i)))
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"single p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"1..100 p50", hundred, 50, ms(50)},
		{"1..100 p90", hundred, 90, ms(90)},
		{"1..100 p99", hundred, 99, ms(99)},
		{"1..100 p100", hundred, 100, ms(100)},
		{"1..100 p0", hundred, 0, ms(1)},
		// Nearest rank of four values: p50 -> rank 2, p90 -> rank 4.
		{"four p50", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"four p90", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 90, ms(4)},
		{"four p25", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 25, ms(1)},
		{"four p26", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 26, ms(2)},
	}
	for _, tt := range tests {
		if got := percentileSorted(tt.in, tt.p); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSummarizeExact(t *testing.T) {
	// Unsorted input: 10 samples 10..100ms plus an outlier of 1s.
	in := []time.Duration{ms(30), ms(100), ms(10), ms(1000), ms(50), ms(20), ms(90), ms(40), ms(70), ms(60), ms(80)}
	s := summarizeExact(in)
	// Sorted: 10 20 30 40 50 60 70 80 90 100 1000 (n = 11).
	// p50 -> rank 6 = 60ms; p90 -> rank ceil(9.9) = 10 = 100ms; p99 -> rank 11.
	if !s.Exact || s.P50 != ms(60) || s.P90 != ms(100) || s.P99 != ms(1000) || s.Max != ms(1000) {
		t.Fatalf("summary = %+v", s)
	}
	if want := ms(1550) / 11; s.Mean != want {
		t.Fatalf("mean = %v, want %v", s.Mean, want)
	}
	if z := summarizeExact(nil); z.P50 != 0 || z.Max != 0 || z.Mean != 0 {
		t.Fatalf("empty summary = %+v", z)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets are contiguous, ascending, and each value maps into the
	// bucket whose bounds contain it, with width <= lower bound / 64.
	prevEnd := int64(0)
	for i := 0; i < histBuckets; i++ {
		lo, w := histBucket(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		if i >= histSub && float64(w) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d,+%d) too wide", i, lo, w)
		}
		for _, v := range []int64{lo, lo + w/2, lo + w - 1} {
			if got := histIndex(v); got != i {
				t.Fatalf("histIndex(%d) = %d, want %d", v, got, i)
			}
		}
		prevEnd = lo + w
	}
	if prevEnd != histMaxValue+1 {
		t.Fatalf("last bucket ends at %d, want %d", prevEnd, histMaxValue+1)
	}
	if got := histIndex(int64(10 * time.Minute)); got != histBuckets-1 {
		t.Fatalf("huge value index %d, want last bucket", got)
	}
	if got := histIndex(-1); got != 0 {
		t.Fatalf("negative value index %d, want 0", got)
	}
}

func TestHistogramAccuracy(t *testing.T) {
	// Log-uniform latencies from 1µs to 60s: every histogram percentile
	// must be within 1% of the exact nearest-rank percentile.
	rng := rand.New(rand.NewPCG(42, 7))
	lo, hi := math.Log(float64(time.Microsecond)), math.Log(float64(60*time.Second))
	h := new(histogram)
	var exact []time.Duration
	for range 200_000 {
		d := time.Duration(math.Exp(lo + rng.Float64()*(hi-lo)))
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, p := range []float64{0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100} {
		want := percentileSorted(exact, p)
		got := h.percentile(p)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("p%v: histogram %v, exact %v (error %.3f%%)", p, got, want, rel*100)
		}
	}
	s := h.summary()
	if s.Max != exact[len(exact)-1] {
		t.Errorf("max %v, want exact %v", s.Max, exact[len(exact)-1])
	}
	if s.Exact {
		t.Error("histogram summary claims to be exact")
	}
}

func TestHistogramSmallInputs(t *testing.T) {
	h := new(histogram)
	if h.percentile(50) != 0 {
		t.Fatal("empty histogram percentile != 0")
	}
	for _, v := range []time.Duration{ms(1), ms(2), ms(3), ms(4)} {
		h.record(v)
	}
	check := func(p float64, want time.Duration) {
		t.Helper()
		got := h.percentile(p)
		if math.Abs(float64(got-want))/float64(want) > 0.01 {
			t.Errorf("p%v = %v, want ~%v", p, got, want)
		}
	}
	check(50, ms(2))
	check(90, ms(4))
	if h.percentile(100) > ms(4) {
		t.Errorf("p100 %v exceeds max", h.percentile(100))
	}
}

func TestRecorderSwitchesToHistogram(t *testing.T) {
	a, b := newRecorder(10), newRecorder(10)
	for i := 1; i <= 8; i++ {
		a.success(ms(float64(i)))
		b.success(ms(float64(i)))
	}
	m := mergeRecorders([]*recorder{a, b})
	if !m.lat.Exact || m.ok != 16 || m.lat.P50 != ms(4) || m.lat.Max != ms(8) {
		t.Fatalf("exact merge = %+v", m)
	}
	for i := 9; i <= 100; i++ {
		a.success(ms(float64(i)))
	}
	a.failure(500)
	a.failure(0)
	b.failure(500)
	if a.hist == nil || a.samples != nil {
		t.Fatal("recorder did not switch to the histogram past its limit")
	}
	m = mergeRecorders([]*recorder{a, b})
	// Samples: 1..100 once plus 1..8 again = 108 values. Rank of p50 is 54:
	// 1..8 twice give ranks 1..16, so rank 54 is 54-8 = 46ms.
	if m.lat.Exact || m.ok != 108 || m.errs != 3 || m.errByStatus[500] != 2 || m.errByStatus[0] != 1 {
		t.Fatalf("histogram merge = %+v", m)
	}
	if rel := math.Abs(float64(m.lat.P50-ms(46))) / float64(ms(46)); rel > 0.01 {
		t.Fatalf("p50 = %v, want ~46ms", m.lat.P50)
	}
	if m.lat.Max != ms(100) {
		t.Fatalf("max = %v", m.lat.Max)
	}
}
