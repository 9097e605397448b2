package cidstore

import (
	"slices"
	"sync/atomic"
)

// valueSet is the external set of values of one spilled key.
//
// vals[:sorted] is sorted ascending; vals[sorted:] is the unsorted tail in
// insertion order. Deleted values stay in vals as tombstones (in dead) until
// compaction. While a set is small it is kept fully sorted; past
// smallSetMax values new values go to the tail, whose membership is indexed
// by a map once it is longer than tailScanMax, and the tail is merged into
// the sorted prefix when it outgrows a quarter of it. Every value is
// therefore moved O(log n) times as a set grows, and a lookup of one value
// is a binary search plus an O(1) probe: a key with millions of values
// costs no quadratic work.
//
// A valueSet belongs to exactly one bucket and is guarded by that bucket's
// lock.
type valueSet struct {
	id uint64
	// The flags every write to the set reads or writes share id's cache
	// line (a 160-byte object starts at 0 or 32 bytes into a line): warm
	// touches id, the apply loop then finds them cached.
	frozen atomic.Bool // to be captured by the checkpoint in progress
	dirty  bool        // queued for the next checkpoint (set by Store)
	freed  bool        // no entry references it any more
	maint  setMaint    // demotion hysteresis (scheduler.go)

	vals   []E
	sorted int
	tail   map[E]struct{} // membership of vals[sorted:], nil while the tail is short
	dead   map[E]struct{} // tombstones, nil when none
	// small is the backing array of vals while the set is small. Five
	// values: a key spills at three by default, and sets of 3–5 values
	// (most spilled keys of a triplestore, all of W1's) then need no
	// second allocation.
	small [smallInline]E

	charge   int64  // bytes charged to the cache
	savedSeq uint64 // checkpoint that last captured it
}

// smallInline is the size of valueSet.small. With it the struct is 160
// bytes, a malloc size class (TestValueSetSize): one more value, or one
// more word of fields, costs 16 bytes on every resident set.
const smallInline = 5

const (
	smallSetMax  = 64 // sets up to this size are kept fully sorted
	tailScanMax  = 16 // tails longer than this get a membership map
	tailMergeMin = 64 // a tail shorter than this is never merged
)

// initSmall fills a freshly allocated set with the n ≤ smallInline sorted
// values of vals, held inline. Unlike init it takes an array, so a caller
// building the values on its stack does not allocate them.
func (vs *valueSet) initSmall(vals [smallInline]E, n int) {
	vs.small = vals
	vs.vals = vs.small[:n]
	vs.sorted = n
}

// init fills a freshly allocated set with sorted values. vs must not move
// afterwards: small sets keep their values in vs.small.
func (vs *valueSet) init(sortedVals []E) {
	vs.sorted = len(sortedVals)
	if len(sortedVals) <= len(vs.small) {
		vs.vals = append(vs.small[:0], sortedVals...)
	} else {
		vs.vals = sortedVals
	}
}

// live is the number of values that are not tombstones.
func (vs *valueSet) live() int { return len(vs.vals) - len(vs.dead) }

// present reports whether v is in vals, tombstoned or not.
func (vs *valueSet) present(v E) bool {
	if len(vs.vals) <= 8 {
		for _, t := range vs.vals {
			if t == v {
				return true
			}
		}
		return false
	}
	if _, ok := slices.BinarySearchFunc(vs.vals[:vs.sorted], v, E.Compare); ok {
		return true
	}
	if vs.tail != nil {
		_, ok := vs.tail[v]
		return ok
	}
	for _, t := range vs.vals[vs.sorted:] {
		if t == v {
			return true
		}
	}
	return false
}

// has reports whether v is a live member.
func (vs *valueSet) has(v E) bool {
	if _, gone := vs.dead[v]; gone {
		return false
	}
	return vs.present(v)
}

// add inserts v; it reports whether the live set changed.
func (vs *valueSet) add(v E) bool {
	if vs.present(v) {
		if _, gone := vs.dead[v]; gone {
			delete(vs.dead, v)
			return true
		}
		return false
	}
	if vs.sorted == len(vs.vals) && len(vs.vals) < smallSetMax {
		i, _ := slices.BinarySearchFunc(vs.vals, v, E.Compare)
		vs.vals = slices.Insert(vs.vals, i, v)
		vs.sorted++
		return true
	}
	vs.vals = append(vs.vals, v)
	n := len(vs.vals) - vs.sorted
	switch {
	case vs.tail != nil:
		vs.tail[v] = struct{}{}
	case n > tailScanMax:
		vs.tail = make(map[E]struct{}, 2*n)
		for _, t := range vs.vals[vs.sorted:] {
			vs.tail[t] = struct{}{}
		}
	}
	if n >= tailMergeMin && n > vs.sorted/4 {
		vs.mergeTail()
	}
	return true
}

// remove tombstones v; it reports whether the live set changed.
func (vs *valueSet) remove(v E) bool {
	if !vs.has(v) {
		return false
	}
	if vs.dead == nil {
		vs.dead = make(map[E]struct{})
	}
	vs.dead[v] = struct{}{}
	return true
}

// tombstoneHeavy reports whether tombstones outnumber half the live values
// (and a minimum): the delete path then compacts the set, so a read never
// filters more tombstones than it returns values, and each value is moved
// O(1) times per deletion on average.
func (vs *valueSet) tombstoneHeavy() bool {
	return len(vs.dead) > tombstoneCompactMin && len(vs.dead) > vs.live()/2
}

const tombstoneCompactMin = 64

// mergeTail sorts the tail into the sorted prefix.
func (vs *valueSet) mergeTail() {
	if vs.sorted == len(vs.vals) {
		return
	}
	tail := vs.vals[vs.sorted:]
	slices.SortFunc(tail, E.Compare)
	out := make([]E, 0, len(vs.vals)+len(vs.vals)/4)
	out = mergeSorted(out, vs.vals[:vs.sorted], tail)
	vs.vals = out
	vs.sorted = len(out)
	vs.tail = nil
}

// compact drops tombstones and sorts everything. It reports whether
// anything changed.
func (vs *valueSet) compact() bool {
	if len(vs.dead) == 0 && vs.sorted == len(vs.vals) {
		return false
	}
	vs.mergeTail()
	if len(vs.dead) > 0 {
		out := vs.vals[:0]
		for _, v := range vs.vals {
			if _, gone := vs.dead[v]; !gone {
				out = append(out, v)
			}
		}
		vs.vals = slices.Clip(out)
		vs.sorted = len(out)
		vs.dead = nil
	}
	return true
}

// appendLive appends the live values to dst, sorted prefix first, then the
// live tail (unsorted); it returns dst and the length of the sorted part.
func (vs *valueSet) appendLive(dst []E) ([]E, int) {
	base := len(dst)
	if len(vs.dead) == 0 {
		dst = append(dst, vs.vals...)
		return dst, base + vs.sorted
	}
	for _, v := range vs.vals[:vs.sorted] {
		if _, gone := vs.dead[v]; !gone {
			dst = append(dst, v)
		}
	}
	n := len(dst)
	for _, v := range vs.vals[vs.sorted:] {
		if _, gone := vs.dead[v]; !gone {
			dst = append(dst, v)
		}
	}
	return dst, n
}

// liveSorted returns the live values in ascending order, in a new slice.
func (vs *valueSet) liveSorted() []E {
	out, n := vs.appendLive(make([]E, 0, vs.live()))
	return sortTail(out, n)
}

// sortTail returns vals with vals[n:] sorted and merged into the sorted
// vals[:n].
func sortTail(vals []E, n int) []E {
	if n == len(vals) {
		return vals
	}
	tail := vals[n:]
	slices.SortFunc(tail, E.Compare)
	if n == 0 {
		return vals
	}
	return mergeSorted(make([]E, 0, len(vals)), vals[:n], tail)
}

// mergeSorted appends the merge of two ascending, disjoint slices to dst.
func mergeSorted(dst, a, b []E) []E {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i].Less(b[j]) {
			dst = append(dst, a[i])
			i++
		} else {
			dst = append(dst, b[j])
			j++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}
