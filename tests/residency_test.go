package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
)

// TestReadersWithEviction runs readers against a writer, frequent
// checkpoints, the maintenance scheduler and the evictor of a tiny cache,
// on every persistent backend: lookups keep reading buckets back from the
// backend while it commits. Every read must return what was written: the
// base values of a key, plus any of the values the writer adds (never a
// value that was not inserted, never a base value missing).
func TestReadersWithEviction(t *testing.T) {
	for _, a := range adapters {
		if !a.persistent {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			opts := cidstore.Options{
				WALPath:             filepath.Join(dir, "wal"),
				Sync:                cidstore.SyncNone,
				CheckpointInterval:  20 * time.Millisecond,
				BucketCapacity:      32,
				HashSeed:            5,
				CacheBytes:          32 << 10,
				MaintenanceInterval: 2 * time.Millisecond,
			}
			st, err := cidstore.Open(a.open(t, dir), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			const keys = 3000
			key := func(i int) cidstore.E { return cidstore.E{High: uint64(i) * 0x9E3779B97F4A7C15, Low: uint64(i) + 1} }
			base := func(i int) []cidstore.E { // 1..4 values: some keys spill
				out := make([]cidstore.E, 1+i%4)
				for j := range out {
					out[j] = cidstore.E{High: uint64(i), Low: uint64(j + 1)}
				}
				return out
			}
			var batch []cidstore.Pair
			for i := range keys {
				for _, v := range base(i) {
					batch = append(batch, cidstore.Pair{Key: key(i), Value: v})
				}
			}
			if err := st.InsertBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := st.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			errc := make(chan error, 4)
			var wg sync.WaitGroup
			for r := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(r), 7))
					for {
						select {
						case <-stop:
							return
						default:
						}
						i := rng.IntN(keys)
						got, err := st.Get(ctx, key(i))
						if err != nil {
							errc <- err
							return
						}
						// Added values have Low >= 1<<32 and High = i.
						var old []cidstore.E
						for _, v := range got {
							if v.Low < 1<<32 {
								old = append(old, v)
							} else if v.High != uint64(i) {
								errc <- fmt.Errorf("key %d: value %v was never inserted", i, v)
								return
							}
						}
						if want := base(i); !slices.Equal(old, want) {
							errc <- fmt.Errorf("key %d: base values %v, want %v", i, old, want)
							return
						}
					}
				}()
			}
			deadline := time.Now().Add(2 * time.Second)
			for n := 0; time.Now().Before(deadline); n++ {
				i := n * 7 % keys
				if err := st.Insert(ctx, key(i), cidstore.E{High: uint64(i), Low: 1<<32 + uint64(n)}); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			select {
			case err := <-errc:
				t.Fatal(err)
			default:
			}
			s := st.Stats()
			if s.Evictions == 0 || s.BucketLoads == 0 {
				t.Fatalf("%d evictions and %d loads: the cache never turned over (%+v)", s.Evictions, s.BucketLoads, s)
			}
			if err := st.Validate(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d evictions, %d bucket loads, %d value-set loads, %d checkpoints", s.Evictions, s.BucketLoads, s.ValueSetLoads, s.Checkpoints)
		})
	}
}
