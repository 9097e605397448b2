package h5store

import (
	"cmp"
	"math/bits"
	"slices"
)

// overlay is a paged table's commit in progress: the entries staged since
// the last commit, found by id (at) for gets and walked in id order
// (order) by the commit's resolve, index write and absorb.
//
// The entries live in ents, in staging order, and the map holds only
// their indexes: the commit's walks then read ents through order, loads
// that do not depend on each other, instead of a map lookup per id per
// walk (at 20M keys ~200k ids per commit, looked up three times: 27 s of
// map probes in session 17's 733 s profile of a W1 ingest; BENCHMARKS.md,
// sessions 17–18), and the map's slots are 16 bytes instead of 64.
//
// overlay is not safe for concurrent use: table's mu guards it.
type overlay struct {
	at   map[uint64]int32 // id → its entry's index in ents
	ents []overEnt
	// order is the indexes of ents in ascending id order while sorted: an
	// entry replaced in place keeps its place; a new id clears sorted.
	// resolve compacts it to the ids that stay.
	order   []int32
	keys    []uint64 // scratch of sort
	sorted  bool
	dropped int    // entries of ents no longer in at
	gen     uint64 // counts resets: an index of ents is valid within one
}

// overRef names an entry of ents, for a walk that reads it later.
type overRef struct {
	id uint64
	e  int32
}

type overEnt struct {
	id uint64
	l  loc
}

func (o *overlay) len() int { return len(o.at) }

func (o *overlay) get(id uint64) (loc, bool) {
	i, ok := o.at[id]
	if !ok {
		return loc{}, false
	}
	return o.ents[i].l, true
}

// entry returns the entry r names, found while o's gen was gen: read from
// ents while that holds and nothing was dropped, else looked up (zero if
// gone, as a walk that overlaps a commit's end has always seen it).
func (o *overlay) entry(gen uint64, r overRef) loc {
	if gen == o.gen && o.dropped == 0 {
		return o.ents[r.e].l
	}
	l, _ := o.get(r.id)
	return l
}

// put makes l id's entry.
func (o *overlay) put(id uint64, l loc) {
	if o.at == nil {
		o.at = make(map[uint64]int32)
	}
	if i, ok := o.at[id]; ok {
		o.ents[i].l = l
		return
	}
	o.at[id] = int32(len(o.ents))
	o.ents = append(o.ents, overEnt{id, l})
	o.sorted = false
}

// drop removes id (its entry stays in ents, unreferenced, until reset).
// The caller keeps order free of it.
func (o *overlay) drop(id uint64) {
	delete(o.at, id)
	o.dropped++
}

// reset empties o, keeping its space: the next commit is likely as large.
func (o *overlay) reset() {
	clear(o.at)
	o.ents, o.order, o.sorted, o.dropped = o.ents[:0], o.order[:0], false, 0
	o.gen++
}

// sort sets order to ents' indexes in ascending id order (the caller
// sets sorted). It sorts
// uint64 keys that carry the id above the index, so that the sort
// compares plain integers; ids too large to share a word with an index
// (none a store allocates) take a comparison sort.
func (o *overlay) sort() {
	o.order = o.order[:0]
	for i := range o.ents {
		// Dropped entries (after a resolve: no commit does that) are
		// skipped by a map lookup.
		if o.dropped > 0 {
			if e, ok := o.at[o.ents[i].id]; !ok || e != int32(i) {
				continue
			}
		}
		o.order = append(o.order, int32(i))
	}
	n := len(o.order)
	if n == 0 {
		return
	}
	shift := bits.Len(uint(len(o.ents) - 1))
	var maxID uint64
	for _, i := range o.order {
		maxID = max(maxID, o.ents[i].id)
	}
	if bits.Len64(maxID)+shift > 64 {
		slices.SortFunc(o.order, func(a, b int32) int { return cmp.Compare(o.ents[a].id, o.ents[b].id) })
		return
	}
	o.keys = slices.Grow(o.keys[:0], n)[:n]
	for k, i := range o.order {
		o.keys[k] = o.ents[i].id<<shift | uint64(i)
	}
	slices.Sort(o.keys)
	mask := uint64(1)<<shift - 1
	for k, key := range o.keys {
		o.order[k] = int32(key & mask)
	}
}
