package cidstore

import "sync/atomic"

// setTable holds every value set, by id: a two-level array of slabs, so
// that finding a set is two loads with no hashing, value sets cost no
// allocation of their own, and splits and merges of buckets never move them
// (a SpillPointer names a global id, not a bucket slot).
//
// Ids are never reused, so a slot is written once (when its set is created)
// and freed once; a slab whose sets are all freed is dropped. Sets never
// move, so a *valueSet stays valid for the life of the store.
//
// Concurrency: only the writer changes the table. A reader looks up an id
// only while holding the read lock of the bucket whose entry holds that id;
// the writer fills a slot before publishing the entry that names it and
// frees it only after removing that entry under the same lock, so readers
// never see a torn or missing set. The top level grows by copy-and-swap.
type setTable struct {
	top  atomic.Pointer[[]atomic.Pointer[setSlab]]
	live int // sets in the table (writer only)
}

const setSlabBits = 10

type setSlab struct {
	sets [1 << setSlabBits]valueSet
	live int // sets in use (writer only)
}

func (t *setTable) get(id uint64) *valueSet {
	top := t.top.Load()
	return &(*top)[id>>setSlabBits].Load().sets[id&(1<<setSlabBits-1)]
}

// lookup is get for ids that may be absent or freed; it returns nil then.
func (t *setTable) lookup(id uint64) *valueSet {
	top := t.top.Load()
	if id == 0 || top == nil || id>>setSlabBits >= uint64(len(*top)) {
		return nil
	}
	c := (*top)[id>>setSlabBits].Load()
	if c == nil {
		return nil
	}
	vs := &c.sets[id&(1<<setSlabBits-1)]
	if vs.id != id || vs.freed {
		return nil
	}
	return vs
}

// alloc returns the zeroed slot of a new set with the given id (writer
// only); the caller fills it before publishing the id.
func (t *setTable) alloc(id uint64) *valueSet {
	i := id >> setSlabBits
	top := t.top.Load()
	if top == nil || i >= uint64(len(*top)) {
		n := 16
		if top != nil {
			n = len(*top)
		}
		for uint64(n) <= i {
			n *= 2
		}
		grown := make([]atomic.Pointer[setSlab], n)
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
		c = new(setSlab)
		(*top)[i].Store(c)
	}
	vs := &c.sets[id&(1<<setSlabBits-1)]
	*vs = valueSet{id: id}
	c.live++
	t.live++
	return vs
}

// free marks vs freed and releases what it holds (writer only); its slab is
// dropped once every set in it is freed.
func (t *setTable) free(vs *valueSet) {
	id := vs.id
	// Field by field: a checkpoint in progress may still load vs.frozen
	// (captureSet), so the atomic must not be overwritten non-atomically.
	vs.vals, vs.sorted, vs.tail, vs.dead, vs.small = nil, 0, nil, nil, [4]E{}
	vs.dirty, vs.freed, vs.maint = false, true, setMaint{}
	vs.frozen.Store(false)
	top := t.top.Load()
	c := (*top)[id>>setSlabBits].Load()
	c.live--
	t.live--
	if c.live == 0 {
		(*top)[id>>setSlabBits].Store(nil)
	}
}

// each calls fn for every live set (writer only).
func (t *setTable) each(fn func(*valueSet)) {
	top := t.top.Load()
	if top == nil {
		return
	}
	for i := range *top {
		c := (*top)[i].Load()
		if c == nil {
			continue
		}
		for j := range c.sets {
			if vs := &c.sets[j]; vs.id != 0 && !vs.freed {
				fn(vs)
			}
		}
	}
}
