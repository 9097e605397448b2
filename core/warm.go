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

// warmPromoteDiv sets how many new set ids warm prepares slots for: one
// per warmPromoteDiv ops.
const warmPromoteDiv = 4

const low7 = 0x7f7f7f7f7f7f7f7f

// warmState is the writer's scratch for warm (writer lock held).
type warmState struct {
	hints   []warmHint // one per op
	tags    []byte
	entries []*entry
	slots   []*setSlot
	sets    []*valueSet
	sink    uint64 // keeps the touching loads from being optimised away
}

// warmHint is what warm saw of an op's key: its bucket, the bucket's adds
// then, and the indices of the first two entries whose tag matched (-1 for
// each missing). The apply loop takes an index only after comparing the
// entry's key with the op's (applying may have moved entries since), and
// takes "no entry had the tag" as "absent" only while the bucket and its
// adds are the same.
type warmHint struct {
	b      *bucket
	adds   uint32
	c0, c1 int32
}

// absent reports whether the hint shows that the key is not in b.
func (h *warmHint) absent(b *bucket) bool {
	return h.c0 < 0 && h.b == b && h.adds == b.adds
}

// warm returns a hint per op, or nil when it did not run.
func (s *Store) warm(ops []walOp) []warmHint {
	if len(ops) < warmMin {
		return nil
	}
	w := &s.warmth
	var sink uint64

	// Stage 1: each op's bucket; touch the three lines of its header that
	// an insert uses (the lock and flags, the slice headers, the
	// scheduler's counters: bucket.go).
	w.hints, w.tags = w.hints[:0], w.tags[:0]
	for i := range ops {
		h := s.hash(ops[i].key)
		b := s.bucketFor(h)
		w.hints = append(w.hints, warmHint{b: b})
		w.tags = append(w.tags, tagOf(h))
		sink += uint64(b.id) + uint64(len(b.tags)) + b.maint.gen
	}
	// Stage 2: touch each bucket's tags, a line at a time.
	for i := range w.hints {
		b := w.hints[i].b
		for j := 0; j < len(b.tags); j += 64 {
			sink += uint64(b.tags[j])
		}
	}
	// Stage 3: the first two entries whose tags match (the key's, or a
	// false positive: with 8-bit tags, one in two ops at 180 entries):
	// found from cached tags, touched in the next loop.
	w.entries = w.entries[:0]
	for i := range w.hints {
		hint := &w.hints[i]
		b := hint.b
		c0, c1 := b.candidates(w.tags[i])
		hint.adds, hint.c0, hint.c1 = b.adds, c0, c1
		if c0 >= 0 {
			w.entries = append(w.entries, &b.entries[c0])
		}
		if c1 >= 0 {
			w.entries = append(w.entries, &b.entries[c1])
		}
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
	// Stage 5: the sets' values (the first and last lines, for a small
	// set all of them), and the set table slots where the sets that the
	// chunk's promotions create will go: new ids are sequential, their
	// home slots anywhere (W1 promotes one op in five).
	for _, vs := range w.sets {
		if n := len(vs.vals); n > 0 {
			sink += vs.vals[0].Low ^ vs.vals[n-1].Low
		}
	}
	if ts != nil {
		for id := s.nextVSID; id < s.nextVSID+uint64(len(ops)/warmPromoteDiv); id++ {
			sink += ts.slot[ts.home(id)].id.Load()
		}
	}
	w.sink = sink
	return w.hints
}

// candidates returns the indices of the first two entries of b whose tag
// is tag, -1 for each that is missing.
func (b *bucket) candidates(tag byte) (c0, c1 int32) {
	c0, c1 = -1, -1
	n := len(b.tags)
	pattern := uint64(tag) * lsb8
	i := 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(b.tags[i:]) ^ pattern
		// High bit set in exactly the bytes of w that are zero (find's
		// cheaper test has false positives; here they would cost a
		// candidate).
		for m := ^((w & low7) + low7 | w | low7); m != 0; m &= m - 1 {
			j := int32(i + bits.TrailingZeros64(m)>>3)
			if c0 < 0 {
				c0 = j
				continue
			}
			return c0, j
		}
	}
	for ; i < n; i++ {
		if b.tags[i] == tag {
			if c0 < 0 {
				c0 = int32(i)
				continue
			}
			return c0, int32(i)
		}
	}
	return c0, c1
}
