package cidstore

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
)

// w1Pairs builds a W1-shaped workload: keys with 1..5 values, shuffled.
func w1Pairs(keys int) []Pair {
	r := rand.New(rand.NewPCG(42, 42))
	var pairs []Pair
	for j := 0; j < keys; j++ {
		k := E{High: r.Uint64() | 1, Low: r.Uint64()}
		for n := 1 + r.IntN(5); n > 0; n-- {
			pairs = append(pairs, Pair{k, E{High: r.Uint64() | 1, Low: r.Uint64()}})
		}
	}
	r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	return pairs
}

func BenchmarkInsertBatch1000(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchInsert(b, Options{HashSeed: 1}) })
	b.Run("wal-always", func(b *testing.B) {
		benchInsert(b, Options{HashSeed: 1, WALPath: b.TempDir() + "/wal", WALSizeBytes: 256 << 20})
	})
}

func benchInsert(b *testing.B, opts Options) {
	pairs := w1Pairs(1_000_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.Remove(opts.WALPath)
		s, err := Open(newTestBackend(), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for off := 0; off < len(pairs); off += 1000 {
			if err := s.InsertBatch(context.Background(), pairs[off:min(off+1000, len(pairs))]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s.abandon()
	}
	b.ReportMetric(float64(len(pairs))*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func BenchmarkGomapInsert(b *testing.B) {
	pairs := w1Pairs(1_000_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := map[E][]E{}
	next:
		for _, p := range pairs {
			vs := m[p.Key]
			for _, v := range vs {
				if v == p.Value {
					continue next
				}
			}
			m[p.Key] = append(vs, p.Value)
		}
	}
	b.ReportMetric(float64(len(pairs))*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func BenchmarkGet(b *testing.B) {
	pairs := w1Pairs(1_000_000)
	s, err := Open(newTestBackend(), Options{HashSeed: 1})
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(pairs); off += 1000 {
		s.InsertBatch(context.Background(), pairs[off:min(off+1000, len(pairs))])
	}
	r := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Get(context.Background(), pairs[r.IntN(len(pairs))].Key); err != nil {
			b.Fatal(err)
		}
	}
}
