package cidstore

import "sync"

// setTable holds the value sets in memory, by id: created ones and those
// loaded from the backend, in maps sharded by id under read-write locks
// (core imports only the stdlib: no lock-free map library).
// Only resident sets take memory — a set evicted with its bucket leaves no
// slot behind — so the table is bounded by the cache budget however many
// sets the backend holds (a two-level array of slabs it replaced kept ~170
// bytes per set ever created: 1 GB at 10M keys, past any small budget).
// Splits and merges of buckets never move sets (a SpillPointer names a
// global id, not a bucket slot), and a *valueSet never moves.
//
// Ids are never reused. A set enters the table when it is created or
// loaded, and leaves it when it is freed (its key deleted or demoted) or
// released (evicted with its bucket, see cache.go). A *valueSet stays valid
// while the lock of the bucket naming it is held.
//
// Concurrency: the writer creates and frees sets; readers load them. Both
// add or remove a set only while holding the write lock of the bucket whose
// entry names its id, and its shard's lock. A reader looks up an id only while holding that
// bucket's read lock; the writer adds a set before publishing the entry
// that names it and frees it only after removing that entry under the same
// lock, so readers never see a torn set.
type setTable struct {
	shards [setShards]setShard
}

const setShards = 64

type setShard struct {
	mu   sync.RWMutex
	sets map[uint64]*valueSet
	_    [40]byte // keep shards on separate cache lines
}

// setMapBytes is the memory per set in its shard's map, charged with it.
const setMapBytes = 40

func (t *setTable) shard(id uint64) *setShard { return &t.shards[id%setShards] }

// get returns the set with id, which must be in the table.
func (t *setTable) get(id uint64) *valueSet {
	sh := t.shard(id)
	sh.mu.RLock()
	vs := sh.sets[id]
	sh.mu.RUnlock()
	return vs
}

// lookup is get for ids that may be absent or freed; it returns nil then.
func (t *setTable) lookup(id uint64) *valueSet {
	if id == 0 {
		return nil
	}
	vs := t.get(id)
	if vs == nil || vs.freed {
		return nil
	}
	return vs
}

// alloc adds and returns a zeroed set with the given id; the caller fills
// it before publishing the id.
func (t *setTable) alloc(id uint64) *valueSet {
	vs := &valueSet{id: id}
	sh := t.shard(id)
	sh.mu.Lock()
	if sh.sets == nil {
		sh.sets = make(map[uint64]*valueSet)
	}
	sh.sets[id] = vs
	sh.mu.Unlock()
	return vs
}

// free marks vs freed, releases what it holds and removes it (writer only).
func (t *setTable) free(vs *valueSet) {
	t.remove(vs.id)
	vs.reset()
	vs.freed = true
}

// release removes a set evicted from memory; the set lives on in the
// backend.
func (t *setTable) release(vs *valueSet) {
	t.remove(vs.id)
	vs.reset()
	vs.id = 0
}

func (t *setTable) remove(id uint64) {
	sh := t.shard(id)
	sh.mu.Lock()
	delete(sh.sets, id)
	sh.mu.Unlock()
}

// live counts the sets in the table (no set may be added or removed
// meanwhile).
func (t *setTable) live() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.sets)
		sh.mu.RUnlock()
	}
	return n
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

// each calls fn for every set in the table, in no particular order (writer
// only; no set may be loaded meanwhile, and fn must not call the table).
func (t *setTable) each(fn func(*valueSet)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, vs := range sh.sets {
			fn(vs)
		}
		sh.mu.RUnlock()
	}
}
