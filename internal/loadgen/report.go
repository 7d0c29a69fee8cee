package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Print writes a human-readable summary, e.g.
//
//	ward bench: mix=create concurrency=64 duration=30.0s
//	requests:   78123 (errors 0)
//	throughput: 2604.1 req/s
//	latency:    p50 21.3ms  p90 30.1ms  p99 44.0ms  max 80.2ms
//
// followed, for the mixed workload, by one line per operation and, if there
// were errors, by their breakdown and the first distinct error messages.
// Latencies are of successful requests; with none the line says n/a.
func (r *Report) Print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "ward bench: mix=%s concurrency=%d duration=%.1fs", r.Mix, r.Concurrency, r.Duration.Seconds())
	if r.Preloaded > 0 {
		fmt.Fprintf(&b, " preloaded=%d", r.Preloaded)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "requests:   %d (errors %d)\n", r.Requests, r.Errors)
	fmt.Fprintf(&b, "throughput: %.1f req/s\n", r.Throughput)
	if r.Requests > r.Errors {
		fmt.Fprintf(&b, "latency:    %s", latencyLine(r.P50, r.P90, r.P99, r.Max))
		if !r.LatencyExact {
			b.WriteString("  (histogram, <1% error)")
		}
	} else {
		b.WriteString("latency:    n/a (no successful requests)")
	}
	b.WriteByte('\n')
	if r.Mix == MixMixed {
		for _, name := range opNames {
			s, ok := r.PerOp[name]
			if !ok {
				continue
			}
			lat := "latency n/a"
			if s.Requests > s.Errors {
				lat = latencyLine(s.P50, s.P90, s.P99, s.Max)
			}
			fmt.Fprintf(&b, "  %-8s  requests %d (errors %d)  throughput %.1f req/s  %s\n",
				name+":", s.Requests, s.Errors, s.Throughput, lat)
		}
	}
	if r.Errors > 0 {
		codes := make([]int, 0, len(r.ErrorsByStatus))
		for c := range r.ErrorsByStatus {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		parts := make([]string, 0, len(codes))
		for _, c := range codes {
			label := "HTTP " + strconv.Itoa(c)
			if c == 0 {
				label = "transport"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", label, r.ErrorsByStatus[c]))
		}
		fmt.Fprintf(&b, "errors:     %s\n", strings.Join(parts, ", "))
		for _, m := range r.ErrorSamples {
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

func latencyLine(p50, p90, p99, max time.Duration) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", fmtLatency(p50), fmtLatency(p90), fmtLatency(p99), fmtLatency(max))
}

// fmtLatency formats a latency in milliseconds with 3 significant-ish
// digits: 0.412ms, 4.12ms, 41.2ms, 412.0ms.
func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64) + "ms"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	}
}

// jsonLatency is the latency block of the JSON form, in milliseconds.
type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type jsonOp struct {
	Requests      int64       `json:"requests"`
	Errors        int64       `json:"errors"`
	ThroughputRPS float64     `json:"throughput_rps"`
	LatencyMS     jsonLatency `json:"latency_ms"`
}

type jsonReport struct {
	Mix            string            `json:"mix"`
	Concurrency    int               `json:"concurrency"`
	DurationS      float64           `json:"duration_s"`
	Preloaded      int               `json:"preloaded"`
	Requests       int64             `json:"requests"`
	Errors         int64             `json:"errors"`
	ErrorsByStatus map[string]int64  `json:"errors_by_status"`
	ThroughputRPS  float64           `json:"throughput_rps"`
	LatencyMS      jsonLatency       `json:"latency_ms"`
	LatencyExact   bool              `json:"latency_exact"`
	PerOp          map[string]jsonOp `json:"per_op"`
	ErrorSamples   []string          `json:"error_samples"`
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latJSON(p50, p90, p99, max, mean time.Duration) jsonLatency {
	return jsonLatency{P50: msf(p50), P90: msf(p90), P99: msf(p99), Max: msf(max), Mean: msf(mean)}
}

// JSON returns the report as an indented JSON object. Durations are in
// seconds (duration_s) and milliseconds (latency_ms); errors_by_status is
// keyed by the status code as a string, "0" meaning transport errors.
func (r *Report) JSON() ([]byte, error) {
	j := jsonReport{
		Mix:            string(r.Mix),
		Concurrency:    r.Concurrency,
		DurationS:      r.Duration.Seconds(),
		Preloaded:      r.Preloaded,
		Requests:       r.Requests,
		Errors:         r.Errors,
		ErrorsByStatus: make(map[string]int64, len(r.ErrorsByStatus)),
		ThroughputRPS:  r.Throughput,
		LatencyMS:      latJSON(r.P50, r.P90, r.P99, r.Max, r.Mean),
		LatencyExact:   r.LatencyExact,
		PerOp:          make(map[string]jsonOp, len(r.PerOp)),
		ErrorSamples:   r.ErrorSamples,
	}
	if j.ErrorSamples == nil {
		j.ErrorSamples = []string{}
	}
	for c, n := range r.ErrorsByStatus {
		j.ErrorsByStatus[strconv.Itoa(c)] = n
	}
	for name, s := range r.PerOp {
		j.PerOp[name] = jsonOp{
			Requests:      s.Requests,
			Errors:        s.Errors,
			ThroughputRPS: s.Throughput,
			LatencyMS:     latJSON(s.P50, s.P90, s.P99, s.Max, s.Mean),
		}
	}
	return json.MarshalIndent(j, "", "  ")
}
