package cidstore

import "sync/atomic"

// setTable maps value set ids to value sets: a two-level array, so that a
// lookup is two loads and no hashing, and splits and merges of buckets never
// move value sets (a SpillPointer names a global id, not a bucket slot).
//
// Concurrency: only the writer changes the table. A reader looks up an id
// only while holding the read lock of the bucket whose entry holds that id;
// the writer stores a set before publishing the entry that names it and
// clears it only after removing that entry under the same lock, so readers
// never see a torn or missing set. The top level grows by copy-and-swap.
type setTable struct {
	top  atomic.Pointer[[]atomic.Pointer[setChunk]]
	live int // sets in the table (writer only)
}

const setChunkBits = 12

type setChunk struct {
	sets [1 << setChunkBits]*valueSet
	live int // non-nil sets (writer only)
}

func (t *setTable) get(id uint64) *valueSet {
	top := t.top.Load()
	c := (*top)[id>>setChunkBits].Load()
	return c.sets[id&(1<<setChunkBits-1)]
}

// lookup is get for ids that may be absent (validation, restore).
func (t *setTable) lookup(id uint64) *valueSet {
	top := t.top.Load()
	if top == nil || id>>setChunkBits >= uint64(len(*top)) {
		return nil
	}
	c := (*top)[id>>setChunkBits].Load()
	if c == nil {
		return nil
	}
	return c.sets[id&(1<<setChunkBits-1)]
}

// put stores vs under vs.id (writer only).
func (t *setTable) put(vs *valueSet) {
	i := vs.id >> setChunkBits
	top := t.top.Load()
	if top == nil || i >= uint64(len(*top)) {
		n := 16
		if top != nil {
			n = len(*top)
		}
		for uint64(n) <= i {
			n *= 2
		}
		grown := make([]atomic.Pointer[setChunk], n)
		if top != nil {
			for j := range *top {
				grown[j].Store((*top)[j].Load())
			}
		}
		t.top.Store(&grown)
		top = &grown
	}
	c := (*top)[i].Load()
	if c == nil {
		c = new(setChunk)
		(*top)[i].Store(c)
	}
	slot := &c.sets[vs.id&(1<<setChunkBits-1)]
	if *slot == nil {
		c.live++
		t.live++
	}
	*slot = vs
}

// remove clears id (writer only) and drops its chunk once empty.
func (t *setTable) remove(id uint64) {
	top := t.top.Load()
	c := (*top)[id>>setChunkBits].Load()
	slot := &c.sets[id&(1<<setChunkBits-1)]
	if *slot == nil {
		return
	}
	*slot = nil
	c.live--
	t.live--
	if c.live == 0 {
		(*top)[id>>setChunkBits].Store(nil)
	}
}

// each calls fn for every set in the table (writer only).
func (t *setTable) each(fn func(*valueSet)) {
	top := t.top.Load()
	if top == nil {
		return
	}
	for i := range *top {
		if c := (*top)[i].Load(); c != nil {
			for _, vs := range c.sets {
				if vs != nil {
					fn(vs)
				}
			}
		}
	}
}
