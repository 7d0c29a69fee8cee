package app_test

import (
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/loadgen"
)

// BenchmarkSearch runs each kind of the issue #4 search benchmark through
// the full stack (HTTP, token, restriction, SQL, opening, ledger record
// durable before the response) at 8 concurrent clients, on a small data
// set (1,000 Patients, 10,000 Observations) that fits a go test run. The
// 100,000 / 1,000,000 numbers come from `ward bench` (docs/benchmarks.md);
// this one is for seeing what a change does to the hot path.
func BenchmarkSearch(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) {
			w := apptest.Start(b, be, benchLimits)
			dir := loadDataset(b, w, 1000, 10000)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			for _, kind := range loadgen.QueryKinds {
				paths, err := loadgen.ReadPaths(filepath.Join(dir, "queries", kind+".txt"))
				if err != nil {
					b.Fatal(err)
				}
				b.Run(kind, func(b *testing.B) {
					var n atomic.Int64
					b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							req, _ := http.NewRequest("GET", w.URL+"/"+paths[n.Add(1)%int64(len(paths))], nil)
							req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RoleAdmin])
							do(b, c, req, 200)
						}
					})
				})
			}
		})
	}
}
