package tests

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// Zero means the defaults; set by hand (e.g. 512 MiB and -1) to measure
// the WAL path without checkpoints.
var (
	walSize   int64
	ckptEvery time.Duration
)

// w1Shaped returns n random keys and their pairs, shaped like W1's: 1 to 5
// random values per key (3 on average), all pairs shuffled.
func w1Shaped(r *rand.Rand, n int) ([]cidstore.E, []cidstore.Pair) {
	keys := make([]cidstore.E, n)
	var pairs []cidstore.Pair
	for j := range keys {
		keys[j] = randE(r)
		for v := 1 + r.IntN(5); v > 0; v-- {
			pairs = append(pairs, cidstore.Pair{Key: keys[j], Value: randE(r)})
		}
	}
	r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	return keys, pairs
}

// BenchmarkDurableInsert inserts a W1-shaped workload (1M keys, ~3M pairs,
// batches of 1000, sync always) into each durable backend.
func BenchmarkDurableInsert(b *testing.B) {
	_, pairs := w1Shaped(rand.New(rand.NewPCG(42, 42)), 1_000_000)
	for _, bk := range []struct {
		name string
		open func(dir string) (port.Backend, error)
	}{
		{"memstore", func(dir string) (port.Backend, error) { return memstore.Open(filepath.Join(dir, "s.snapshot")) }},
		{"h5store", func(dir string) (port.Backend, error) {
			return h5store.Open(filepath.Join(dir, "s.h5"), h5store.Options{})
		}},
	} {
		b.Run(bk.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				be, err := bk.open(dir)
				if err != nil {
					b.Fatal(err)
				}
				st, err := cidstore.Open(be, cidstore.Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: walSize, CheckpointInterval: ckptEvery})
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(pairs); off += 1000 {
					if err := st.InsertBatch(context.Background(), pairs[off:min(off+1000, len(pairs))]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				stats := st.Stats()
				b.ReportMetric(float64(stats.Checkpoints), "checkpoints")
				b.ReportMetric(stats.LastCheckpointDuration.Seconds()*1000, "last-ckpt-ms")
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(len(pairs))*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
