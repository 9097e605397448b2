package bench

import (
	"slices"
	"testing"
)

func TestSplitMix64(t *testing.T) {
	// Reference outputs of splitmix64 seeded with 0 (Vigna's splitmix64.c).
	r := NewSplitMix64(0)
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	for i, w := range want {
		if got := r.Next(); got != w {
			t.Fatalf("output %d = %#x, want %#x", i, got, w)
		}
	}
	if Mix(0) != want[0] {
		t.Errorf("Mix(0) = %#x, want %#x", Mix(0), want[0])
	}
}

func TestW1PairCount(t *testing.T) {
	tests := []struct {
		name  string
		keys  int
		pairs int
	}{
		{"one key", 1, 1 + int(Mix(0)%5)},
		{"1M keys (BENCH.md)", 1_000_000, 2_998_416},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.keys > 100_000 {
				t.Skip("large data set")
			}
			w, err := NewW1(42, tc.keys, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if w.P() != tc.pairs {
				t.Errorf("pairs = %d, want %d", w.P(), tc.pairs)
			}
			checkW1(t, w)
		})
	}
}

func TestW1Deterministic(t *testing.T) {
	a, err := NewW1(42, 5000, 100)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewW1(42, 5000, 100)
	c, _ := NewW1(43, 5000, 100)
	all := func(w *W1) []Pair { return w.AppendPairs(nil, 0, w.P()) }
	if !slices.Equal(all(a), all(b)) || !slices.Equal(a.Vals, b.Vals) {
		t.Error("same seed, different data")
	}
	if slices.Equal(all(a), all(c)) {
		t.Error("different seeds, same data")
	}
	// The pair count depends on K only (n_j = 1 + Mix(j) mod 5).
	if a.P() != c.P() {
		t.Errorf("pairs: seed 42 %d, seed 43 %d", a.P(), c.P())
	}
	la, lb := a.Lookups(), b.Lookups()
	for i := range 1000 {
		x, y := la.Next(), lb.Next()
		if x != y {
			t.Fatalf("lookup %d differs: %v vs %v", i, x, y)
		}
		if absent := i%11 == 10; absent != (x.J < 0) {
			t.Fatalf("lookup %d: J = %d", i, x.J)
		}
	}
	checkW1(t, a)
}

// TestW1Stream replays BENCH.md's recipe directly for a small K and
// compares it with NewW1.
func TestW1Stream(t *testing.T) {
	const k, seed = 300, 7
	r := NewSplitMix64(seed)
	var pairs []Pair
	for j := range k {
		key := r.E()
		for range 1 + Mix(uint64(j))%5 {
			pairs = append(pairs, Pair{Key: key, Value: r.E()})
		}
	}
	for i := len(pairs) - 1; i >= 1; i-- {
		s := r.Next() % uint64(i+1)
		pairs[i], pairs[s] = pairs[s], pairs[i]
	}
	w, err := NewW1(seed, k, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.AppendPairs(nil, 0, w.P()), pairs) {
		t.Fatal("shuffled pairs differ from the recipe")
	}
	ls := w.Lookups()
	for i := range 200 {
		got := ls.Next()
		var want E
		if i%11 == 10 {
			want = r.E()
		} else {
			want = w.Keys[r.Next()%k]
		}
		if got.Key != want {
			t.Fatalf("lookup %d: %v, want %v", i, got.Key, want)
		}
	}
}

func TestW1CheckPartial(t *testing.T) {
	w, err := NewW1(1, 50, 7)
	if err != nil {
		t.Fatal(err)
	}
	for j := range w.K() {
		vals := w.Values(j)
		wb := w.ValBatch[w.Off[j]:w.Off[j+1]]
		last := slices.Max(wb)
		if !w.CheckPartial(j, last+1, vals) {
			t.Fatalf("key %d: full answer rejected", j)
		}
		if w.CheckPartial(j, last+1, vals[1:]) {
			t.Fatalf("key %d: missing published value accepted", j)
		}
		if !w.CheckPartial(j, 0, nil) {
			t.Fatalf("key %d: empty answer before any batch rejected", j)
		}
		if w.CheckPartial(j, 0, append(slices.Clone(vals), e(^uint64(0), ^uint64(0)))) {
			t.Fatalf("key %d: foreign value accepted", j)
		}
		if len(vals) > 1 && w.CheckPartial(j, 0, []E{vals[1], vals[0]}) {
			t.Fatalf("key %d: unsorted answer accepted", j)
		}
	}
}

// checkW1 verifies the data set's invariants: no zero identifier, every
// pair listed under its key, values sorted and unique per key, batches
// consistent.
func checkW1(t *testing.T, w *W1) {
	t.Helper()
	var zero E
	for i := range w.P() {
		p := w.Pair(i)
		if p.Key == zero || p.Value == zero {
			t.Fatalf("pair %d has a zero identifier", i)
		}
		j := int(w.PairKey[i])
		if w.Keys[j] != p.Key {
			t.Fatalf("pair %d: PairKey %d holds another key", i, j)
		}
		vs := w.Values(j)
		k, ok := slices.BinarySearchFunc(vs, p.Value, cmpE)
		if !ok {
			t.Fatalf("pair %d: value not under key %d", i, j)
		}
		if got := w.ValBatch[int(w.Off[j])+k]; got != uint32(i/w.Batch) {
			t.Fatalf("pair %d: batch %d, want %d", i, got, i/w.Batch)
		}
	}
	for j := range w.K() {
		vs := w.Values(j)
		if n := len(vs); n < 1 || n > 5 {
			t.Fatalf("key %d has %d values", j, n)
		}
		for i := 1; i < len(vs); i++ {
			if !less(vs[i-1], vs[i]) {
				t.Fatalf("key %d: values not strictly ascending", j)
			}
		}
	}
}

// TestW1GatheredBatches checks that batches gathered from the pair indices
// (W1.Pairs nil, as past pairsInMemory) are the materialized ones.
func TestW1GatheredBatches(t *testing.T) {
	m, err := newW1(9, 2000, 64, pairsInMemory)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newW1(9, 2000, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pairs == nil || g.Pairs != nil {
		t.Fatalf("materialized %v, gathered %v", m.Pairs != nil, g.Pairs != nil)
	}
	var buf []Pair
	for b := range m.NumBatches() {
		want := m.BatchAt(b, nil)
		got := g.BatchAt(b, buf)
		if !slices.Equal(got, want) {
			t.Fatalf("batch %d differs", b)
		}
		buf = got[:0]
	}
	checkW1(t, g)
}
