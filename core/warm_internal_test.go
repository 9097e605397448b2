package cidstore

import (
	"context"
	"math/rand/v2"
	"testing"
)

// candidates returns the indices of the first two entries whose tag
// matches, in order, -1 for each that is missing: a naive scan is the
// model.
func TestCandidates(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 2000 {
		n := r.IntN(300)
		b := &bucket{entries: make([]entry, n), tags: make([]byte, n)}
		for i := range b.tags {
			// A small alphabet, so that tags repeat and neighbour
			// values (tag±1, which SWAR tests confuse) are common.
			b.tags[i] = byte(r.IntN(6))
		}
		if r.IntN(4) == 0 { // and rare tags, so that some have one match
			for i := range b.tags {
				b.tags[i] = byte(6 + r.IntN(200))
			}
		}
		tag := byte(r.IntN(6))
		want := []int32{-1, -1}
		for i, k := range b.tags {
			if k == tag {
				if want[0] < 0 {
					want[0] = int32(i)
				} else if want[1] < 0 {
					want[1] = int32(i)
				}
			}
		}
		c0, c1 := b.candidates(tag)
		if c0 != want[0] || c1 != want[1] {
			t.Fatalf("trial %d (%d entries): candidates %d, %d, want %d, %d", trial, n, c0, c1, want[0], want[1])
		}
	}
}

// findHinted finds what find finds whatever the hints: right, wrong, out
// of range or missing.
func TestFindHinted(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 11))
	for trial := range 2000 {
		n := r.IntN(80)
		b := &bucket{entries: make([]entry, n), tags: make([]byte, n)}
		for i := range b.entries {
			b.entries[i].key = E{High: uint64(i + 1), Low: uint64(trial)}
			b.tags[i] = byte(r.IntN(4))
		}
		k := E{High: uint64(r.IntN(n+10) + 1), Low: uint64(trial)}
		tag := byte(r.IntN(4))
		if i := int(k.High) - 1; i < n {
			tag = b.tags[i]
		}
		hint := func() int32 { return int32(r.IntN(n+20)) - 10 }
		c0, c1 := hint(), hint()
		if got, want := b.findHinted(k, tag, c0, c1), b.find(k, tag); got != want {
			t.Fatalf("trial %d: findHinted(%v, hints %d, %d) = %d, find = %d", trial, k, c0, c1, got, want)
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
