package app_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
)

// BenchmarkLedgerMerkle is the side-by-side cost of the Merkle tree and
// checkpoints on the hot paths, in one sitting: reads and creates from 32
// clients with checkpoints off ("off") and with the tree extended and a
// checkpoint signed every second ("1s", sixty times the default
// WARD_CHECKPOINT_INTERVAL of 1m), alternating. The commit path itself is
// the same in both (the tree is built from the committed records, off the
// request path); what "1s" adds is the checkpointer's reads of new records,
// hashing and node writes competing for the same cores and database.
// signed/op reports the share of the ledger the last checkpoint covered.
func BenchmarkLedgerMerkle(b *testing.B) {
	variants := []struct {
		name     string
		interval time.Duration
	}{{"off", 0}, {"1s", time.Second}}
	for _, be := range apptest.Backends {
		for _, op := range []string{"read", "create"} {
			for _, v := range variants {
				b.Run(string(be)+"/"+op+"/"+v.name, func(b *testing.B) {
					mut := func(c *config.Config) { c.Ledger.CheckpointInterval = v.interval }
					if op == "read" {
						benchRead(b, be, true, mut)
					} else {
						benchCreateWith(b, be, mut)
					}
				})
			}
		}
	}
}

// benchCreateWith is benchCreate's parallel run with a configuration.
func benchCreateWith(b *testing.B, backend apptest.Backend, mutate ...func(*config.Config)) {
	w, c, bodies := benchServer(b, backend, mutate...)
	b.SetBytes(int64(len(bodies[0])))
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			do(b, c, createReq(w, bodies[n.Add(1)%int64(len(bodies))]), 201)
		}
	})
	b.StopTimer()
	reportSigned(b, w)
}

func reportSigned(b *testing.B, w *apptest.Ward) {
	ctx := context.Background()
	head, err := w.App.Store.AuditHead(ctx)
	if err != nil || head.Seq == 0 {
		return
	}
	size, _ := w.App.Store.AuditTreeSize(ctx)
	b.ReportMetric(float64(size)/float64(head.Seq), "tree/ledger")
}

// BenchmarkLedgerTreeExtend is the checkpointer's whole work per ledger
// record on each database: reading the new records, checking their
// hashes, hashing the tree and writing its nodes and size (ns/record).
// Every read or write request commits at least one ledger record, so this
// over BenchmarkReadPatient's ns/op bounds what checkpoints take from a
// CPU-bound server's throughput, without the noise of two whole-server
// runs.
func BenchmarkLedgerTreeExtend(b *testing.B) {
	for _, be := range apptest.Backends {
		// A checkpoint covers what the ledger gained in one interval:
		// 1000 records is 17 requests a second over the default minute,
		// 10000 is 170; the per-batch round trips weigh less the more.
		for _, batch := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/batch%d", be, batch), func(b *testing.B) { benchTreeExtend(b, be, batch) })
		}
	}
}

func benchTreeExtend(b *testing.B, be apptest.Backend, batch int) {
	w := apptest.Start(b, be, func(c *config.Config) { c.Ledger.CheckpointInterval = 0 })
	ctx := context.Background()
	rec := store.NewRecorder(w.App.Store)
	recs := 0
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < batch; i += 100 {
			var rs []*audit.Record
			for j := 0; j < 100; j++ {
				rs = append(rs, &audit.Record{Time: time.Now(), Tenant: "default", RequestID: "8c0e3c1e-3f7e-4d1a-9a55-5d8f2b1c7e10", Actor: "user-123", Role: "physician",
					Action: "read", ResourceType: "Patient", Entities: []string{fmt.Sprintf("Patient/%d/_history/1", i+j)}, Purpose: "TREAT"})
			}
			if err := rec.Record(ctx, rs...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		c0 := processCPU()
		if _, err := w.App.Proof.ExtendTree(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - c0
		recs += batch
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(recs), "ns/record")
	// This process's CPU (user and system) per record: on SQLite the
	// database runs in the process too, so it is all the work; on
	// PostgreSQL the server's share is not in it.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(recs), "cpu-ns/record")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
