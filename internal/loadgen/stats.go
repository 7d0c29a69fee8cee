package loadgen

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// percentileRank returns the 1-based nearest-rank index for percentile p
// (0 < p <= 100) over n samples: ceil(p/100 * n), clamped to [1, n].
// p <= 0 selects the minimum. n must be > 0.
func percentileRank(p float64, n int64) int64 {
	if p <= 0 {
		return 1
	}
	// p*n first keeps integer inputs exact (e.g. 99*100/100 == 99); the
	// epsilon absorbs representation error for fractional percentiles.
	r := int64(math.Ceil(p*float64(n)/100 - 1e-9))
	if r < 1 {
		r = 1
	}
	if r > n {
		r = n
	}
	return r
}

// percentileSorted returns the nearest-rank percentile p of an ascending
// slice. An empty slice yields 0.
func percentileSorted(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[percentileRank(p, int64(len(sorted)))-1]
}

// latencySummary is the latency part of a report.
type latencySummary struct {
	P50, P90, P99, Max, Mean time.Duration
	Exact                    bool // false if computed from the histogram
}

// summarizeExact sorts samples in place and computes the summary.
func summarizeExact(samples []time.Duration) latencySummary {
	s := latencySummary{Exact: true}
	if len(samples) == 0 {
		return s
	}
	slices.Sort(samples)
	var sum int64
	for _, v := range samples {
		sum += int64(v)
	}
	s.P50 = percentileSorted(samples, 50)
	s.P90 = percentileSorted(samples, 90)
	s.P99 = percentileSorted(samples, 99)
	s.Max = samples[len(samples)-1]
	s.Mean = time.Duration(sum / int64(len(samples)))
	return s
}

// Histogram layout (log-linear, in nanoseconds, HDR-style):
//
//   - values 0..63 ns have one bucket each (exact);
//   - above that, every power-of-two range [2^e, 2^(e+1)) is split into 64
//     equal buckets, i.e. the bucket width is at most 1/64 of its lower
//     bound. The midpoint reported for a bucket is therefore within
//     1/128 (< 0.8%) of any value in it.
//
// The top bucket range ends at 2^36 ns (~68.7 s); larger values are clamped
// into the last bucket (the exact maximum is tracked separately). That is
// 1984 buckets of 8 bytes (~16 KiB).
const (
	histSubBits  = 6
	histSub      = 1 << histSubBits // 64
	histMaxShift = 36 - histSubBits - 1
	histBuckets  = (histMaxShift + 2) * histSub // 1984
	histMaxValue = int64(1)<<36 - 1
)

type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    int64
	max    int64
}

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	if v > histMaxValue {
		v = histMaxValue
	}
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // v in [2^e, 2^(e+1))
	shift := e - histSubBits
	mant := v >> uint(shift) // in [64, 128)
	return (shift+1)*histSub + int(mant-histSub)
}

// histBucket returns the lower bound and width of bucket i.
func histBucket(i int) (lo, width int64) {
	if i < histSub {
		return int64(i), 1
	}
	shift := i/histSub - 1
	mant := int64(histSub + i%histSub)
	return mant << uint(shift), int64(1) << uint(shift)
}

// histValue is the representative (midpoint) value of bucket i.
func histValue(i int) int64 {
	lo, w := histBucket(i)
	return lo + w/2
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// percentile returns the nearest-rank percentile p, reported as the
// midpoint of the bucket holding that rank, capped at the exact maximum.
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(percentileRank(p, int64(h.n)))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := histValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) summary() latencySummary {
	s := latencySummary{Exact: false}
	if h.n == 0 {
		return s
	}
	s.P50 = h.percentile(50)
	s.P90 = h.percentile(90)
	s.P99 = h.percentile(99)
	s.Max = time.Duration(h.max)
	s.Mean = time.Duration(h.sum / int64(h.n))
	return s
}

// recorder collects the outcome of one operation kind in one worker. It is
// owned by exactly one goroutine while the phase runs, so it needs no locks.
//
// Latencies of successful requests are kept as exact samples until the
// recorder holds limit of them; from then on the recorder switches to a
// histogram (the samples so far are folded into it).
type recorder struct {
	ok, errs    int64
	errByStatus map[int]int64
	samples     []time.Duration
	hist        *histogram
	limit       int
}

func newRecorder(limit int) *recorder {
	return &recorder{limit: limit}
}

func (r *recorder) success(d time.Duration) {
	r.ok++
	if r.hist != nil {
		r.hist.record(d)
		return
	}
	if len(r.samples) >= r.limit {
		r.hist = new(histogram)
		for _, v := range r.samples {
			r.hist.record(v)
		}
		r.samples = nil
		r.hist.record(d)
		return
	}
	r.samples = append(r.samples, d)
}

func (r *recorder) failure(status int) {
	r.errs++
	if r.errByStatus == nil {
		r.errByStatus = make(map[int]int64)
	}
	r.errByStatus[status]++
}

// mergedStats aggregates a set of recorders.
type mergedStats struct {
	ok, errs    int64
	errByStatus map[int]int64
	lat         latencySummary
}

// mergeRecorders combines recorders. If none of them switched to a
// histogram the percentiles are exact (all samples sorted); otherwise every
// sample is folded into one histogram.
func mergeRecorders(recs []*recorder) mergedStats {
	m := mergedStats{errByStatus: make(map[int]int64)}
	exact := true
	total := 0
	for _, r := range recs {
		m.ok += r.ok
		m.errs += r.errs
		for k, v := range r.errByStatus {
			m.errByStatus[k] += v
		}
		if r.hist != nil {
			exact = false
		}
		total += len(r.samples)
	}
	if exact {
		all := make([]time.Duration, 0, total)
		for _, r := range recs {
			all = append(all, r.samples...)
		}
		m.lat = summarizeExact(all)
		return m
	}
	h := new(histogram)
	for _, r := range recs {
		if r.hist != nil {
			h.merge(r.hist)
		}
		for _, v := range r.samples {
			h.record(v)
		}
	}
	m.lat = h.summary()
	return m
}
