package cidstore

import (
	"slices"
	"sync"
)

// bucket is one leaf of the extendible-hashing directory: the keys whose
// directory hash starts with prefix (depth bits).
//
// entries[:sorted] is sorted by key; entries[sorted:] is an unsorted tail
// of recently added keys, merged into the sorted region when it passes
// bucketTailMax. A key has at most one entry in a bucket.
//
// Concurrency: the single writer mutates a bucket only while holding mu;
// readers hold mu.RLock and, before trusting what they read, check that the
// bucket still owns their hash (retired is false and the prefix matches):
// splits and merges change ownership in place, under mu, and repoint the
// directory before releasing it, so a reader that raced with one retries
// from the directory.
type bucket struct {
	mu      sync.RWMutex
	id      uint32
	depth   uint8
	prefix  uint64
	retired bool

	entries []entry
	sorted  int
	spills  map[uint64]*valueSet // value sets of spilled entries, by id

	dirty         bool  // changed since the last checkpoint
	lastCompacted int64 // Unix ns of the last full sort, 0 if never
}

// bucketTailMax is the longest unsorted tail a bucket keeps.
const bucketTailMax = 32

func (b *bucket) owns(h uint64) bool {
	return !b.retired && topBits(h, b.depth) == b.prefix
}

// find returns the index of k's entry, or -1.
func (b *bucket) find(k E) int {
	lo, hi := 0, b.sorted
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := b.entries[m].key
		if c.High < k.High || (c.High == k.High && c.Low < k.Low) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < b.sorted && b.entries[lo].key == k {
		return lo
	}
	for i := b.sorted; i < len(b.entries); i++ {
		if b.entries[i].key == k {
			return i
		}
	}
	return -1
}

// appendEntry adds a new key's entry to the tail.
func (b *bucket) appendEntry(e entry) {
	b.entries = append(b.entries, e)
	if len(b.entries)-b.sorted > bucketTailMax {
		b.mergeTail()
	}
}

// removeEntry deletes entry i, keeping the sorted region sorted.
func (b *bucket) removeEntry(i int) {
	if i >= b.sorted {
		last := len(b.entries) - 1
		b.entries[i] = b.entries[last]
		b.entries = b.entries[:last]
		return
	}
	b.entries = slices.Delete(b.entries, i, i+1)
	b.sorted--
}

func compareEntries(a, b entry) int { return a.key.Compare(b.key) }

// mergeTail sorts the tail into the sorted region.
func (b *bucket) mergeTail() {
	n := len(b.entries)
	if b.sorted == n {
		return
	}
	tail := b.entries[b.sorted:]
	slices.SortFunc(tail, compareEntries)
	if b.sorted > 0 {
		// Merge from the back: tail is copied out so the sorted region can
		// slide right within the same backing array.
		t := slices.Clone(tail)
		i, j, k := b.sorted-1, len(t)-1, n-1
		for j >= 0 {
			if i >= 0 && t[j].key.Less(b.entries[i].key) {
				b.entries[k] = b.entries[i]
				i--
			} else {
				b.entries[k] = t[j]
				j--
			}
			k--
		}
	}
	b.sorted = n
}

// valuesOf appends the live values of entry e to dst in ascending order.
// The caller holds b.mu (read or write).
func (b *bucket) valuesOf(e *entry, dst []E) ([]E, int) {
	if !e.spilled() {
		dst = append(dst, e.s0)
		if !e.s1.IsZero() {
			dst = append(dst, e.s1)
		}
		return dst, len(dst)
	}
	return b.spills[e.spillID()].appendLive(dst)
}
