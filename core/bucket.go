package cidstore

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// bucket is one leaf of the extendible-hashing directory: the keys whose
// directory hash starts with prefix (depth bits).
//
// entries[:sorted] is sorted by key; entries[sorted:] is an unsorted tail
// of keys added since the last sort-merge. New keys are appended; the tail
// is sort-merged into the sorted region when it passes bucketTailMax (by the
// writer, under the lock), by maintenance, and in the persisted copy of
// every checkpoint (so a reader of the file binary-searches it). A key has
// at most one entry in a bucket.
//
// tags[i] is a one-byte fingerprint of entries[i]'s directory hash. Lookups
// scan the tags eight at a time and compare keys only where a tag matches:
// a bucket's tags are a few cache lines, where a binary search over the
// entries touches a new line at every probe. The sorted region still orders
// the persisted bucket and makes merges linear.
//
// Concurrency: the single writer mutates a bucket only while holding mu;
// readers hold mu.RLock and, before trusting what they read, check that the
// bucket still owns their hash (retired is false and the prefix matches):
// splits and merges change ownership in place, under mu, and repoint the
// directory before releasing it, so a reader that raced with one retries
// from the directory.
type bucket struct {
	// The fields an insert reads or writes come first, in the first 144
	// bytes (three cache lines wherever the object starts), and warm
	// touches each of those lines (warm.go); the rest follow.
	id      uint32
	depth   uint8
	retired bool
	dirty   bool // changed since the last checkpoint
	frozen  bool // to be captured by the checkpoint in progress (under mu)
	mu      sync.RWMutex

	entries []entry
	tags    []byte
	sorted  int
	// adds counts the times a key joined entries (appendEntry, merges,
	// loads; under mu): while it is unchanged, a key whose tag no entry
	// had is still absent (warm's hints).
	adds uint32

	// Residency (cache.go): entries and tags are meaningful only while
	// loaded is set; loaded changes under mu (and, to false, only under
	// the writer lock too).
	loaded atomic.Bool

	// Bucket deltas (checkpoint.go, "Delta checkpoints"). since lists
	// the keys changed since b's base, the last whole record of b the
	// backend holds: what a delta of b must carry. Unsorted and with
	// repeats between captures (compactSince); a capture sorts it. whole
	// is set when b's next capture must be whole: b has no base (new,
	// split, merged, or its capture failed to commit) or its
	// changes since the base passed the fold (foldAt). delta is the
	// freeze's choice for the capture in progress. since is meaningful
	// only while b is loaded (a load sets it from the record's
	// DeltaKeys). Writer only, except that captures (under mu) read
	// since and reset it.
	since []E
	whole bool
	delta bool

	maint bucketMaint // scheduler counters (scheduler.go)
	// cold counts b's spilled entries whose value set is not resident,
	// while b is loaded: set when b is loaded, decremented as sets load,
	// recounted by splits and merges. Never below the truth; at 0 the
	// writer skips looking for sets to load (prepare).
	cold atomic.Int32

	prefix        uint64
	lastCompacted int64       // Unix ns of the last full sort, 0 if never
	ref           atomic.Bool // CLOCK reference bit, set by lookups
	charge        int64       // bytes charged to the cache (under mu)
	savedSeq      uint64      // checkpoint that last captured b (under mu)
}

// foldAt is how many changed keys a bucket of n entries may carry in a
// delta: past it the bucket is written whole again (a new base), which
// bounds a delta to a quarter of its bucket and a load to 1.25 buckets'
// bytes. Session 14 measured a quarter and an eighth alike (25.6 and 25.3
// GB of bucket writes for a W1 20M ingest, against 130 GB whole).
func foldAt(n int) int { return n / 4 }

// compactSince sorts b.since and drops repeats.
func (b *bucket) compactSince() {
	slices.SortFunc(b.since, E.Compare)
	b.since = slices.Compact(b.since)
}

func (b *bucket) owns(h uint64) bool {
	return !b.retired && topBits(h, b.depth) == b.prefix
}

// tagOf is the fingerprint of a directory hash: its low byte (the
// directory uses the high bits).
func tagOf(h uint64) byte { return byte(h) }

const (
	lsb8 = 0x0101010101010101
	msb8 = 0x8080808080808080
)

// find returns the index of k's entry, or -1; tag is tagOf(k's hash).
func (b *bucket) find(k E, tag byte) int {
	n := len(b.tags)
	pattern := uint64(tag) * lsb8
	i := 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(b.tags[i:]) ^ pattern
		// High bit set in each byte of w that is zero (a matching tag),
		// plus rare false positives above a match: keys are compared.
		m := (w - lsb8) & ^w & msb8
		for m != 0 {
			j := i + bits.TrailingZeros64(m)>>3
			if b.entries[j].key == k {
				return j
			}
			m &= m - 1
		}
	}
	for ; i < n; i++ {
		if b.tags[i] == tag && b.entries[i].key == k {
			return i
		}
	}
	return -1
}

// findHinted is find, trying entries c0 and c1 first (either may be out of
// range or -1): keys are unique within a bucket, so an entry holding k is
// the one find would return.
func (b *bucket) findHinted(k E, tag byte, c0, c1 int32) int {
	if uint(c0) < uint(len(b.entries)) && b.entries[c0].key == k {
		return int(c0)
	}
	if uint(c1) < uint(len(b.entries)) && b.entries[c1].key == k {
		return int(c1)
	}
	return b.find(k, tag)
}

// bucketTailMax bounds the unsorted tail: lookups do not need the order
// (they scan tags), but checkpoints write buckets sorted, and merging here,
// 64 entries at a time, is cheaper than sorting a long tail at every
// checkpoint.
const bucketTailMax = 64

// appendEntry adds a new key's entry to the tail, growing the arrays by
// a quarter (never past capacity while they are below it: append would
// double them). Entries and tags always have the same capacity: every
// site that allocates them allocates both alike. b.mu is held.
func (b *bucket) appendEntry(e entry, tag byte, capacity int) {
	if n := len(b.entries); n == cap(b.entries) {
		b.realloc(n, bucketGrowth(n, capacity))
	}
	b.entries = append(b.entries, e)
	b.tags = append(b.tags, tag)
	b.adds++
	if len(b.entries)-b.sorted > bucketTailMax {
		b.mergeTail()
	}
}

// bucketGrowth is the capacity an array of n entries grows to: a quarter
// more, at least 8, at most capacity unless n has reached it (a bucket
// that cannot split grows past its capacity). Right-sized arrays are most
// of the memory a store of small keys saves: a bucket lives between half
// full (just split) and full, and a capacity-sized array would waste a
// third of the bucket memory on average.
func bucketGrowth(n, capacity int) int {
	c := n + max(n/4, 8)
	if n < capacity {
		c = min(c, capacity)
	}
	return c
}

// realloc moves b's first n entries and tags to arrays of capacity c
// (b.mu held, or b not yet published).
func (b *bucket) realloc(n, c int) {
	entries, tags := make([]entry, n, c), make([]byte, n, c)
	copy(entries, b.entries[:n])
	copy(tags, b.tags[:n])
	b.entries, b.tags = entries, tags
}

// removeEntry deletes entry i, keeping the sorted region sorted.
func (b *bucket) removeEntry(i int) {
	if i >= b.sorted {
		last := len(b.entries) - 1
		b.entries[i] = b.entries[last]
		b.entries = b.entries[:last]
		b.tags[i] = b.tags[last]
		b.tags = b.tags[:last]
		return
	}
	b.entries = slices.Delete(b.entries, i, i+1)
	b.tags = slices.Delete(b.tags, i, i+1)
	b.sorted--
}

type taggedEntry struct {
	e   entry
	tag byte
}

// mergeTail sorts the tail into the sorted region, tags along.
func (b *bucket) mergeTail() {
	n := len(b.entries)
	if b.sorted == n {
		return
	}
	// The tail is copied out, sorted, and merged from the back so the
	// sorted region slides right within the same backing arrays. The
	// copy of a tail appendEntry merges fits on the stack.
	var buf [bucketTailMax + 1]taggedEntry
	var t []taggedEntry
	if m := n - b.sorted; m <= len(buf) {
		t = buf[:m]
	} else {
		t = make([]taggedEntry, m)
	}
	for j := range t {
		t[j] = taggedEntry{b.entries[b.sorted+j], b.tags[b.sorted+j]}
	}
	slices.SortFunc(t, func(x, y taggedEntry) int { return x.e.key.Compare(y.e.key) })
	i, j, k := b.sorted-1, len(t)-1, n-1
	for j >= 0 {
		if i >= 0 && t[j].e.key.Less(b.entries[i].key) {
			b.entries[k], b.tags[k] = b.entries[i], b.tags[i]
			i--
		} else {
			b.entries[k], b.tags[k] = t[j].e, t[j].tag
			j--
		}
		k--
	}
	b.sorted = n
}
