package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/config"
)

// BenchmarkMerkleCost measures what the Merkle tree and checkpoints take
// from reads and creates in a way that survives a noisy shared machine:
// CPU time rather than wall time, and paired rounds on one server in one
// process rather than two whole runs.
//
// Each b.N iteration is one round of two phases on the same server, in
// alternating order: "off", 2,000 requests from 32 clients with no tree
// work, and "on", 2,000 requests with the checkpointer running beside
// them every WARD_MERKLE_COST_INTERVAL (say 500ms, 120 times the
// default) and then once more after them, so that the tree is extended over every record the phase
// appended and a checkpoint covering all of them is signed before the
// phase ends. The tree work for the "off" phase's records is done after
// it, outside the phase, so each "on" phase pays for exactly its own
// records. CPU is
// this process's (user + system; on SQLite the database runs in it) plus,
// on PostgreSQL, that of the server's backends for this database (read
// from /proc). Reported per round and summarised as medians:
//
//   - cpu-us/req-off, cpu-us/req-on: CPU per request;
//   - overhead-cpu-%: median over rounds of on/off - 1, paired;
//   - overhead-wall-%: the same over wall time (throughput);
//   - tree-cpu-%: the CPU of the checkpoint that follows an "off" phase
//     (no request runs then, so all of it is extending the tree over that
//     phase's records, checking them, storing the nodes and signing) over
//     the CPU of the phase's requests: the tree's share of the work,
//     measured directly rather than as a difference of two noisy numbers;
//   - tree-cpu-us/record: the same per ledger record.
//
// Spread: overhead-cpu-p25-% and overhead-cpu-p75-% are the quartiles
// of the paired ratios, phase-wall-ms the median length of a phase (how
// many checkpoint intervals an "on" phase holds).
//
// WARD_MERKLE_COST_INTERVAL sets the interval: the default 1m is the
// server's default, where no tick falls inside a phase of a few seconds
// and the closing checkpoint does all the tree work of the phase, as one
// checkpoint a minute does for the minute's records. WARD_MERKLE_COST_AA=1
// is the control: the "on" phase runs exactly as the "off" one, so its
// overhead is the measurement's own bias and spread.
//
// Run interleaved, several times, and compare with benchstat:
//
//	go test ./internal/app -run '^$' -bench MerkleCost -benchtime 8x -count 3 | tee /tmp/mc.txt
func BenchmarkMerkleCost(b *testing.B) {
	for _, be := range apptest.Backends {
		for _, op := range []string{"read", "create"} {
			b.Run(string(be)+"/"+op, func(b *testing.B) { benchMerkleCost(b, be, op) })
		}
	}
}

const merklePhase = 2000 // requests per phase

func benchMerkleCost(b *testing.B, be apptest.Backend, op string) {
	interval := time.Minute // config.Ledger's default
	if v, err := time.ParseDuration(os.Getenv("WARD_MERKLE_COST_INTERVAL")); err == nil && v > 0 {
		interval = v
	}
	aa := os.Getenv("WARD_MERKLE_COST_AA") != ""
	w, c, bodies := benchServer(b, be, func(cfg *config.Config) { cfg.Ledger.CheckpointInterval = interval })
	w.App.Proof.Stop() // the "on" phases run the same loop themselves (checkpointer)
	ctx := context.Background()
	cpu := processCPU
	if be == apptest.Postgres {
		db, err := sql.Open("pgx", w.Config.DatabaseURL)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		cpu = func() time.Duration { return processCPU() + backendCPU(b, db) }
	}
	var ids []string
	if op == "read" {
		for i := range 256 {
			var m struct{ ID string }
			json.Unmarshal(do(b, c, createReq(w, bodies[i]), 201), &m)
			ids = append(ids, m.ID)
		}
	}
	var n atomic.Int64
	requests := func() {
		var left atomic.Int64
		left.Store(merklePhase)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					i := n.Add(1)
					if op == "read" {
						do(b, c, readReq(w, ids[i%int64(len(ids))]), 200)
					} else {
						do(b, c, createReq(w, bodies[i%int64(len(bodies))]), 201)
					}
				}
			})
		}
		wg.Wait()
	}
	checkpoint := func() {
		if _, _, err := w.App.Proof.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	checkpoint() // the key is made at the first checkpoint: not in a phase
	type phase struct{ cpu, wall time.Duration }
	// run runs a phase. After an "off" phase the tree is extended over
	// its records and a checkpoint signed with no request running: that
	// CPU is all tree and checkpoint work for a known number of records,
	// and is returned with how many.
	var treeOn []float64
	run0 := func(on bool) (p phase, tree time.Duration, recs int64) {
		c0, t0 := cpu(), time.Now()
		var stop func() time.Duration
		if on {
			stop = checkpointer(b, w, interval)
		}
		requests()
		if on {
			own := stop()
			treeOn = append(treeOn, float64(own)/float64(cpu()-c0-own))
		}
		p = phase{cpu() - c0, time.Since(t0)}
		if !on {
			h0, err := w.App.Store.AuditTreeSize(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c1 := cpu()
			checkpoint()
			tree = cpu() - c1
			h1, err := w.App.Store.AuditTreeSize(ctx)
			if err != nil {
				b.Fatal(err)
			}
			recs = h1 - h0
		}
		return p, tree, recs
	}
	run := func(on bool) (p phase, tree time.Duration, recs int64) {
		if aa && on {
			p, _, _ = run0(false)
			return p, 0, 0
		}
		return run0(on)
	}
	var ovCPU, ovWall, treeShare, treeRec, offCPU, onCPU, walls []float64
	round := 0
	b.ResetTimer()
	for b.Loop() {
		var off, on phase
		var tree time.Duration
		var recs int64
		if round%2 == 0 {
			off, tree, recs = run(false)
			on, _, _ = run(true)
		} else {
			on, _, _ = run(true)
			off, tree, recs = run(false)
		}
		round++
		ovCPU = append(ovCPU, float64(on.cpu)/float64(off.cpu)-1)
		ovWall = append(ovWall, float64(on.wall)/float64(off.wall)-1)
		treeShare = append(treeShare, float64(tree)/float64(off.cpu))
		treeRec = append(treeRec, float64(tree.Microseconds())/float64(max(recs, 1)))
		offCPU = append(offCPU, float64(off.cpu.Microseconds())/merklePhase)
		onCPU = append(onCPU, float64(on.cpu.Microseconds())/merklePhase)
		walls = append(walls, float64(off.wall.Milliseconds()), float64(on.wall.Milliseconds()))
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(offCPU), "cpu-us/req-off")
	b.ReportMetric(median(onCPU), "cpu-us/req-on")
	b.ReportMetric(100*median(ovCPU), "overhead-cpu-%")
	b.ReportMetric(100*quantile(ovCPU, 0.25), "overhead-cpu-p25-%")
	b.ReportMetric(100*quantile(ovCPU, 0.75), "overhead-cpu-p75-%")
	b.ReportMetric(median(walls), "phase-wall-ms")
	b.ReportMetric(100*median(treeOn), "tree-cpu-on-%")
	b.ReportMetric(100*median(ovWall), "overhead-wall-%")
	b.ReportMetric(100*median(treeShare), "tree-cpu-%")
	b.ReportMetric(median(treeRec), "tree-cpu-us/record")
	if os.Getenv("WARD_MERKLE_COST_ROUNDS") != "" {
		b.Logf("rounds: overhead-cpu %v overhead-wall %v tree-cpu %v tree-cpu-on %v", pct(ovCPU), pct(ovWall), pct(treeShare), pct(treeOn))
	}
}

// quantile is the q-quantile of v by linear interpolation between the
// closest ranks.
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	x := q * float64(len(s)-1)
	i := int(x)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (x-float64(i))*(s[i+1]-s[i])
}

// checkpointer runs what LedgerProof.Start runs, Checkpoint every
// interval, beside the requests, and once more when stopped, on a
// goroutine locked to its own OS thread; stop returns that thread's CPU
// time: the checkpointer's own work in the "on" phase, measured directly
// while the requests run (tree-cpu-on-%). On SQLite that is all of it
// (the database runs in the calling thread); on PostgreSQL the server's
// share is not in it.
func checkpointer(b *testing.B, w *apptest.Ward, interval time.Duration) (stop func() time.Duration) {
	quit, done := make(chan struct{}), make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c0 := threadCPU()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-quit:
				if _, _, err := w.App.Proof.Checkpoint(context.Background()); err != nil {
					b.Error(err)
				}
				done <- threadCPU() - c0
				return
			}
			if _, _, err := w.App.Proof.Checkpoint(context.Background()); err != nil {
				b.Error(err)
			}
		}
	}()
	return func() time.Duration { close(quit); return <-done }
}

// threadCPU is the calling OS thread's CPU time (RUSAGE_THREAD).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pct(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(100*x, 'f', 1, 64))
	}
	return strings.Join(s, " ")
}

// backendCPU is the CPU time (user + system) the PostgreSQL backends of
// db's database have used, from /proc (the server runs on this machine
// in the tests). A backend that ended in between is lost, one that began
// counts from zero: the pool keeps its connections, so neither happens in
// a phase.
func backendCPU(b *testing.B, db *sql.DB) time.Duration {
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // ended, or another machine: not counted
		}
		// Fields after the parenthesised command: utime and stime are
		// the 14th and 15th of the whole line, in clock ticks (100 Hz).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}
