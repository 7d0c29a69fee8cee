package storetest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// BenchmarkReads times the store's reads of sealed bodies, for the read
// cost of storing each body once (issue #24, migration 00058): a current
// version by id, and a search page of 20 bodies in rid order and sorted by
// last_updated, over 5,000 resources with 2,300-byte bodies (a sealed
// realistic Patient).
func BenchmarkReads(b *testing.B, st store.Store) {
	ctx := context.Background()
	const n = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 2300)
	for start := 0; start < n; start += 500 {
		var ws []store.Write
		for i := start; i < start+500; i++ {
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
			// Not an envelope's version byte: the writer reads the key id
			// of anything that looks like one.
			body[0] = '{'
			ws = append(ws, store.Write{Tenant: "rb", Type: "Patient", ID: "p" + strconv.Itoa(i), Version: 1,
				LastUpdated: t0.Add(time.Duration(rng.IntN(1e6)) * time.Second), Body: append([]byte(nil), body...)})
		}
		if err := st.Commit(ctx, &store.Unit{Writes: ws}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("current", func(b *testing.B) {
		i := 0
		for b.Loop() {
			v, err := st.Current(ctx, "rb", "Patient", "p"+strconv.Itoa(i%n))
			if err != nil || len(v.Body) != len(body) {
				b.Fatal(err)
			}
			i += 7
		}
	})
	page := func(b *testing.B, order []store.Order) {
		for b.Loop() {
			hits, err := st.Search(ctx, store.SearchQuery{Tenant: "rb", Types: []string{"Patient"}, Order: order, Limit: 20})
			if err != nil || len(hits) != 20 || len(hits[0].Body) != len(body) {
				b.Fatal(err)
			}
		}
	}
	b.Run("page", func(b *testing.B) { page(b, nil) })
	b.Run("page-sorted", func(b *testing.B) { page(b, []store.Order{{Expr: "r.last_updated", Desc: true}}) })
}
