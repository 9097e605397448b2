package cidstore

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// setTable holds the value sets in memory, by id: created ones and those
// loaded from the backend. Only resident sets take memory — a set evicted
// with its bucket leaves nothing behind but a tombstone until the next
// resize — so the table is bounded by the cache budget however many sets
// the backend holds (a two-level array of slabs it replaced kept ~170 bytes
// per set ever created: 1 GB at 10M keys, past any small budget). Splits
// and merges of buckets never move sets (a SpillPointer names a global id,
// not a bucket slot), and a *valueSet never moves.
//
// It is an open-addressing hash table (linear probing, Fibonacci hashing
// of the id) whose slots are an atomic id and an atomic pointer: lookups
// take no lock; adds and removes serialize on mu, and a resize swaps in a
// new slot array that the next adds and removes fill from the old one
// (below). (core imports only the stdlib; Go's map under read-write locks
// cost W1 ingest ~25 %, see DESIGN-NOTES.)
//
// Ids are never reused. A set enters the table when it is created or
// loaded, and leaves it when it is freed (its key deleted or demoted) or
// released (evicted with its bucket, see cache.go). A *valueSet stays valid
// while the lock of the bucket naming it is held.
//
// Concurrency: the writer creates and frees sets; readers load them. Both
// add or remove a set only while holding the write lock of the bucket whose
// entry names its id; a reader looks up an id only while holding that
// bucket's read lock. So the slot of the id a reader seeks does not change
// under it, and the slot array it loaded holds the id if the id was added
// before the reader took the bucket lock (an add stores the array it
// changed before the lock is released; an array a resize replaced keeps
// what it held). Slots of other ids may change meanwhile: a reader only
// compares their ids, atomically. A slot's id goes from empty to an id,
// and from an id to a tombstone and back to an id, never back to empty, so
// a probe never stops early.
type setTable struct {
	tab   atomic.Pointer[setSlots]
	mu    sync.Mutex
	n     int // sets in the table (under mu)
	tombs int // tombstones in the current array (under mu)
	mig   int // next slot of the current array's prev to move (under mu)
}

// A resize does not rehash every set at once: at 20M keys under 2 GiB that
// held the table's lock, and the writer, for 0.4-1.75 s each time the table
// doubled or halved (BENCHMARKS.md, session 13). The new array keeps the
// one it replaced as prev, and every add or remove moves setMigrateStep of
// prev's slots over, until none are left and prev is dropped. A lookup
// searches the current array, then prev if one was set when it started:
// prev is only ever tombstoned (by removes, and by adds replacing a set
// not moved yet), never emptied, so a set the
// move has not reached yet, or has copied, is found in one or the other.
// Before a resize starts, whatever is left of the previous move is
// finished (it fits: the current array is at most 3/4 full counting every
// set of both).
const setMigrateStep = 64

type setSlots struct {
	shift uint // 64 - log2(len(slot))
	slot  []setSlot
	// prev is the array this one replaced while its sets are being moved
	// over, nil once all are.
	prev atomic.Pointer[setSlots]
}

type setSlot struct {
	id atomic.Uint64 // 0 = empty, setTomb = removed
	vs atomic.Pointer[valueSet]
}

const (
	setTomb     = ^uint64(0)
	setMinSlots = 1 << 10
	// setMapBytes is the memory per set in the table, charged with it:
	// 16-byte slots, a quarter to half full after a resize. (The array
	// grows at 3/4 full and shrinks below 3/16, so between resizes a set
	// costs 21 to 85 bytes; the charge is a typical figure. Charging the
	// array exactly was measured in session 7 at 20M keys under 2 GiB:
	// 13 % more loads and 12 % slower ingest, and no lower peak RSS.)
	setMapBytes = 32
)

func (ts *setSlots) home(id uint64) uint64 { return (id * 0x9E3779B97F4A7C15) >> ts.shift }

// find returns the slot holding id, or nil.
func (ts *setSlots) find(id uint64) *setSlot {
	mask := uint64(len(ts.slot) - 1)
	for i := ts.home(id); ; i = (i + 1) & mask {
		sl := &ts.slot[i]
		switch sl.id.Load() {
		case id:
			return sl
		case 0:
			return nil
		}
	}
}

// get returns the set with id, or nil if it is not in the table.
func (t *setTable) get(id uint64) *valueSet {
	ts := t.tab.Load()
	if ts == nil {
		return nil
	}
	// prev before the search: nil means every set it held was in ts.
	prev := ts.prev.Load()
	if sl := ts.find(id); sl != nil {
		return sl.vs.Load()
	}
	if prev != nil {
		if sl := prev.find(id); sl != nil {
			return sl.vs.Load()
		}
	}
	return nil
}

// lookup is get for ids that may be absent or freed; it returns nil then.
func (t *setTable) lookup(id uint64) *valueSet {
	if id == 0 || id == setTomb {
		return nil
	}
	vs := t.get(id)
	if vs == nil || vs.freed {
		return nil
	}
	return vs
}

// alloc adds and returns a zeroed set with the given id (replacing any set
// with that id); the caller fills it before publishing the id.
func (t *setTable) alloc(id uint64) *valueSet {
	vs := &valueSet{id: id}
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tab.Load()
	if ts == nil || (t.n+t.tombs+1)*4 > len(ts.slot)*3 {
		ts = t.resize(t.n + 1)
	}
	replaced := false
	if prev := ts.prev.Load(); prev != nil {
		if sl := prev.find(id); sl != nil { // not moved yet: drop the old one
			sl.id.Store(setTomb)
			sl.vs.Store(nil)
			replaced = true
		}
	}
	if t.place(ts, id, vs) && !replaced {
		t.n++
	}
	t.migrate(ts, setMigrateStep)
	return vs
}

// place stores vs under id in ts, replacing the set there if any; it
// reports whether id took a new slot (mu held).
func (t *setTable) place(ts *setSlots, id uint64, vs *valueSet) bool {
	mask := uint64(len(ts.slot) - 1)
	free := -1
	for i := ts.home(id); ; i = (i + 1) & mask {
		sl := &ts.slot[i]
		switch sl.id.Load() {
		case id:
			sl.vs.Store(vs)
			return false
		case setTomb:
			if free < 0 {
				free = int(i)
			}
			continue
		case 0:
			if free < 0 {
				free = int(i)
			} else {
				t.tombs--
			}
		default:
			continue
		}
		break
	}
	sl := &ts.slot[free]
	sl.vs.Store(vs)
	sl.id.Store(id)
	return true
}

// migrate moves up to k slots of ts.prev into ts, and drops prev once all
// are moved (mu held). A set already in ts (added since) stays.
func (t *setTable) migrate(ts *setSlots, k int) {
	prev := ts.prev.Load()
	if prev == nil {
		return
	}
	end := min(t.mig+k, len(prev.slot))
	for ; t.mig < end; t.mig++ {
		o := &prev.slot[t.mig]
		if id := o.id.Load(); id != 0 && id != setTomb && ts.find(id) == nil {
			t.place(ts, id, o.vs.Load())
		}
	}
	if t.mig == len(prev.slot) {
		ts.prev.Store(nil)
		t.mig = 0
	}
}

// resize swaps in a slot array for n sets, at most half full, whose sets
// the next adds and removes move over (mu held).
func (t *setTable) resize(n int) *setSlots {
	size := setMinSlots
	for size < 2*n {
		size *= 2
	}
	ts := &setSlots{shift: uint(64 - bits.Len(uint(size-1))), slot: make([]setSlot, size)}
	if old := t.tab.Load(); old != nil {
		if prev := old.prev.Load(); prev != nil {
			t.migrate(old, len(prev.slot)) // finish the previous move first
		}
		if t.n > 0 {
			ts.prev.Store(old)
		}
	}
	t.tombs = 0
	t.tab.Store(ts)
	return ts
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
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tab.Load()
	if ts == nil || id == 0 || id == setTomb {
		return
	}
	found := false
	if sl := ts.find(id); sl != nil {
		sl.id.Store(setTomb)
		sl.vs.Store(nil)
		t.tombs++
		found = true
	}
	if prev := ts.prev.Load(); prev != nil {
		if sl := prev.find(id); sl != nil { // a copy not moved yet, or moved
			sl.id.Store(setTomb)
			sl.vs.Store(nil)
			found = true
		}
	}
	if !found {
		return
	}
	t.n--
	if len(ts.slot) > setMinSlots && t.n*16 < len(ts.slot)*3 {
		t.resize(t.n) // shrink: memory follows the resident sets
		return
	}
	t.migrate(ts, setMigrateStep)
}

// live counts the sets in the table.
func (t *setTable) live() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// reset clears what vs holds but its id, field by field: a checkpoint in
// progress may still load vs.frozen (captureSet), so the atomic must not be
// overwritten non-atomically.
func (vs *valueSet) reset() {
	vs.vals, vs.sorted, vs.tail, vs.dead, vs.small = nil, 0, nil, nil, [smallInline]E{}
	vs.dirty, vs.freed, vs.maint = false, false, setMaint{}
	vs.charge, vs.savedSeq = 0, 0
	vs.frozen.Store(false)
}

// each calls fn for every set in the table, in no particular order (writer
// only; no set may be loaded meanwhile, and fn must not call the table).
func (t *setTable) each(fn func(*valueSet)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tab.Load()
	if ts == nil {
		return
	}
	if prev := ts.prev.Load(); prev != nil {
		t.migrate(ts, len(prev.slot)) // every set in one array
	}
	for i := range ts.slot {
		if id := ts.slot[i].id.Load(); id != 0 && id != setTomb {
			fn(ts.slot[i].vs.Load())
		}
	}
}
