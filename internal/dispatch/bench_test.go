package dispatch_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// fill commits n events in units of 500.
func fill(b *testing.B, st store.Store, n int) {
	b.Helper()
	for done := 0; done < n; {
		k := min(500, n-done)
		evs := make([]events.Event, k)
		for i := range evs {
			key := fmt.Sprintf("Patient/p%d", (done+i)%97)
			evs[i] = events.New("bench", events.ResourceUpdated, key, key, time.Now(), events.Data{ResourceType: "Observation", ID: fmt.Sprint(done + i), VersionID: "1", Patients: []string{key}})
		}
		u := &store.Unit{Parts: []store.Part{store.Outbox{Events: evs}}}
		u.AddAudit(&audit.Record{Time: time.Now(), Tenant: "bench", Actor: "bench", Role: "system", Action: "update"})
		if err := st.Commit(context.Background(), u); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

// acked counts the events a sink acknowledged and closes done once it
// has seen want of them: the benchmark's clock stops at the last
// JetStream ack, not when the position (written at most once a second)
// reaches the head.
type acked struct {
	dispatch.Sink
	n, want int64
	once    sync.Once
	done    chan struct{}
}

func (a *acked) FromStart() bool { return true }

// Batch forwards the sink's batch size (dispatch.Batcher), when it has one.
func (a *acked) Batch() int {
	if b, ok := a.Sink.(interface{ Batch() int }); ok {
		return b.Batch()
	}
	return 0
}

func (a *acked) Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error) {
	n, err := a.Sink.Deliver(ctx, evs)
	if atomic.AddInt64(&a.n, int64(n)) >= a.want {
		a.once.Do(func() { close(a.done) })
	}
	return n, err
}

// benchNATS measures the outbox drained into JetStream: b.N events are
// committed first (not timed), then one dispatcher delivers them all, each
// publish acknowledged before the position moves. events/s counts to the
// last ack; stored-ms is when the position (the "sent" mark, written at
// most once a second) reached the head.
func benchNATS(b *testing.B, open func(b *testing.B) *sqlstore.DB) {
	u := os.Getenv("WARD_TEST_NATS")
	if u == "" {
		b.Skip("no NATS (WARD_TEST_NATS)")
	}
	st := open(b)
	fill(b, st, b.N)
	head, err := st.OutboxStats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	prefix := fmt.Sprintf("wb%d", time.Now().UnixNano()%1e9)
	sink, err := dispatch.DialNATS(dispatch.NATSOptions{URL: u, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	nc, _ := nats.Connect(u)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	defer js.DeleteStream(context.Background(), sink.StreamName("bench"))
	a := &acked{Sink: sink, want: int64(b.N), done: make(chan struct{})}
	d := dispatch.New(st, dispatch.Options{Owner: "bench", Batch: 2000, Poll: time.Millisecond})
	d.Add(a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	cpu0, nats0 := processCPU(), natsCPU()
	start := time.Now()
	go func() { d.Run(ctx); close(done) }()
	select {
	case <-a.done:
	case <-time.After(5 * time.Minute):
		b.Fatal("events not acknowledged")
	}
	el := time.Since(start)
	cpu, ncpu := processCPU()-cpu0, natsCPU()-nats0
	b.StopTimer()
	for {
		rs, err := st.Receivers(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) == 1 && rs[0].Pos == head.Head {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stored := time.Since(start)
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(stored.Milliseconds()), "stored-ms")
	// CPU per event: what a loaded machine cannot hide. events/s is the
	// wall clock, and on a shared 2-core machine mostly measures the share
	// of the cores the benchmark got; the CPU it used per event says what
	// a quiet machine would do (2 cores / (Ward + NATS CPU per event)).
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-us/event")
	if nats0 >= 0 {
		b.ReportMetric(float64(ncpu.Nanoseconds())/1e3/float64(b.N), "nats-cpu-us/event")
	}
}

// processCPU is the user and system CPU this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// natsCPU is the CPU the NATS server has used, when WARD_BENCH_NATS_PID
// names its process on this machine (else -1).
func natsCPU() time.Duration {
	pid := os.Getenv("WARD_BENCH_NATS_PID")
	if pid == "" {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	// utime and stime are the 14th and 15th fields, in clock ticks
	// (100 Hz), counted after the parenthesised command name.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func BenchmarkOutboxToNATS(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchNATS(b, func(b *testing.B) *sqlstore.DB { return openSQLite(b) })
	})
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("WARD_TEST_POSTGRES") == "" {
			b.Skip("no PostgreSQL")
		}
		benchNATS(b, func(b *testing.B) *sqlstore.DB { return openPG(b, pgtest.URL(b)) })
	})
}
