package cidstore

import (
	"context"
	"math/rand/v2"
	"testing"
)

// appendCandidates returns the first warmMaxCandidates entries whose tag
// matches, in order: a naive scan is the model.
func TestAppendCandidates(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 2000 {
		n := r.IntN(300)
		b := &bucket{entries: make([]entry, n), tags: make([]byte, n)}
		for i := range b.tags {
			// A small alphabet, so that tags repeat and neighbour
			// values (tag±1, which SWAR tests confuse) are common.
			b.tags[i] = byte(r.IntN(6))
		}
		tag := byte(r.IntN(6))
		var want []*entry
		for i := range b.tags {
			if b.tags[i] == tag && len(want) < warmMaxCandidates {
				want = append(want, &b.entries[i])
			}
		}
		got := b.appendCandidates(nil, tag)
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d candidates, want %d", trial, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("trial %d: candidate %d is entry %p, want %p", trial, i, got[i], want[i])
			}
		}
	}
}

// warm runs on every batch of warmMin ops or more; it must leave the store
// exactly as applying the batch without it would (it only reads), also when
// the batch splits buckets and promotes keys to value sets between warming
// and applying.
func TestWarmedBatchesMatchUnwarmed(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 9))
	pairs := make([]Pair, 20000)
	for i := range pairs {
		pairs[i] = Pair{Key: E{High: 1 + uint64(r.IntN(3000))}, Value: E{High: 1, Low: uint64(r.IntN(8))}}
	}
	open := func() *Store {
		s, err := Open(newTestBackend(), Options{BucketCapacity: 32})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	warmed, single := open(), open()
	// Batches of several warm chunks, with remainders above and below
	// warmMin.
	sizes := []int{500, 3*warmChunk + warmMin - 1, 2*warmChunk + warmMin + 3, 1000}
	for i, n := 0, 0; i < len(pairs); n++ {
		j := min(len(pairs), i+sizes[n%len(sizes)])
		if err := warmed.InsertBatch(ctx, pairs[i:j]); err != nil {
			t.Fatal(err)
		}
		i = j
	}
	if warmed.warmth.sink == 0 {
		t.Fatal("warm never ran")
	}
	for _, p := range pairs {
		if err := single.Insert(ctx, p.Key, p.Value); err != nil {
			t.Fatal(err)
		}
	}
	if single.warmth.sink != 0 {
		t.Fatal("warm ran on single inserts")
	}
	for k := uint64(1); k <= 3000; k++ {
		key := E{High: k}
		a, errA := warmed.Get(ctx, key)
		b, errB := single.Get(ctx, key)
		if errA != nil || errB != nil || len(a) != len(b) {
			t.Fatalf("key %d: %v %v / %v %v", k, a, errA, b, errB)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("key %d: %v / %v", k, a, b)
			}
		}
	}
	if err := warmed.Validate(); err != nil {
		t.Fatal(err)
	}
}
