package h5store

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// table maps object ids to locs, grouping ids into pages of pageSize
// consecutive ids. It works in one of two modes.
//
// Resident (src == nil): every page is in memory and set changes it in
// place. SWMR Readers and the table a full checkpoint builds use it.
//
// Paged (src != nil): the writer's mode. The committed entries are on disk
// (the commit record's index snapshot and deltas, src); pages are read from
// there on demand and kept while their bytes stay within budget, so that
// the index no longer grows memory with the file. A commit's changes do not
// touch the pages: they go to an overlay (over), which get consults first,
// and reach the resident pages in commit(), together with the new src that
// holds them on disk. Every resident page therefore always equals what src
// gives for it, so any page can be evicted at any time, and a rollback is
// dropping the overlay.
//
// A page stores only its present ids' recs, in id order, found by the rank
// of the id's bit in a presence bitmap: 32.4 bytes per value set with dense
// ids (TestTableMemory), against 95-150 for the Go map it replaced. Buckets
// cost 48 (their pages also carry an ext array).
//
// table is safe for concurrent use; mu guards the page map, the overlay and
// the counters. Only the committing goroutine changes entries.
type table struct {
	mu    sync.RWMutex
	pages map[uint64]*page // by id>>pageBits; nil: known, on disk only (paged)
	// over is the commit in progress (paged). Emptied, not dropped,
	// between commits: it keeps the space of the largest commit (at 10M
	// keys ~1M value sets) instead of growing again, step by step, at
	// every commit (BENCHMARKS.md, session 11). staged sorts it once a
	// commit stops adding ids: a commit walks it in id order three times
	// (resolve, writeIndex, absorb), and sorting ~1M ids at each walk
	// cost more than the walks.
	over overlay
	src  *tsrc // where pages come from (paged); nil: resident
	// budget bounds the bytes of resident pages (paged); resident counts
	// them.
	budget, resident int64
	live             int // entries with stLive, overlay included
	dirty            int // entries with stDirty, overlay included
	loads, evictions uint64
	finds            uint64 // pages a resolve looked up in the extents unbuilt
	lookups          uint64 // gets answered from the extents (atomic)
	lookupReads      uint64 // extent blocks those gets read (atomic)
	// absorbing is set while absorb moves a durable commit's overlay into
	// the pages: a page read from src meanwhile lacks the commit's entries
	// and is not kept.
	absorbing bool
}

const (
	pageBits  = 10
	pageSize  = 1 << pageBits
	pageWords = pageSize / 64
	bigCount  = math.MaxUint32 // rec.count of an entry whose counts are in page.big
)

// rec is a loc without the fields that are zero for value sets (depth,
// lastCompacted: see extra) and state (page bitmaps). 32 bytes, so that a
// full page's recs are 32 KiB, a Go size class, with no rounding waste.
type rec struct {
	ref          ref
	gen          uint64
	count, tombs uint32
	sorted, crc  uint32
}

// extra is the part of a loc only buckets use.
type extra struct {
	lastCompacted int64
	depth         uint8
}

// page holds the entries of pageSize consecutive ids. Bitmaps are indexed
// by slot (id%pageSize); recs by rank among present slots.
type page struct {
	has, live, dirty [pageWords]uint64
	recs             []rec
	// ext is allocated on the first entry with a non-zero extra, so
	// value-set pages never have one; it lives as long as the page. put
	// writes a slot's extra whenever ext exists, so removals leave theirs.
	ext *[pageSize]extra
	// big holds count and tombs of the entries that do not fit a rec's
	// uint32s (rec.count == bigCount), by slot: value sets of 4G values,
	// which no store has, but a loc must come back exactly as it was set.
	big  map[int][2]uint64
	used atomic.Bool // read since the evictor last passed (paged)
}

func newTable() *table { return &table{pages: make(map[uint64]*page)} }

func split(id uint64) (pn uint64, s int) { return id >> pageBits, int(id & (pageSize - 1)) }

func bit(s int) (w int, m uint64) { return s / 64, 1 << (s % 64) }

func (p *page) present(s int) bool {
	w, m := bit(s)
	return p.has[w]&m != 0
}

// rank returns the index in recs of slot s: the present slots below it.
func (p *page) rank(s int) int {
	w, m := bit(s)
	n := bits.OnesCount64(p.has[w] & (m - 1))
	for _, x := range p.has[:w] {
		n += bits.OnesCount64(x)
	}
	return n
}

func (p *page) state(s int) uint8 {
	w, m := bit(s)
	var st uint8
	if p.live[w]&m != 0 {
		st |= stLive
	}
	if p.dirty[w]&m != 0 {
		st |= stDirty
	}
	return st
}

func (p *page) setState(s int, st uint8) {
	w, m := bit(s)
	p.live[w] &^= m
	p.dirty[w] &^= m
	if st&stLive != 0 {
		p.live[w] |= m
	}
	if st&stDirty != 0 {
		p.dirty[w] |= m
	}
}

// insert opens index i of recs for a new slot. Capacity doubles up to
// pageSize so that ids allocated in order cost amortised O(1) and a full
// page's recs are exactly pageSize.
func (p *page) insert(i int) {
	if len(p.recs) == cap(p.recs) {
		c := min(max(2*cap(p.recs), 1), pageSize)
		p.recs = append(make([]rec, 0, c), p.recs...)
	}
	p.recs = p.recs[:len(p.recs)+1]
	copy(p.recs[i+1:], p.recs[i:])
}

// reset empties p for loadInto, keeping its recs' capacity.
func (p *page) reset() {
	p.has, p.live, p.dirty = [pageWords]uint64{}, [pageWords]uint64{}, [pageWords]uint64{}
	p.recs = p.recs[:0]
	clear(p.big)
	p.used.Store(false)
	// ext keeps stale extras of absent slots: store overwrites a slot's
	// whenever ext exists, and only present slots are read.
}

// fit gives back the recs capacity a clean freed, which after churn is most
// of an old page's: new ids go to the newest pages.
func (p *page) fit() {
	if cap(p.recs)-len(p.recs) > len(p.recs)/4 {
		p.recs = slices.Clone(p.recs)
	}
}

const (
	pageHeaderBytes = int64(unsafe.Sizeof(page{}))
	recBytes        = int64(unsafe.Sizeof(rec{}))
	extBytes        = int64(unsafe.Sizeof([pageSize]extra{}))
)

// size is the heap a page takes, roughly (big's entries are not counted:
// no store has them).
func (p *page) size() int64 {
	n := pageHeaderBytes + int64(cap(p.recs))*recBytes
	if p.ext != nil {
		n += extBytes
	}
	return n
}

// load rebuilds the loc at slot s and index i.
func (p *page) load(s, i int) loc {
	r := &p.recs[i]
	l := loc{ref: r.ref, gen: r.gen, count: uint64(r.count), tombs: uint64(r.tombs),
		sorted: r.sorted, crc: r.crc, state: p.state(s)}
	if r.count == bigCount {
		c := p.big[s]
		l.count, l.tombs = c[0], c[1]
	}
	if p.ext != nil {
		l.lastCompacted, l.depth = p.ext[s].lastCompacted, p.ext[s].depth
	}
	return l
}

// store writes l at slot s and index i, whose previous contents (if any)
// have been forgotten.
func (p *page) store(s, i int, l loc) {
	r := rec{ref: l.ref, gen: l.gen, count: uint32(l.count), tombs: uint32(l.tombs),
		sorted: l.sorted, crc: l.crc}
	if l.count >= bigCount || l.tombs >= bigCount {
		if p.big == nil {
			p.big = make(map[int][2]uint64)
		}
		p.big[s] = [2]uint64{l.count, l.tombs}
		r.count, r.tombs = bigCount, bigCount
	}
	p.recs[i] = r
	e := extra{lastCompacted: l.lastCompacted, depth: l.depth}
	if e != (extra{}) && p.ext == nil {
		p.ext = new([pageSize]extra)
	}
	if p.ext != nil {
		p.ext[s] = e
	}
	p.setState(s, l.state)
}

// forget drops what the entry at slot s and index i keeps outside recs.
func (p *page) forget(s, i int) {
	if p.recs[i].count == bigCount {
		delete(p.big, s)
	}
}

func (p *page) get(s int) (loc, bool) {
	if !p.present(s) {
		return loc{}, false
	}
	return p.load(s, p.rank(s)), true
}

// put stores l at slot s and returns the state of the entry it replaced.
func (p *page) put(s int, l loc) (prev uint8, had bool) {
	i := p.rank(s)
	if p.present(s) {
		prev, had = p.state(s), true
		p.forget(s, i)
	} else {
		p.insert(i)
		w, m := bit(s)
		p.has[w] |= m
	}
	p.store(s, i, l)
	return prev, had
}

// remove deletes slot s and returns the state of the entry it held.
func (p *page) remove(s int) (prev uint8, had bool) {
	if !p.present(s) {
		return 0, false
	}
	i := p.rank(s)
	prev = p.state(s)
	p.forget(s, i)
	p.setState(s, 0)
	w, m := bit(s)
	p.has[w] &^= m
	// Only a rollback removes, so the capacity is left for the next clean
	// to fit.
	p.recs = slices.Delete(p.recs, i, i+1)
	return prev, true
}

// walk calls fn for every entry of page pn in ascending id order.
func (p *page) walk(pn uint64, fn func(id uint64, l loc)) {
	i := 0
	for w, x := range p.has {
		for ; x != 0; x &= x - 1 {
			s := w*64 + bits.TrailingZeros64(x)
			fn(pn<<pageBits|uint64(s), p.load(s, i))
			i++
		}
	}
}

// clean drops the entries that are not live and clears the dirty bits, as
// an index snapshot leaves them. It reports whether the page is empty.
func (p *page) clean() bool {
	p.dirty = [pageWords]uint64{}
	if p.has == p.live {
		return len(p.recs) == 0
	}
	// Keep the live recs, in order, at the front of recs.
	i, j := 0, 0
	for w, x := range p.has {
		for ; x != 0; x &= x - 1 {
			s := w*64 + bits.TrailingZeros64(x)
			if m := x & -x; p.live[w]&m != 0 {
				p.recs[j] = p.recs[i]
				j++
			} else {
				p.forget(s, i)
			}
			i++
		}
	}
	p.has = p.live
	p.recs = p.recs[:j]
	if j > 0 {
		p.fit()
	}
	return j == 0
}

func (t *table) count(st uint8, sign int) {
	if st&stLive != 0 {
		t.live += sign
	}
	if st&stDirty != 0 {
		t.dirty += sign
	}
}

// get returns the loc of id: the commit in progress's, else the page's.
// A paged table looks an id whose page is not resident up in the extents
// (tsrc.lookup: a few small preads) without loading the page: reads are
// spread over the whole index, and a page is 1024 entries.
func (t *table) get(id uint64) (loc, bool, error) {
	pn, s := split(id)
	t.mu.RLock()
	if l, ok := t.over.get(id); ok {
		t.mu.RUnlock()
		return l, true, nil
	}
	p, known := t.pages[pn]
	if p != nil {
		p.used.Store(true)
		l, ok := p.get(s)
		t.mu.RUnlock()
		return l, ok, nil
	}
	t.mu.RUnlock()
	if !known {
		return loc{}, false, nil
	}
	atomic.AddUint64(&t.lookups, 1)
	return t.src.lookup(id, &t.lookupReads)
}

// evict drops resident pages, least recently read first (CLOCK: a page
// read since the last pass gets a second chance), until their bytes are
// an eighth under the budget.
func (t *table) evict() {
	ov := t.src.overhead()
	if t.src == nil || t.resident+ov <= t.budget {
		return
	}
	target := t.keepLimit() - ov
	for pass := 0; pass < 2 && t.resident > target; pass++ {
		for pn, p := range t.pages {
			if p == nil {
				continue
			}
			if p.used.Swap(false) && pass == 0 {
				continue
			}
			t.pages[pn] = nil
			t.resident -= p.size()
			t.evictions++
			if t.resident <= target {
				break
			}
		}
	}
}

// set stores l for id in a resident table, replacing any entry. The table
// keeps only the state bits stLive and stDirty; another would be lost, so
// it panics.
func (t *table) set(id uint64, l loc) {
	checkLocState(l)
	if t.src != nil {
		panic("h5store: table: set on a paged table")
	}
	pn, s := split(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pages[pn]
	if p == nil {
		p = &page{}
		t.pages[pn] = p
	}
	if prev, had := p.put(s, l); had {
		t.count(prev, -1)
	}
	t.count(l.state, +1)
}

func checkLocState(l loc) {
	if l.state&^(stLive|stDirty) != 0 {
		panic("h5store: table: unknown loc state bits")
	}
}

// stage records l as id's entry in the commit in progress. A resident
// table takes it at once; a paged one keeps it in the overlay, and resolve
// compares it with the committed entry later.
func (t *table) stage(id uint64, l loc) {
	if t.src == nil {
		t.set(id, l)
		return
	}
	checkLocState(l)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.over.put(id, l)
}

// pending reports whether the commit in progress changed the table.
func (t *table) pending() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.over.len() > 0
}

// staged returns the entries of the commit in progress, in ascending id
// order: indexes of t.over.ents. The slice is the table's: callers must
// not change it.
func (t *table) staged() []int32 {
	// Only the committing goroutine changes over, so it can be read
	// without mu here; the sort writes only order and keys, which the
	// table's readers do not read while sorted is false (eachFrom), and
	// runs outside mu (readers do not wait for it); mu is taken to
	// publish sorted.
	if t.over.sorted {
		return t.over.order
	}
	t.over.sort()
	t.mu.Lock()
	t.over.sorted = true
	t.mu.Unlock()
	return t.over.order
}

// resolve compares every overlay entry with the committed entry it
// replaces, page by page in id order (each page read once): it counts the
// change into live and dirty, calls free with a committed version that was
// live, and drops tombstones of ids that were not live. A page that is not
// resident and that the budget would not keep is not built: its ids are
// looked up in the extents (tsrc.find).
func (t *table) resolve(free func(base loc)) error {
	order := t.staged()
	ents := t.over.ents
	// order is compacted in place to the entries that stay in the
	// overlay; until the end it is not sorted (an error leaves it so).
	t.mu.Lock()
	t.over.sorted = false
	t.mu.Unlock()
	kept := 0 // order[:kept] are the overlay's entries resolved so far
	var group []uint64
	var bases []loc
	var has []bool
	for i := 0; i < len(order); {
		pn := ents[order[i]].id >> pageBits
		j := i + 1
		for j < len(order) && ents[order[j]].id>>pageBits == pn {
			j++
		}
		group = group[:0]
		for _, e := range order[i:j] {
			group = append(group, ents[e].id)
		}
		bases, has = slices.Grow(bases[:0], len(group))[:len(group)], slices.Grow(has[:0], len(group))[:len(group)]
		if err := t.committed(pn, group, bases, has); err != nil {
			return err
		}
		t.mu.Lock()
		for g, e := range order[i:j] {
			base, had := bases[g], has[g]
			cur := &ents[e]
			if !cur.l.live() && !base.live() {
				t.over.drop(cur.id) // freeing what was not live changes nothing
				continue
			}
			order[kept] = e // kept <= i+g: only entries already read are overwritten
			kept++
			if had {
				t.count(base.state, -1)
			}
			t.count(cur.l.state, +1)
			if base.live() {
				free(base)
			}
		}
		t.mu.Unlock()
		i = j
	}
	t.mu.Lock()
	t.over.order, t.over.sorted = order[:kept], true
	t.mu.Unlock()
	return nil
}

// committed puts the committed entries of ids, sorted and all in page pn,
// into out and has: from the resident page, from a page loaded to stay
// resident, or, when the budget has no room for it, from the extents
// without building the page.
func (t *table) committed(pn uint64, ids []uint64, out []loc, has []bool) error {
	if t.cold(pn) {
		t.mu.Lock()
		t.finds++
		t.mu.Unlock()
		return t.src.find(ids, out, has)
	}
	p, err := t.page(pn)
	if err != nil {
		return err
	}
	clear(has)
	if p == nil {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for g, id := range ids {
		_, s := split(id)
		out[g], has[g] = p.get(s)
	}
	return nil
}

// cold reports whether page pn is on disk only (paged) and the budget has
// no room to keep it once built: then a commit uses it without building
// it for keeps.
func (t *table) cold(pn uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p, known := t.pages[pn]
	return p == nil && known && t.resident+t.src.overhead()+fullPageBytes > t.keepLimit()
}

// keepLimit is the most the resident pages and the extents' overhead may
// take for a page read from src to be kept: the level evict brings them
// down to, an eighth under the budget. Keeping pages up to the budget
// itself churned: with the index over budget (20M keys), each commit's
// eviction made room that its resolve then filled with ~630 pages built
// for ~18 ids each and evicted before any other use (BENCHMARKS.md,
// session 18); above the limit a commit finds its ids unbuilt. The eighth
// is left to the pages of new ids (absorbOne), which are read soonest.
func (t *table) keepLimit() int64 { return t.budget - t.budget/8 }

// fullPageBytes is the most a value-set page takes: whether a page the
// budget would keep is worth building.
const fullPageBytes = pageHeaderBytes + pageSize*recBytes

// discard drops the commit in progress: a rollback. live and dirty are
// the counts from before it.
func (t *table) discard(live, dirty int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.over.reset()
	t.live, t.dirty = live, dirty
}

// absorb moves the overlay's entries into the resident pages once the
// commit that holds them is durable, a slice at a time, so that reads do
// not wait for all of it. The overlay stays until commit: reads see the
// same entries either way.
func (t *table) absorb() {
	order := t.staged()
	t.mu.Lock()
	t.absorbing = true
	t.mu.Unlock()
	const slice = 4096
	for i := 0; i < len(order); i += slice {
		t.mu.Lock()
		for _, e := range order[i:min(i+slice, len(order))] {
			t.absorbOne(t.over.ents[e].id, t.over.ents[e].l)
		}
		t.mu.Unlock()
	}
}

// absorbOne puts l into its page if the page is resident or new.
func (t *table) absorbOne(id uint64, l loc) {
	pn, s := split(id)
	p, known := t.pages[pn]
	if p == nil && known {
		return // the new src has it
	}
	var before int64
	if p == nil {
		p = &page{} // a new page: its ids are the newest, likely read soon
		t.pages[pn] = p
	} else {
		before = p.size()
	}
	p.put(s, l)
	t.resident += p.size() - before
}

// commit makes the commit in progress part of the table once src, which
// holds it on disk, is durable: its entries go into the resident pages
// (unless absorb moved them already), and snapshot (src is a new index
// snapshot) cleans them. A resident table becomes paged.
func (t *table) commit(src *tsrc, snapshot bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.absorbing {
		for id, e := range t.over.at {
			t.absorbOne(id, t.over.ents[e].l)
		}
	}
	t.absorbing = false
	t.over.reset()
	if snapshot {
		for pn, p := range t.pages {
			if p == nil {
				continue
			}
			before := p.size()
			if p.clean() {
				delete(t.pages, pn)
				t.resident -= before
				continue
			}
			t.resident += p.size() - before
		}
		t.dirty = 0
	}
	if t.src == nil {
		t.resident = 0
		for _, p := range t.pages {
			t.resident += p.size()
		}
	}
	t.src = src
	t.evict()
}

// clean marks every entry of a resident table as saved in a snapshot:
// tombstones (entries not live) go, dirty bits clear.
func (t *table) clean() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pn, p := range t.pages {
		if p != nil && p.clean() {
			delete(t.pages, pn)
		}
	}
	t.dirty = 0
}

// del removes id from a resident table.
func (t *table) del(id uint64) {
	pn, s := split(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pages[pn]
	if p == nil {
		return
	}
	if prev, had := p.remove(s); had {
		t.count(prev, -1)
	}
	if len(p.recs) == 0 {
		delete(t.pages, pn)
	}
}

// each calls fn for every entry, the commit in progress's included, in
// ascending id order, so that index blobs are deterministic and sorted for
// h5dump readers and for paging. Pages that are not resident are read from
// src and, while the budget has room, kept. fn must not change t; an error
// from fn stops the walk.
func (t *table) each(fn func(id uint64, l *loc) error) error {
	return t.eachFrom(0, fn)
}

// eachFrom is each over the ids >= from.
func (t *table) eachFrom(from uint64, fn func(id uint64, l *loc) error) error {
	first := from >> pageBits
	t.mu.RLock()
	var pns []uint64
	for pn := range t.pages {
		if pn >= first {
			pns = append(pns, pn)
		}
	}
	// The overlay's entries from from on, in id order: from the sorted
	// order if it is (a commit's snapshot walk), else from the map.
	var over []overRef
	gen := t.over.gen
	if t.over.sorted {
		order, ents := t.over.order, t.over.ents
		k, _ := slices.BinarySearchFunc(order, from, func(e int32, id uint64) int { return cmp.Compare(ents[e].id, id) })
		for _, e := range order[k:] {
			over = append(over, overRef{ents[e].id, e})
			pns = append(pns, ents[e].id>>pageBits)
		}
	} else {
		for id, e := range t.over.at {
			if id >= from {
				over = append(over, overRef{id, e})
				pns = append(pns, id>>pageBits)
			}
		}
		slices.SortFunc(over, func(a, b overRef) int { return cmp.Compare(a.id, b.id) })
	}
	t.mu.RUnlock()
	slices.Sort(pns)
	pns = slices.Compact(pns)
	var ents []pageEntry
	for _, pn := range pns {
		var err error
		if ents, err = t.entries(pn, ents[:0]); err != nil {
			return err
		}
		if pn == first {
			k := 0
			for k < len(ents) && ents[k].id < from {
				k++
			}
			ents = ents[k:]
		}
		// Merge the page's entries with the overlay's ids of this page.
		i := 0
		for ; len(over) > 0 && over[0].id>>pageBits == pn; over = over[1:] {
			id := over[0].id
			for ; i < len(ents) && ents[i].id < id; i++ {
				if err := fn(ents[i].id, &ents[i].l); err != nil {
					return err
				}
			}
			if i < len(ents) && ents[i].id == id {
				i++
			}
			t.mu.RLock()
			l := t.over.entry(gen, over[0])
			t.mu.RUnlock()
			if err := fn(id, &l); err != nil {
				return err
			}
		}
		for ; i < len(ents); i++ {
			if err := fn(ents[i].id, &ents[i].l); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachDirty calls fn, in ascending id order, for every dirty entry (changed
// since the snapshot, the commit in progress's included): each filtered to
// stDirty, what a merged delta holds. Those entries are the records of the
// deltas since the snapshot (an id's newest wins) and the overlay, so a
// paged table merges these and never reads the snapshot: walking every
// page for them, building those not resident from every extent, was most
// of the merged deltas' cost at 20M keys (17 of 28 s; BENCHMARKS.md,
// sessions 17–18). fn must not change t; an error from fn stops the
// walk.
func (t *table) eachDirty(fn func(id uint64, l *loc) error) error {
	if t.src == nil || !t.src.deltas() {
		return t.each(func(id uint64, l *loc) error {
			if l.state&stDirty != 0 {
				return fn(id, l)
			}
			return nil
		})
	}
	order, ents := t.staged(), t.over.ents
	m, err := t.src.merger(t.src.exts[1:])
	if err != nil {
		return err
	}
	var l loc // one for all: fn's argument escapes
	for {
		id, more := m.next()
		if len(order) > 0 && (!more || ents[order[0]].id < id) {
			id, more = ents[order[0]].id, true
		}
		if !more {
			return nil
		}
		// The newest source that holds id decides: the overlay, then the
		// deltas from the newest (a delta's record is always an entry).
		over := len(order) > 0 && ents[order[0]].id == id
		if over {
			l = ents[order[0]].l
			order = order[1:]
		}
		dl, has, err := m.take(id)
		if err != nil {
			return err
		}
		if !over && has {
			l = dl
		}
		if l.state&stDirty != 0 {
			if err := fn(id, &l); err != nil {
				return err
			}
		}
	}
}

type pageEntry struct {
	id uint64
	l  loc
}

// entries appends the entries of page pn, without the overlay, to out. A
// page that is not resident and that the budget would not keep is built
// in a pooled scratch page: a snapshot written over an index past its
// budget builds every page once, and allocating each (32 KiB) was a
// fifth of a page build's cost at 20M keys, and the collector's work.
func (t *table) entries(pn uint64, out []pageEntry) ([]pageEntry, error) {
	if t.cold(pn) {
		sp := scratchPages.Get().(*page)
		defer scratchPages.Put(sp)
		if err := t.src.loadInto(pn, sp); err != nil {
			return out, err
		}
		t.mu.Lock()
		t.loads++
		t.mu.Unlock()
		sp.walk(pn, func(id uint64, l loc) { out = append(out, pageEntry{id, l}) })
		return out, nil
	}
	p, err := t.page(pn)
	if p == nil || err != nil {
		return out, err
	}
	t.mu.RLock()
	p.walk(pn, func(id uint64, l loc) { out = append(out, pageEntry{id, l}) })
	t.mu.RUnlock()
	return out, nil
}

// scratchPages are the pages entries builds and drops.
var scratchPages = sync.Pool{New: func() any { return new(page) }}

// page returns page pn without the overlay: the resident one, or one read
// from src for a walk (kept while under keepLimit, without evicting
// others), or nil for a page that does not exist.
func (t *table) page(pn uint64) (*page, error) {
	t.mu.RLock()
	p, known := t.pages[pn]
	t.mu.RUnlock()
	if p != nil || !known {
		return p, nil
	}
	p, err := t.src.load(pn)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.loads++ // kept or not: a page read back from the file
	if cur, known := t.pages[pn]; cur == nil && known && !t.absorbing && t.resident+t.src.overhead()+p.size() <= t.keepLimit() {
		t.pages[pn] = p
		t.resident += p.size()
	}
	t.mu.Unlock()
	return p, nil
}

// ids returns the live ids in ascending order.
func (t *table) ids() ([]uint64, error) {
	t.mu.RLock()
	out := make([]uint64, 0, t.live)
	t.mu.RUnlock()
	err := t.each(func(id uint64, l *loc) error {
		if l.live() {
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

// errWalkDone stops a walk that has what it needs.
var errWalkDone = errors.New("walk done")

// idsAfter returns the live ids greater than after in ascending order, at
// most limit of them: a page of port.Lister.ValueSetIDs, whose memory is
// the page's, however many ids the table holds.
func (t *table) idsAfter(after uint64, limit int) ([]uint64, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list ids: limit %d is not positive", limit)
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	out := make([]uint64, 0, min(limit, 4096))
	err := t.eachFrom(after+1, func(id uint64, l *loc) error {
		if !l.live() {
			return nil
		}
		out = append(out, id)
		if len(out) == limit {
			return errWalkDone
		}
		return nil
	})
	if errors.Is(err, errWalkDone) {
		err = nil
	}
	return out, err
}

// tableStats are a table's paging counters.
type tableStats struct {
	Resident         int64 // bytes of resident pages
	Pages            int   // resident pages
	Loads, Evictions uint64
	Finds            uint64
	Lookups          uint64
	LookupReads      uint64
	Overhead         int64 // the extents' fences and filters
	Extents          int   // index extents pages are built from
}

func (t *table) stats() tableStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st := tableStats{Resident: t.resident, Loads: t.loads, Evictions: t.evictions, Finds: t.finds,
		Lookups: atomic.LoadUint64(&t.lookups), LookupReads: atomic.LoadUint64(&t.lookupReads),
		Overhead: t.src.overhead()}
	if t.src != nil {
		st.Extents = len(t.src.exts)
	}
	for _, p := range t.pages {
		if p != nil {
			st.Pages++
		}
	}
	return st
}
