package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

// BenchmarkColdGet measures the GET of a key whose bucket (and value set)
// must come from the file, as cidbench's cold lookups after a reopen do:
// a W1-shaped h5store store of 1M keys (~3M pairs), built once (~10 s),
// then reopened with a 2 GiB budget every coldPerOpen lookups of random
// keys (reopen not timed). With ~5 000 buckets most of a reopen's first
// 2 000 lookups load a bucket; bucket-loads/op says how many did, p50-µs
// and p99-µs are the quantiles of the lookups' latencies.
//
//	go test -run '^$' -bench ColdGet -benchtime 100000x ./tests
func BenchmarkColdGet(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "s.h5")
	r := rand.New(rand.NewPCG(42, 42))
	keys, pairs := w1Shaped(r, 1_000_000)
	ctx := context.Background()
	open := func() *cidstore.Store {
		be, err := h5store.Open(path, h5store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := cidstore.Open(be, cidstore.Options{
			WALPath:    filepath.Join(dir, "wal"),
			CacheBytes: 2 << 30,
			HashSeed:   1,
		})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	st := open()
	for off := 0; off < len(pairs); off += 1000 {
		if err := st.InsertBatch(ctx, pairs[off:min(off+1000, len(pairs))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("get", func(b *testing.B) { coldGets(b, open, keys, r) })
}

func coldGets(b *testing.B, open func() *cidstore.Store, keys []cidstore.E, r *rand.Rand) {
	const coldPerOpen = 2000
	ctx := context.Background()
	var loads uint64
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; {
		b.StopTimer()
		st := open()
		b.StartTimer()
		for n := 0; n < coldPerOpen && i < b.N; n, i = n+1, i+1 {
			k := keys[r.IntN(len(keys))]
			t0 := time.Now()
			vals, err := st.Get(ctx, k)
			lat = append(lat, time.Since(t0))
			if err != nil || len(vals) == 0 {
				b.Fatalf("get %v: %d values, %v", k, len(vals), err)
			}
		}
		b.StopTimer()
		loads += st.Stats().BucketLoads
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(loads)/float64(b.N), "bucket-loads/op")
	slices.Sort(lat)
	for _, q := range []float64{0.5, 0.99} {
		b.ReportMetric(float64(lat[int(q*float64(len(lat)-1))].Nanoseconds())/1000, fmt.Sprintf("p%g-µs", q*100))
	}
}
