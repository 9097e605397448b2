package h5store

import (
	"maps"
	"slices"
)

// table maps object ids to locs: about 80 bytes per bucket or value set
// (a 56-byte loc in a Go map), whatever the id distribution. Core allocates
// ids from counters that only grow, so after churn the live ids are sparse;
// a map keeps the cost per live object.
type table struct {
	m     map[uint64]loc
	live  int // entries with stLive
	dirty int // entries with stDirty (live or tombstones)
}

func newTable() *table { return &table{m: make(map[uint64]loc)} }

func (t *table) get(id uint64) (loc, bool) {
	l, ok := t.m[id]
	return l, ok
}

func (t *table) count(l loc, sign int) {
	if l.state&stLive != 0 {
		t.live += sign
	}
	if l.state&stDirty != 0 {
		t.dirty += sign
	}
}

// set stores l for id, replacing any entry.
func (t *table) set(id uint64, l loc) {
	if old, ok := t.m[id]; ok {
		t.count(old, -1)
	}
	t.m[id] = l
	t.count(l, +1)
}

// del removes id.
func (t *table) del(id uint64) {
	if old, ok := t.m[id]; ok {
		t.count(old, -1)
		delete(t.m, id)
	}
}

// each calls fn for every entry in ascending id order, so that index blobs
// are deterministic and sorted for h5dump readers.
func (t *table) each(fn func(id uint64, l *loc)) {
	for _, id := range slices.Sorted(maps.Keys(t.m)) {
		l := t.m[id]
		fn(id, &l)
	}
}

// all calls fn for every entry in no particular order.
func (t *table) all(fn func(id uint64, l loc)) {
	for id, l := range t.m {
		fn(id, l)
	}
}

// clean marks every entry as saved in a snapshot: tombstones go, dirty bits
// clear.
func (t *table) clean() {
	for id, l := range t.m {
		if !l.live() {
			delete(t.m, id)
			continue
		}
		if l.state&stDirty != 0 {
			l.state &^= stDirty
			t.m[id] = l
		}
	}
	t.dirty = 0
}

// ids returns the live ids in ascending order.
func (t *table) ids() []uint64 {
	out := make([]uint64, 0, t.live)
	for id, l := range t.m {
		if l.live() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
