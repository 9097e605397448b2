package h5store

import (
	"maps"
	"math"
	"math/bits"
	"slices"
)

// table maps object ids to locs. It is the largest memory the cache budget
// does not bound (one entry per bucket and per value set), so it packs a
// 56-byte loc into a 32-byte rec and groups ids into pages of pageSize
// consecutive ids: 32.4 bytes per value set with dense ids
// (TestTableMemory), against 95-150 for the Go map it replaced. Buckets
// cost 48 (their pages also carry an ext array).
//
// A page stores only its present ids' recs, in id order, found by the rank
// of the id's bit in a presence bitmap. Core allocates ids from counters
// that only grow, so after churn the live ids are sparse: a page with few
// live ids costs its 416-byte header plus its recs, where an array of
// pageSize slots would cost 32 KiB for a single survivor. With a tenth of
// the ids live a value set costs under 40 bytes, with a hundredth about
// what the map did.
type table struct {
	pages map[uint64]*page // by id>>pageBits
	// big holds count and tombs of the entries that do not fit a rec's
	// uint32s (rec.count == bigCount): value sets of 4G values, which no
	// store has, but a loc must come back exactly as it was set.
	big   map[uint64][2]uint64
	live  int // entries with stLive
	dirty int // entries with stDirty (live or tombstones)
}

const (
	pageBits  = 10
	pageSize  = 1 << pageBits
	pageWords = pageSize / 64
	bigCount  = math.MaxUint32 // rec.count of an entry whose counts are in table.big
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
	// value-set pages never have one; it lives as long as the page. store
	// writes a slot's extra whenever ext exists, so removals leave theirs.
	ext *[pageSize]extra
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

// fit gives back the recs capacity a clean freed, which after churn is most
// of an old page's: new ids go to the newest pages.
func (p *page) fit() {
	if cap(p.recs)-len(p.recs) > len(p.recs)/4 {
		p.recs = slices.Clone(p.recs)
	}
}

// load rebuilds the loc of id, at slot s and index i of page p.
func (t *table) load(id uint64, p *page, s, i int) loc {
	r := &p.recs[i]
	l := loc{ref: r.ref, gen: r.gen, count: uint64(r.count), tombs: uint64(r.tombs),
		sorted: r.sorted, crc: r.crc, state: p.state(s)}
	if r.count == bigCount {
		c := t.big[id]
		l.count, l.tombs = c[0], c[1]
	}
	if p.ext != nil {
		l.lastCompacted, l.depth = p.ext[s].lastCompacted, p.ext[s].depth
	}
	return l
}

// store writes l as the entry of id, at slot s and index i of page p,
// whose previous contents (if any) have been forgotten.
func (t *table) store(id uint64, p *page, s, i int, l loc) {
	r := rec{ref: l.ref, gen: l.gen, count: uint32(l.count), tombs: uint32(l.tombs),
		sorted: l.sorted, crc: l.crc}
	if l.count >= bigCount || l.tombs >= bigCount {
		if t.big == nil {
			t.big = make(map[uint64][2]uint64)
		}
		t.big[id] = [2]uint64{l.count, l.tombs}
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

// forget drops what the entry at index i of page p keeps outside the page.
func (t *table) forget(id uint64, p *page, i int) {
	if p.recs[i].count == bigCount {
		delete(t.big, id)
	}
}

func (t *table) get(id uint64) (loc, bool) {
	pn, s := split(id)
	p := t.pages[pn]
	if p == nil || !p.present(s) {
		return loc{}, false
	}
	return t.load(id, p, s, p.rank(s)), true
}

func (t *table) count(st uint8, sign int) {
	if st&stLive != 0 {
		t.live += sign
	}
	if st&stDirty != 0 {
		t.dirty += sign
	}
}

// set stores l for id, replacing any entry. The table keeps only the state
// bits stLive and stDirty; another would be lost, so it panics.
func (t *table) set(id uint64, l loc) {
	if l.state&^(stLive|stDirty) != 0 {
		panic("h5store: table: unknown loc state bits")
	}
	pn, s := split(id)
	p := t.pages[pn]
	if p == nil {
		p = &page{}
		t.pages[pn] = p
	}
	i := p.rank(s)
	if p.present(s) {
		t.count(p.state(s), -1)
		t.forget(id, p, i)
	} else {
		p.insert(i)
		w, m := bit(s)
		p.has[w] |= m
	}
	t.store(id, p, s, i, l)
	t.count(l.state, +1)
}

// del removes id.
func (t *table) del(id uint64) {
	pn, s := split(id)
	p := t.pages[pn]
	if p == nil || !p.present(s) {
		return
	}
	i := p.rank(s)
	t.count(p.state(s), -1)
	t.forget(id, p, i)
	p.setState(s, 0)
	w, m := bit(s)
	p.has[w] &^= m
	// Only a rollback deletes, so the capacity is left for the next clean
	// to fit.
	p.recs = slices.Delete(p.recs, i, i+1)
	if len(p.recs) == 0 {
		delete(t.pages, pn)
	}
}

// walk calls fn for every entry of page pn in ascending id order.
func (t *table) walk(pn uint64, p *page, fn func(id uint64, l loc)) {
	i := 0
	for w, x := range p.has {
		for ; x != 0; x &= x - 1 {
			s := w*64 + bits.TrailingZeros64(x)
			id := pn<<pageBits | uint64(s)
			fn(id, t.load(id, p, s, i))
			i++
		}
	}
}

// each calls fn for every entry in ascending id order, so that index blobs
// are deterministic and sorted for h5dump readers. fn must not change t.
func (t *table) each(fn func(id uint64, l *loc)) {
	for _, pn := range slices.Sorted(maps.Keys(t.pages)) {
		t.walk(pn, t.pages[pn], func(id uint64, l loc) { fn(id, &l) })
	}
}

// all calls fn for every entry in no particular order. fn must not change
// t.
func (t *table) all(fn func(id uint64, l loc)) {
	for pn, p := range t.pages {
		t.walk(pn, p, fn)
	}
}

// clean marks every entry as saved in a snapshot: tombstones (entries not
// live) go, dirty bits clear.
func (t *table) clean() {
	for pn, p := range t.pages {
		p.dirty = [pageWords]uint64{}
		if p.has == p.live {
			continue
		}
		// Keep the live recs, in order, at the front of recs.
		i, j := 0, 0
		for w, x := range p.has {
			for ; x != 0; x &= x - 1 {
				if m := x & -x; p.live[w]&m != 0 {
					p.recs[j] = p.recs[i]
					j++
				} else {
					t.forget(pn<<pageBits|uint64(w*64+bits.TrailingZeros64(x)), p, i)
				}
				i++
			}
		}
		p.has = p.live
		p.recs = p.recs[:j]
		if j == 0 {
			delete(t.pages, pn)
			continue
		}
		p.fit()
	}
	t.dirty = 0
}

// ids returns the live ids in ascending order.
func (t *table) ids() []uint64 {
	out := make([]uint64, 0, t.live)
	for _, pn := range slices.Sorted(maps.Keys(t.pages)) {
		for w, x := range t.pages[pn].live {
			for ; x != 0; x &= x - 1 {
				out = append(out, pn<<pageBits|uint64(w*64+bits.TrailingZeros64(x)))
			}
		}
	}
	return out
}
