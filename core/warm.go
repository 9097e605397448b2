package cidstore

import (
	"encoding/binary"
	"math/bits"
)

// Warming a batch before it is applied.
//
// Applying an insert reads, one after another, the key's bucket, its tags,
// its entry and (for a spilled key) the set table slot and the value set:
// each load depends on the one before, and past a few hundred thousand
// keys most of them miss the CPU caches. On the 2-core VM of
// docs/BENCHMARKS.md a dependent miss costs ~360 ns while independent
// misses overlap twenty-fold, so the apply loop waits on memory one miss at
// a time. warm walks the batch in stages instead, each stage a loop over
// all ops whose loads do not depend on each other (only on what the stage
// before brought into the cache), so that the CPU keeps many misses in
// flight; the apply loop that follows then finds its lines cached.
//
// warm only reads, and what it finds is used only as addresses to touch,
// never as an answer: applying an op may move entries (appends, splits,
// tail merges), which makes a later op's warmed line useless, not wrong.
// It runs under the writer lock, which every change to bucket contents,
// value sets and the set table's slots also holds or is ordered with (the
// set table's own lock for the slots, read here through atomics).

// warmMin is the smallest batch worth warming: below it the apply loop has
// too few independent misses to overlap.
const warmMin = 16

// warmChunk is how many ops are warmed, then applied, at a time. What warm
// touches must still be cached when the apply loop comes to it: for one op
// a bucket header, a few tag lines, an entry or two, a set slot and a set,
// on as many distinct pages. Measured on the 2-core VM of
// docs/BENCHMARKS.md (64 KiB L1d and 512 KiB L2 per core), W1 at 1M keys
// in memory without sync: chunks of 32 to 128 ops ingest 1.15–1.3× faster
// than warming the whole 1 000-op batch first, 256 barely faster.
const warmChunk = 64

// warmMaxCandidates bounds the entries touched per op: a tag match beyond
// the second is rare (8-bit tags, at most a few hundred entries).
const warmMaxCandidates = 2

const low7 = 0x7f7f7f7f7f7f7f7f

// warmState is the writer's scratch for warm (writer lock held).
type warmState struct {
	buckets []*bucket
	tags    []byte
	entries []*entry
	slots   []*setSlot
	sets    []*valueSet
	sink    uint64 // keeps the touching loads from being optimised away
}

func (s *Store) warm(ops []walOp) {
	if len(ops) < warmMin {
		return
	}
	w := &s.warmth
	var sink uint64

	// Stage 1: each op's bucket; touch its header (tags and entries slice
	// headers, the loaded flag).
	w.buckets, w.tags = w.buckets[:0], w.tags[:0]
	for i := range ops {
		h := s.hash(ops[i].key)
		b := s.bucketFor(h)
		w.buckets = append(w.buckets, b)
		w.tags = append(w.tags, tagOf(h))
		sink += uint64(len(b.tags))
	}
	// Stage 2: touch each bucket's tags, a line at a time.
	for _, b := range w.buckets {
		for i := 0; i < len(b.tags); i += 64 {
			sink += uint64(b.tags[i])
		}
	}
	// Stage 3: the entries whose tags match (the key's, or a rare false
	// positive): found from cached tags, touched in the next loop.
	w.entries = w.entries[:0]
	for i, b := range w.buckets {
		w.entries = b.appendCandidates(w.entries, w.tags[i])
	}
	ts := s.sets.tab.Load()
	w.slots = w.slots[:0]
	for _, e := range w.entries {
		sink += e.key.Low ^ e.s1.High // an entry may straddle two lines
		if ts != nil && e.spilled() {
			w.slots = append(w.slots, &ts.slot[ts.home(e.spillID())])
		}
	}
	// Stage 4: the set table slots of spilled entries, then their sets.
	w.sets = w.sets[:0]
	for _, sl := range w.slots {
		if vs := sl.vs.Load(); vs != nil {
			w.sets = append(w.sets, vs)
		}
	}
	for _, vs := range w.sets {
		sink += vs.id + uint64(len(vs.vals))
	}
	w.sink = sink
}

// appendCandidates appends to dst the entries of b whose tag is tag, at
// most warmMaxCandidates of them.
func (b *bucket) appendCandidates(dst []*entry, tag byte) []*entry {
	n, found := len(b.tags), 0
	pattern := uint64(tag) * lsb8
	i := 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(b.tags[i:]) ^ pattern
		// High bit set in exactly the bytes of w that are zero (find's
		// cheaper test has false positives; here they would cost a
		// candidate slot).
		for m := ^((w & low7) + low7 | w | low7); m != 0; m &= m - 1 {
			dst = append(dst, &b.entries[i+bits.TrailingZeros64(m)>>3])
			if found++; found == warmMaxCandidates {
				return dst
			}
		}
	}
	for ; i < n; i++ {
		if b.tags[i] == tag {
			dst = append(dst, &b.entries[i])
			if found++; found == warmMaxCandidates {
				return dst
			}
		}
	}
	return dst
}
