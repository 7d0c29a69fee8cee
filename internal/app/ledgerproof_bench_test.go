package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/config"
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
