package tests

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// BenchmarkReopenDurable measures opening a durable memstore store of
// 300k keys (about 900k pairs) after a clean close.
func BenchmarkReopenDurable(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "s.snapshot")
	be, err := memstore.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	st, err := cidstore.Open(be, cidstore.Options{HashSeed: 1})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	batch := make([]cidstore.Pair, 0, 1000)
	for k := 0; k < 300_000; k++ {
		key := randE(r)
		for n := 1 + r.IntN(5); n > 0; n-- {
			batch = append(batch, cidstore.Pair{Key: key, Value: randE(r)})
			if len(batch) == cap(batch) {
				if err := st.InsertBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		be, err := memstore.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		st, err := cidstore.Open(be, cidstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
}
