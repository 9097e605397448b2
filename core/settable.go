package cidstore

import (
	"sync"
	"sync/atomic"
)

// setTable holds every value set, by id: a two-level array of slabs, so
// that finding a set is two loads with no hashing, value sets cost no
// allocation of their own, and splits and merges of buckets never move them
// (a SpillPointer names a global id, not a bucket slot).
//
// Ids are never reused. A slot is filled when its set is created or loaded
// from the backend, and emptied when the set is freed (its key deleted or
// demoted) or released (evicted with its bucket, see cache.go); a slab
// whose slots are all empty is dropped. A *valueSet stays valid while the
// lock of the bucket naming it is held.
//
// Concurrency: the writer creates and frees sets; readers load them. Both
// fill or empty a slot only while holding the write lock of the bucket
// whose entry names its id, and mu serializes changes to the table itself.
// A reader looks up an id only while holding that bucket's read lock; the
// writer fills a slot before publishing the entry that names it and frees
// it only after removing that entry under the same lock, so readers never
// see a torn set. The top level grows by copy-and-swap.
type setTable struct {
	mu   sync.Mutex
	top  atomic.Pointer[[]atomic.Pointer[setSlab]]
	live int // sets in the table (under mu)
}

const setSlabBits = 10

type setSlab struct {
	sets [1 << setSlabBits]valueSet
	live int // sets in use (under setTable.mu)
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

// alloc returns the zeroed slot of a set with the given id; the caller
// fills it before publishing the id.
func (t *setTable) alloc(id uint64) *valueSet {
	t.mu.Lock()
	defer t.mu.Unlock()
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
// dropped once every set in it is empty.
func (t *setTable) free(vs *valueSet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := vs.id
	vs.reset()
	vs.freed = true
	t.drop(id)
}

// release empties the slot of a set evicted from memory; the set lives on
// in the backend.
func (t *setTable) release(vs *valueSet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := vs.id
	vs.reset()
	vs.id = 0
	t.drop(id)
}

// reset clears what vs holds but its id, field by field: a checkpoint in
// progress may still load vs.frozen (captureSet), so the atomic must not be
// overwritten non-atomically.
func (vs *valueSet) reset() {
	vs.vals, vs.sorted, vs.tail, vs.dead, vs.small = nil, 0, nil, nil, [4]E{}
	vs.dirty, vs.freed, vs.maint = false, false, setMaint{}
	vs.charge, vs.savedSeq = 0, 0
	vs.frozen.Store(false)
}

func (t *setTable) drop(id uint64) {
	top := t.top.Load()
	c := (*top)[id>>setSlabBits].Load()
	c.live--
	t.live--
	if c.live == 0 {
		(*top)[id>>setSlabBits].Store(nil)
	}
}

// each calls fn for every set in the table (writer only; no set may be
// loaded meanwhile).
func (t *setTable) each(fn func(*valueSet)) {
	t.mu.Lock()
	defer t.mu.Unlock()
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
