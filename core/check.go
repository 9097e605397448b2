package cidstore

import (
	"errors"
	"fmt"
	"slices"
)

// maxProblems caps how many problems Validate reports.
const maxProblems = 20

// Validate walks the whole structure and reports every broken invariant it
// finds (up to a cap), each wrapping ErrCorrupt:
//   - the directory has 1<<depth slots; every bucket it points to is live,
//     at most as deep, and owns exactly its aligned run of slots;
//   - every key sits in the bucket its hash selects, once;
//   - sorted regions are sorted, entries are well formed and survive an
//     encode/decode round trip with a valid checksum;
//   - every spill pointer names a value set of its bucket and every value
//     set is referenced once; value sets have sorted prefixes, no duplicate
//     or zero values, tombstones that are members, at least one live value;
//   - the key, value, spilled-key and bucket counters match a recount;
//   - with every set loaded, no bucket counts a set as not resident
//     (bucket.cold, which lets the writer skip looking for sets to load).
//
// Validate takes the writer lock; readers keep running.
func (s *Store) Validate() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.loadAll(); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < maxProblems {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...))
		}
	}
	d := s.dir.Load()
	if len(d.slots) != 1<<d.depth {
		bad("directory depth %d has %d slots", d.depth, len(d.slots))
		return errors.Join(errs...)
	}
	seen := map[*bucket]bool{}
	var keys, values, spilled uint64
	var depthCount [65]int
	for i := 0; i < len(d.slots); {
		b := d.slots[i].Load()
		if b == nil || b.retired {
			bad("directory slot %d points to no live bucket", i)
			i++
			continue
		}
		if seen[b] {
			bad("bucket %d owns non-contiguous slots (again at %d)", b.id, i)
			i++
			continue
		}
		seen[b] = true
		if b.depth > d.depth {
			bad("bucket %d: local depth %d > global depth %d", b.id, b.depth, d.depth)
			i++
			continue
		}
		lo, hi := d.slotRange(b.depth, b.prefix)
		if uint64(i) != lo {
			bad("bucket %d (depth %d, prefix %x) starts at slot %d, want %d", b.id, b.depth, b.prefix, lo, i)
		}
		for j := lo; j < hi && j < uint64(len(d.slots)); j++ {
			if d.slots[j].Load() != b {
				bad("bucket %d: slot %d points elsewhere", b.id, j)
			}
		}
		if int(b.id) >= len(s.buckets) || s.buckets[b.id] != b {
			bad("bucket %d is not registered under its id", b.id)
		}
		depthCount[b.depth]++
		if c := b.cold.Load(); c != 0 { // loadAll made every set resident
			bad("bucket %d counts %d value sets not resident", b.id, c)
		}
		k, v, sp := s.validateBucket(b, bad)
		keys += k
		values += v
		spilled += sp
		i = int(hi)
	}
	live := 0
	for id, b := range s.buckets {
		if b == nil {
			continue
		}
		live++
		if !seen[b] {
			bad("bucket %d is registered but not in the directory", id)
		}
	}
	if depthCount != s.depthCount {
		bad("per-depth bucket counts %v, recount %v", s.depthCount, depthCount)
	}
	if n := s.stats.buckets.Load(); n != int64(live) {
		bad("bucket counter %d, recount %d", n, live)
	}
	if s.nkeys != keys || s.stats.keys.Load() != keys {
		bad("key counters %d/%d, recount %d", s.nkeys, s.stats.keys.Load(), keys)
	}
	if s.nvalues != values || s.stats.values.Load() != values {
		bad("value counters %d/%d, recount %d", s.nvalues, s.stats.values.Load(), values)
	}
	if s.nspilled != spilled || s.stats.spilled.Load() != spilled {
		bad("spilled-key counters %d/%d, recount %d", s.nspilled, s.stats.spilled.Load(), spilled)
	}
	resident := s.sets.live()
	if resident != int(spilled) {
		bad("set table holds %d value sets, %d keys are spilled", resident, spilled)
	}
	n := 0
	s.sets.each(func(vs *valueSet) {
		n++
		if vs.freed {
			bad("set table holds freed value set %d", vs.id)
		}
	})
	if n != resident {
		bad("set table walk found %d value sets, count %d", n, resident)
	}
	return errors.Join(errs...)
}

func (s *Store) validateBucket(b *bucket, bad func(string, ...any)) (keys, values, spilled uint64) {
	if b.sorted > len(b.entries) {
		bad("bucket %d: sorted count %d > %d entries", b.id, b.sorted, len(b.entries))
		return
	}
	for i := 1; i < b.sorted; i++ {
		if !b.entries[i-1].key.Less(b.entries[i].key) {
			bad("bucket %d: sorted region out of order at %d", b.id, i)
		}
	}
	if len(b.tags) != len(b.entries) {
		bad("bucket %d: %d tags for %d entries", b.id, len(b.tags), len(b.entries))
		return
	}
	// A checkpoint's stream may be capturing b (it resets since and
	// whole under b.mu; the writer, stopped here, changes them only after
	// a capture).
	b.mu.RLock()
	if b.whole && len(b.since) > 0 {
		bad("bucket %d: %d changed keys tracked for a bucket written whole next", b.id, len(b.since))
	}
	if !s.deltas && len(b.since) > 0 {
		bad("bucket %d: %d changed keys tracked for a backend without deltas", b.id, len(b.since))
	}
	for _, k := range b.since {
		if topBits(s.hash(k), b.depth) != b.prefix {
			bad("bucket %d: changed key %v hashes outside the bucket", b.id, k)
		}
	}
	b.mu.RUnlock()
	keysSeen := make(map[E]struct{}, len(b.entries))
	var buf [64]byte
	for i := range b.entries {
		e := &b.entries[i]
		if _, dup := keysSeen[e.key]; dup {
			bad("bucket %d: key %v appears twice", b.id, e.key)
		}
		keysSeen[e.key] = struct{}{}
		h := s.hash(e.key)
		if topBits(h, b.depth) != b.prefix {
			bad("bucket %d: key %v hashes outside the bucket", b.id, e.key)
		}
		if b.tags[i] != tagOf(h) {
			bad("bucket %d: key %v has a stale tag", b.id, e.key)
		}
		encodeEntry(buf[:], e)
		if got, err := decodeEntry(buf[:]); err != nil || got != *e {
			bad("bucket %d: key %v: entry does not round-trip: %v", b.id, e.key, err)
		}
		keys++
		if !e.spilled() {
			values++
			if !e.s1.IsZero() {
				values++
			}
			continue
		}
		spilled++
		vs := s.sets.lookup(e.spillID())
		if vs == nil {
			bad("bucket %d: key %v: value set %d missing", b.id, e.key, e.spillID())
			continue
		}
		if vs.id != e.spillID() || vs.freed {
			bad("bucket %d: key %v: value set %d is id %d, freed %v", b.id, e.key, e.spillID(), vs.id, vs.freed)
		}
		if err := vs.check(); err != nil {
			bad("bucket %d: key %v: %v", b.id, e.key, err)
		}
		if vs.live() == 0 {
			bad("bucket %d: key %v: value set %d has no live value", b.id, e.key, vs.id)
		}
		if vs.id >= s.nextVSID {
			bad("bucket %d: value set id %d >= next id %d", b.id, vs.id, s.nextVSID)
		}
		values += uint64(vs.live())
	}
	return
}

// check verifies a value set's own invariants in O(n + t log n) for n
// values and a tail of t: a strictly ascending prefix has no duplicates,
// and each tail value must be absent from the prefix and unique in the tail.
func (vs *valueSet) check() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: value set %d: "+format, append([]any{ErrCorrupt, vs.id}, args...)...)
	}
	if vs.sorted > len(vs.vals) {
		return fail("sorted count %d > %d values", vs.sorted, len(vs.vals))
	}
	prefix, tail := vs.vals[:vs.sorted], vs.vals[vs.sorted:]
	for i, v := range prefix {
		if v.IsZero() {
			return fail("holds a zero value")
		}
		if i > 0 && !prefix[i-1].Less(v) {
			return fail("sorted prefix out of order at %d", i)
		}
	}
	seen := make(map[E]struct{}, len(tail))
	for _, v := range tail {
		if v.IsZero() {
			return fail("holds a zero value")
		}
		if _, ok := slices.BinarySearchFunc(prefix, v, E.Compare); ok {
			return fail("holds %v twice", v)
		}
		if _, ok := seen[v]; ok {
			return fail("holds %v twice", v)
		}
		seen[v] = struct{}{}
		if vs.tail != nil {
			if _, ok := vs.tail[v]; !ok {
				return fail("tail value %v missing from the tail index", v)
			}
		}
	}
	if vs.tail != nil && len(vs.tail) != len(tail) {
		return fail("tail index has %d values, tail %d", len(vs.tail), len(tail))
	}
	if vs.tail == nil && len(tail) > tailScanMax {
		return fail("tail of %d values has no index", len(tail))
	}
	for v := range vs.dead {
		_, inPrefix := slices.BinarySearchFunc(prefix, v, E.Compare)
		_, inTail := seen[v]
		if !inPrefix && !inTail {
			return fail("tombstone %v is not a member", v)
		}
	}
	return nil
}
