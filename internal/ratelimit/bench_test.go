package ratelimit_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/ratelimit/redistest"
)

// The cost one API request pays for its limit check, for each place the
// state can be kept. The limit is high enough that every request is
// allowed (the common case: refused requests are cheaper, they stop at the
// local check). Keys cycle over 1,024 subjects.

var benchLimit = ratelimit.Limit{Rate: ratelimit.MaxRate, Burst: 1_000_000}

var benchKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = "default/" + strconv.Itoa(i)
	}
	return k
}()

func benchAllow(b *testing.B, l ratelimit.Limiter, parallel bool) {
	ctx := context.Background()
	b.ReportAllocs()
	if !parallel {
		for i := 0; b.Loop(); i++ {
			if ok, _, err := l.Allow(ctx, benchKeys[i%len(benchKeys)]); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if ok, _, err := l.Allow(ctx, benchKeys[i%len(benchKeys)]); !ok || err != nil {
				b.Fatal(ok, err)
			}
			i++
		}
	})
}

func BenchmarkLocal(b *testing.B) {
	l, _ := ratelimit.NewLocal(benchLimit, ratelimit.LocalOptions{})
	b.Run("sequential", func(b *testing.B) { benchAllow(b, l, false) })
	b.Run("parallel", func(b *testing.B) { benchAllow(b, l, true) })
}

func BenchmarkRedis(b *testing.B) {
	url := redistest.URL(b)
	l, _ := ratelimit.NewRedis(redistest.Client(b, url), benchLimit, ratelimit.RedisOptions{Prefix: redistest.Prefix(b, url)})
	b.Run("sequential", func(b *testing.B) { benchAllow(b, l, false) })
	b.Run("parallel", func(b *testing.B) { benchAllow(b, l, true) })
}

// Shared is what a node with WARD_REDIS_URL runs: the local pre-check,
// then the round trip.
func BenchmarkShared(b *testing.B) {
	url := redistest.URL(b)
	local, _ := ratelimit.NewLocal(benchLimit, ratelimit.LocalOptions{})
	remote, _ := ratelimit.NewRedis(redistest.Client(b, url), benchLimit, ratelimit.RedisOptions{Prefix: redistest.Prefix(b, url)})
	l := ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "bench"})
	b.Run("sequential", func(b *testing.B) { benchAllow(b, l, false) })
	b.Run("parallel", func(b *testing.B) { benchAllow(b, l, true) })
}

// SharedLease is Shared taking 20 requests per round trip, as Ward's API
// limit does by default (a twentieth of its burst of 400); a lease may be
// spent for a second. "busy-subject" is one subject per client goroutine
// sending back to back; "1024-subjects" cycles over many subjects, each
// coming back within the second its lease lasts.
func BenchmarkSharedLease(b *testing.B) {
	url := redistest.URL(b)
	local, _ := ratelimit.NewLocal(benchLimit, ratelimit.LocalOptions{})
	remote, _ := ratelimit.NewRedis(redistest.Client(b, url), benchLimit, ratelimit.RedisOptions{Prefix: redistest.Prefix(b, url)})
	l := ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "bench", Lease: 20})
	b.Run("busy-subject/sequential", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if ok, _, err := l.Allow(ctx, "default/busy"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("busy-subject/parallel", func(b *testing.B) {
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			key := "default/busy" + strconv.FormatInt(n.Add(1), 10)
			for pb.Next() {
				if ok, _, err := l.Allow(context.Background(), key); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	})
	b.Run("1024-subjects/sequential", func(b *testing.B) { benchAllow(b, l, false) })
}
