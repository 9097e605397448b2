package bench

import (
	"fmt"
	"slices"
	"unsafe"
)

// W1 is the data set of workload W1 (and W2, which inserts the same
// batches), generated exactly as BENCH.md specifies:
//
//	one splitmix64 stream seeded with seed;
//	for j = 0..K-1: key_j = (next, next), each word redrawn while zero;
//	  n_j = 1 + Mix(j) mod 5; then n_j values (next, next), redrawn while zero;
//	Fisher-Yates over all pairs in generation order on the same stream
//	  (i = P-1 … 1, swap i with next() mod (i+1));
//	batches of Batch consecutive pairs of the shuffled order;
//	lookups continue the same stream (see Lookups).
//
// All fields are read-only after NewW1 and safe for concurrent readers.
type W1 struct {
	Seed  uint64
	Batch int

	// Keys holds key_j at index j.
	Keys []E
	// Off delimits the values of key j: Vals[Off[j]:Off[j+1]].
	Off []uint32
	// Vals holds every key's values, sorted ascending within each key: the
	// exact answer a GET must return.
	Vals []E
	// ValBatch[v] is the index of the batch that inserts Vals[v] (W2 uses it
	// to know which values a reader must already see).
	ValBatch []uint32
	// The shuffled insertion order: pair i is (Keys[PairKey[i]],
	// Vals[PairVal[i]]) (Pair, AppendPairs, BatchAt).
	PairKey []uint32
	PairVal []uint32
	// Pairs holds the same pairs, materialized, when they take at most
	// pairsInMemory bytes, else nil: BatchAt then gathers each batch from
	// the indices, so that 100M keys (300M pairs: 9.6 GB materialized) fit
	// in memory beside the store. Gathering a batch of 1 000 took 22 µs at
	// 1M keys and 27 µs at 20M (session 24, a throwaway timing loop):
	// ~4 % of a batch's time at 1M, where batches stay slices of Pairs,
	// and under 0.1 % of one at 100M keys (~50 ms a batch there).
	Pairs []Pair

	// rest is the stream state after the shuffle, where lookups continue.
	rest SplitMix64
}

// pairsInMemory bounds the materialized Pairs (W1.Pairs): 4 GiB, 134M pairs.
const pairsInMemory = 4 << 30

// NewW1 generates the W1 data set for keys keys, cut into batches of batch
// pairs.
func NewW1(seed uint64, keys, batch int) (*W1, error) {
	return newW1(seed, keys, batch, pairsInMemory)
}

// newW1 is NewW1 with the bound on materialized pairs.
func newW1(seed uint64, keys, batch, pairsMax int) (*W1, error) {
	if keys < 1 || keys > 1<<30 {
		return nil, fmt.Errorf("w1: keys %d not in [1, 2^30]", keys)
	}
	if batch < 1 {
		return nil, fmt.Errorf("w1: batch %d < 1", batch)
	}
	w := &W1{Seed: seed, Batch: batch}
	rng := NewSplitMix64(seed)

	// Expected size: n_j has mean 3; grow if a run is unlucky.
	w.Keys = make([]E, keys)
	w.Off = make([]uint32, keys+1)
	w.Vals = make([]E, 0, 3*keys+keys/64+8)
	valKey := make([]uint32, 0, cap(w.Vals))
	for j := range keys {
		w.Keys[j] = rng.E()
		n := 1 + Mix(uint64(j))%5
		for range n {
			w.Vals = append(w.Vals, rng.E())
			valKey = append(valKey, uint32(j))
		}
		w.Off[j+1] = uint32(len(w.Vals))
	}
	p := len(w.Vals)

	// Shuffle value indices: the same permutation as shuffling the pairs.
	perm := make([]uint32, p)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := p - 1; i >= 1; i-- {
		k := rng.Next() % uint64(i+1)
		perm[i], perm[k] = perm[k], perm[i]
	}
	w.rest = *rng

	w.PairKey = make([]uint32, p)
	w.ValBatch = make([]uint32, p)
	for i, v := range perm {
		w.PairKey[i] = valKey[v]
		w.ValBatch[v] = uint32(i / batch)
	}

	// Sort each key's values, carrying their batch index along; pos
	// (valKey's memory, no longer needed) maps a value's generation index
	// to its sorted one.
	pos := valKey
	type vb struct {
		v    E
		b    uint32
		orig uint32
	}
	var tmp []vb
	for j := range keys {
		lo, hi := w.Off[j], w.Off[j+1]
		tmp = tmp[:0]
		for v := lo; v < hi; v++ {
			tmp = append(tmp, vb{w.Vals[v], w.ValBatch[v], v})
		}
		slices.SortFunc(tmp, func(a, b vb) int { return cmpE(a.v, b.v) })
		for i, t := range tmp {
			w.Vals[int(lo)+i], w.ValBatch[int(lo)+i] = t.v, t.b
			pos[t.orig] = lo + uint32(i)
		}
	}
	for i, v := range perm {
		perm[i] = pos[v]
	}
	w.PairVal = perm
	if p*int(unsafe.Sizeof(Pair{})) <= pairsMax {
		w.Pairs = w.AppendPairs(make([]Pair, 0, p), 0, p)
	}
	return w, nil
}

// K returns the number of keys.
func (w *W1) K() int { return len(w.Keys) }

// P returns the number of pairs.
func (w *W1) P() int { return len(w.PairKey) }

// Pair returns pair i of the shuffled insertion order.
func (w *W1) Pair(i int) Pair {
	return Pair{Key: w.Keys[w.PairKey[i]], Value: w.Vals[w.PairVal[i]]}
}

// AppendPairs appends pairs lo..hi-1 of the shuffled order to dst.
func (w *W1) AppendPairs(dst []Pair, lo, hi int) []Pair {
	for i := lo; i < hi; i++ {
		dst = append(dst, w.Pair(i))
	}
	return dst
}

// NumBatches returns the number of insert batches.
func (w *W1) NumBatches() int { return (w.P() + w.Batch - 1) / w.Batch }

// BatchAt returns batch b of the shuffled pairs (the last may be short):
// a slice of Pairs, or gathered into dst's memory when Pairs is nil. Either
// way, valid until dst is reused; callers must not modify it.
func (w *W1) BatchAt(b int, dst []Pair) []Pair {
	lo := b * w.Batch
	return w.PairsIn(lo, min(lo+w.Batch, w.P()), dst)
}

// PairsIn returns pairs lo..hi-1 of the shuffled order as BatchAt returns
// a batch: a slice of Pairs, or gathered into dst's memory.
func (w *W1) PairsIn(lo, hi int, dst []Pair) []Pair {
	if w.Pairs != nil {
		return w.Pairs[lo:hi]
	}
	return w.AppendPairs(dst[:0], lo, hi)
}

// Values returns the sorted values of key j.
func (w *W1) Values(j int) []E { return w.Vals[w.Off[j]:w.Off[j+1]] }

// Lookup is one GET of W1: key Key, which is key index J, or an absent key
// when J < 0.
type Lookup struct {
	Key E
	J   int
}

// Lookups returns the W1 lookup stream, which continues the generator's
// stream after the shuffle. Each call starts it afresh.
func (w *W1) Lookups() *LookupStream {
	return &LookupStream{w: w, rng: w.rest}
}

// LookupStream yields the W1 GETs: operation i looks up a fresh random
// (absent) key when i mod 11 = 10, else key j = next() mod K.
type LookupStream struct {
	w   *W1
	rng SplitMix64
	i   uint64
}

// Next returns the next lookup.
func (s *LookupStream) Next() Lookup {
	i := s.i
	s.i++
	if i%11 == 10 {
		return Lookup{Key: s.rng.E(), J: -1}
	}
	j := int(s.rng.Next() % uint64(len(s.w.Keys)))
	return Lookup{Key: s.w.Keys[j], J: j}
}

// Check compares a GET result with the exact answer: the sorted values of
// key j, or nothing for an absent key (j < 0).
func (w *W1) Check(j int, got []E) bool {
	if j < 0 {
		return len(got) == 0
	}
	return slices.Equal(got, w.Values(j))
}

// CheckPartial checks a GET result taken while batches are being inserted:
// got must be strictly ascending, hold only values of key j, and hold every
// value of key j whose batch index is below done (batches published before
// the GET started).
func (w *W1) CheckPartial(j int, done uint32, got []E) bool {
	want := w.Values(j)
	wb := w.ValBatch[w.Off[j]:w.Off[j+1]]
	g := 0
	for i, v := range want {
		if g < len(got) && got[g] == v {
			g++
			continue
		}
		if g < len(got) && less(got[g], v) {
			return false // a value that is not key j's, or out of order
		}
		if wb[i] < done {
			return false // a published value is missing
		}
	}
	return g == len(got)
}
