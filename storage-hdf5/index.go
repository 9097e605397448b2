package h5store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cidstore/cidstore/core/port"
)

// The writer's id → loc tables are paged (table): a page that is not
// resident is rebuilt from the committed index extents, the snapshot and
// then each delta in order. Every extent is sorted by id, so the records of
// one page are a contiguous run of it, found through fences: the id of
// every fenceEvery-th record, kept in memory (8 bytes per 64 records, about
// 1.3 MB per 10M entries). A page load is one pread per extent that holds
// any of the page's ids; a single id (a read that misses the resident
// pages) is one pread of at most fenceEvery records per extent, newest
// delta first, stopping at the first that holds it.
//
// Extents are verified (CRC32C of the whole extent) when the fences are
// built: when the store opens, or as the commit writes them. A page load
// reads part of an extent and cannot check that CRC again; a record
// damaged since would name rows that fail their own checksum, which the
// object read reports as corruption.

// fenceEvery is how many records one fence covers.
const fenceEvery = 64

// A delta extent of at most filterMax records carries a Bloom filter of its
// ids (filterFP false positives), built as its fences are, so that a
// lookup skips the deltas that do not hold the id instead of reading a
// block of each: with 16 deltas, a lookup of an id that no delta holds
// read 17 blocks (at 20M keys after a reopen, cold GET p99 61–220 µs).
// The filters' memory is part of the index budget (table.overhead); the
// cap bounds it at 16 × ~4.8 MiB whatever the store's size (a larger
// delta — a merged one — is read without a filter).
const (
	filterMax = 1 << 22
	filterFP  = 0.01
)

// srcExtent is one committed index extent a paged table reads pages from.
type srcExtent struct {
	e      extent
	delta  bool
	filter *bloom.BloomFilter // the ids of a delta of at most filterMax records, or nil
	fences []uint64           // id of records 0, fenceEvery, 2*fenceEvery, ...
	// mem holds the records, sorted, of an extent a build before sorted
	// deltas wrote in change order; the next snapshot or merged delta
	// replaces it.
	mem []byte
}

// tsrc is where a paged table's pages come from: the index extents of one
// commit record, the snapshot first.
type tsrc struct {
	kind int
	pool *pool
	exts []srcExtent
}

// entry is the table entry that record l of x gives: a delta's records
// are changes since the snapshot (dirty, tombstones included); a
// snapshot holds live entries only, so a record that is not live there
// gives none (ok false).
func (x *srcExtent) entry(l loc) (loc, bool) {
	if x.delta {
		l.state |= stDirty
		return l, true
	}
	return l, l.live()
}

// span returns the records [i, j) of x that may hold ids in [lo, hi).
func (x *srcExtent) span(lo, hi uint64) (i, j uint64) {
	f := x.fences
	// The first record ≥ lo is in the block before the first fence ≥ lo.
	a := sort.Search(len(f), func(k int) bool { return f[k] >= lo })
	b := sort.Search(len(f), func(k int) bool { return f[k] >= hi })
	i = uint64(max(a-1, 0)) * fenceEvery
	j = min(uint64(b)*fenceEvery, x.e.count)
	return i, j
}

// block returns the records [i, j) of x that hold id if any does.
func (x *srcExtent) block(id uint64) (i, j uint64) {
	f := x.fences
	k := sort.Search(len(f), func(k int) bool { return f[k] > id }) - 1
	if k < 0 {
		return 0, 0
	}
	return uint64(k) * fenceEvery, min(uint64(k+1)*fenceEvery, x.e.count)
}

// lookup finds the committed entry of id without building its page: the
// newest extent that has a record of id decides. It adds the blocks it
// read to *reads.
func (s *tsrc) lookup(id uint64, reads *uint64) (loc, bool, error) {
	rs := metaRecord[s.kind].Size
	buf := readBufs.Get().(*[]byte)
	defer readBufs.Put(buf)
	for xi := len(s.exts) - 1; xi >= 0; xi-- {
		x := &s.exts[xi]
		// The filter first: it rejects most deltas in fewer probes than
		// the fence search takes.
		if !x.mayHold(id) {
			continue
		}
		i, j := x.block(id)
		if i >= j {
			continue
		}
		atomic.AddUint64(reads, 1)
		b, err := s.read(x, i, j, buf)
		if err != nil {
			return loc{}, false, fmt.Errorf("read %s index entry %d: %w", kindName[s.kind], id, err)
		}
		for o := 0; o+rs <= len(b); o += rs {
			if rid := metaID(s.kind, b[o:]); rid < id {
				continue
			} else if rid > id {
				break
			}
			_, l := decodeMeta[s.kind](b[o : o+rs])
			l, ok := x.entry(l)
			return l, ok, nil
		}
	}
	return loc{}, false, nil
}

// readBufs holds the buffers of index reads: a page load or a lookup
// decodes what it read and is done with it, and at 20M keys allocating
// one per read was 13 % of the CPU of an ingest (most of it in the
// collector's assists).
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// read returns records [i, j) of x, read into *buf (grown as needed) or
// in x's memory; the result is valid until *buf is reused.
func (s *tsrc) read(x *srcExtent, i, j uint64, buf *[]byte) ([]byte, error) {
	rs := uint64(metaRecord[s.kind].Size)
	if x.mem != nil {
		return x.mem[i*rs : j*rs], nil
	}
	fd, off, err := s.pool.locate(x.e.ref+ref(i), j-i)
	if err != nil {
		return nil, err
	}
	n := (j - i) * rs
	if uint64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := fd.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// load builds page pn from the extents.
func (s *tsrc) load(pn uint64) (*page, error) {
	p := &page{}
	return p, s.loadInto(pn, p)
}

// loadInto builds page pn from the extents in p, reusing its memory.
func (s *tsrc) loadInto(pn uint64, p *page) error {
	p.reset()
	lo, hi := pn<<pageBits, (pn+1)<<pageBits
	rs := metaRecord[s.kind].Size
	// Size recs once for the records the spans may hold: growing it by
	// doubling from empty allocated ten slices per page.
	var n uint64
	for xi := range s.exts {
		if i, j := s.exts[xi].span(lo, hi); i < j {
			n += j - i
		}
	}
	if want := min(n, pageSize); uint64(cap(p.recs)) < want {
		p.recs = make([]rec, 0, want)
	}
	err := s.spans(lo, hi, func(x *srcExtent, b []byte) {
		for o := 0; o+rs <= len(b); o += rs {
			id, l := decodeMeta[s.kind](b[o : o+rs])
			if id < lo {
				continue
			}
			if id >= hi {
				break
			}
			if l, ok := x.entry(l); ok {
				p.put(int(id-lo), l)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("index page %d: %w", pn, err)
	}
	p.fit()
	return nil
}

// spans calls fn, oldest extent first (the snapshot, then each delta),
// with the records of every extent that may hold ids in [lo, hi): the
// blocks its fences give, read into a pooled buffer that is valid only
// during the call.
func (s *tsrc) spans(lo, hi uint64, fn func(x *srcExtent, b []byte)) error {
	buf := readBufs.Get().(*[]byte)
	defer readBufs.Put(buf)
	for xi := range s.exts {
		x := &s.exts[xi]
		i, j := x.span(lo, hi)
		if i >= j {
			continue
		}
		b, err := s.read(x, i, j, buf)
		if err != nil {
			return fmt.Errorf("read %s index records %d..%d: %w", kindName[s.kind], lo, hi-1, err)
		}
		fn(x, b)
	}
	return nil
}

// fencer collects the fences of an extent from its ids, in order, and
// notes whether they ascend; for a delta of n ≤ filterMax records
// (newFencer) it also fills the extent's filter.
type fencer struct {
	n        uint64
	fences   []uint64
	last     uint64
	unsorted bool
	filter   *bloom.BloomFilter
}

func newFencer(delta bool, n uint64) fencer {
	if !delta || n == 0 || n > filterMax {
		return fencer{}
	}
	return fencer{filter: bloom.NewWithEstimates(uint(n), filterFP)}
}

// filterKey is the filter's key for id.
func filterKey(id uint64, b *[8]byte) []byte {
	binary.LittleEndian.PutUint64(b[:], id)
	return b[:]
}

// mayHold reports whether x may hold a record of id (a delta's filter
// says no for most ids it does not hold).
func (x *srcExtent) mayHold(id uint64) bool {
	var b [8]byte
	return x.filter == nil || x.filter.Test(filterKey(id, &b))
}

// filterBytes is the memory of x's filter.
func (x *srcExtent) filterBytes() int64 {
	if x.filter == nil {
		return 0
	}
	return int64(x.filter.Cap() / 8)
}

// overhead is the memory the extents keep outside the pages: fences and
// filters.
func (s *tsrc) overhead() int64 {
	if s == nil {
		return 0
	}
	var n int64
	for i := range s.exts {
		n += s.exts[i].filterBytes() + int64(8*len(s.exts[i].fences))
	}
	return n
}

func (f *fencer) add(id uint64) {
	if f.filter != nil {
		var b [8]byte
		f.filter.Add(filterKey(id, &b))
	}
	if f.n%fenceEvery == 0 {
		f.fences = append(f.fences, id)
	}
	if f.n > 0 && id <= f.last {
		f.unsorted = true
	}
	f.last = id
	f.n++
}

// prepareExtent reads extent e of kind's index in chunks, checks its CRC,
// builds its fences and adds the page numbers it touches to pns. An
// extent whose ids do not ascend is kept in memory, sorted.
func prepareExtent(p *pool, kind int, e extent, delta bool, what string, pns *[]uint64) (srcExtent, error) {
	x := srcExtent{e: e, delta: delta}
	if e.count == 0 {
		return x, nil
	}
	rs := uint64(metaRecord[kind].Size)
	fd, off, err := p.locate(e.ref, e.count)
	if err != nil {
		return x, fmt.Errorf("read %s: %w", what, err)
	}
	const chunkRecs = 64 * fenceEvery
	buf := make([]byte, min(e.count, chunkRecs)*rs)
	var (
		f    = newFencer(delta, e.count)
		crc  uint32
		last = ^uint64(0)
	)
	for at := uint64(0); at < e.count; at += chunkRecs {
		b := buf[:min(e.count-at, chunkRecs)*rs]
		if _, err := fd.ReadAt(b, off+int64(at*rs)); err != nil {
			return x, fmt.Errorf("read %s: %w", what, err)
		}
		crc = crc32.Update(crc, castagnoli, b)
		for o := uint64(0); o < uint64(len(b)); o += rs {
			id := metaID(kind, b[o:])
			f.add(id)
			if pn := id >> pageBits; pn != last {
				*pns = append(*pns, pn)
				last = pn
			}
		}
	}
	if crc != e.crc {
		return x, fmt.Errorf("read %s at %v: checksum %08x, want %08x: %w", what, e.ref, crc, e.crc, port.ErrCorrupt)
	}
	x.fences, x.filter = f.fences, f.filter
	if !f.unsorted {
		return x, nil
	}
	mem, err := readBlob(p, e, what)
	if err != nil {
		return x, err
	}
	if err := sortRecords(mem, kind); err != nil {
		return x, fmt.Errorf("%s: %w", what, err)
	}
	x.mem = mem
	var g fencer
	for o := uint64(0); o < uint64(len(mem)); o += rs {
		id := metaID(kind, mem[o:])
		g.add(id)
	}
	x.fences = g.fences
	return x, nil
}

// sortRecords sorts index records by id; an id twice is corruption.
func sortRecords(b []byte, kind int) error {
	rs := metaRecord[kind].Size
	n := len(b) / rs
	type kr struct {
		id  uint64
		off int
	}
	keys := make([]kr, n)
	for i := range keys {
		id := metaID(kind, b[i*rs:])
		keys[i] = kr{id, i * rs}
	}
	slices.SortFunc(keys, func(a, b kr) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := make([]byte, 0, len(b))
	for i, k := range keys {
		if i > 0 && keys[i-1].id == k.id {
			return fmt.Errorf("%w: index record for id %d twice", port.ErrCorrupt, k.id)
		}
		out = append(out, b[k.off:k.off+rs]...)
	}
	if !bytes.Equal(out, b) {
		copy(b, out)
	}
	return nil
}

// openSrc prepares the index extents of root for kind and returns them
// with the sorted page numbers they hold.
func openSrc(root *commitRec, pools *[numPools]*pool, kind int) (*tsrc, []uint64, error) {
	src := &tsrc{kind: kind, pool: pools[metaPool[kind]]}
	type job struct {
		e     extent
		delta bool
		what  string
	}
	var jobs []job
	if root.hasSnap[kind] {
		jobs = append(jobs, job{root.snap[kind], false, kindName[kind] + " index snapshot"})
	}
	for i, d := range root.deltas[kind] {
		jobs = append(jobs, job{d, true, fmt.Sprintf("%s index delta %d", kindName[kind], i)})
	}
	// The extents are read and checked side by side, as many at a time
	// as there are processors: building the deltas' filters is most of
	// Open's work (10M keys: ~200 of ~310 ms).
	src.exts = make([]srcExtent, len(jobs))
	pns := make([][]uint64, len(jobs))
	errs := make([]error, len(jobs))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			src.exts[i], errs[i] = prepareExtent(src.pool, kind, j.e, j.delta, j.what, &pns[i])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	all := slices.Concat(pns...)
	slices.Sort(all)
	return src, slices.Compact(all), nil
}

// openTable builds a paged table over root's index of kind, with pages
// kept up to budget bytes. It reads and verifies every extent (checksum,
// fences, filter: openSrc) but no entry: its live and dirty counts are
// zero until recount walks it.
func openTable(root *commitRec, pools *[numPools]*pool, kind int, budget int64) (*table, error) {
	src, pns, err := openSrc(root, pools, kind)
	if err != nil {
		return nil, err
	}
	t := newTable()
	t.budget = budget
	for _, pn := range pns {
		t.pages[pn] = nil
	}
	t.src = src
	return t, nil
}

// recount reads every entry of t once, sets t's live and dirty counts and
// calls fn with each; an error from fn stops the walk and
// leaves the counts unchanged. t must be as openTable made it (nothing
// staged or absorbed since: Store.scan runs before the first commit);
// reads may run meanwhile. It merges the extents in id order (tsrc.merge)
// instead of building pages: no page is built, kept or locked, so the
// reads after a reopen do not wait behind it for t's lock.
func (t *table) recount(fn func(id uint64, l *loc) error) error {
	var live, dirty int
	err := t.src.merge(func(id uint64, l *loc) error {
		if l.live() {
			live++
		}
		if l.state&stDirty != 0 {
			dirty++
		}
		return fn(id, l)
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.live, t.dirty = live, dirty
	t.mu.Unlock()
	return nil
}

// warm builds and keeps t's pages in id order while the budget has room
// to keep them, what building the tables at Open used to leave resident:
// lookups find their ids in resident pages instead of reading the extents
// (and only commits build pages otherwise). It stops at the first page the
// budget would not keep, and with errScanStopped when stop returns true.
// Like recount, it runs before the first commit (t.src does not change).
func (t *table) warm(stop func() bool) error {
	t.mu.RLock()
	pns := make([]uint64, 0, len(t.pages))
	for pn, p := range t.pages {
		if p == nil {
			pns = append(pns, pn)
		}
	}
	t.mu.RUnlock()
	slices.Sort(pns)
	for _, pn := range pns {
		if stop() {
			return errScanStopped
		}
		if t.cold(pn) {
			return nil
		}
		if _, err := t.page(pn); err != nil {
			return err
		}
	}
	return nil
}

// merge calls fn with every entry of s's extents in ascending id order:
// for each id, the entry of the newest extent that holds one (a page
// load's rule: srcExtent.entry).
func (s *tsrc) merge(fn func(id uint64, l *loc) error) error {
	m, err := s.merger(s.exts)
	if err != nil {
		return err
	}
	for {
		id, ok := m.next()
		if !ok {
			return nil
		}
		l, has, err := m.take(id)
		if err != nil {
			return err
		}
		if has {
			if err := fn(id, &l); err != nil {
				return err
			}
		}
	}
}

// merger reads extents side by side in id order, a cursor each: what
// merge and table.eachDirty walk.
type merger struct {
	curs []*cursor // in the extents' order: the last is the newest
}

func (s *tsrc) merger(exts []srcExtent) (*merger, error) {
	m := &merger{curs: make([]*cursor, len(exts))}
	for i := range exts {
		var err error
		if m.curs[i], err = s.cursor(&exts[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// next returns the smallest id any cursor is at; false when all are done.
func (m *merger) next() (id uint64, ok bool) {
	for _, c := range m.curs {
		if !c.done && (!ok || c.id < id) {
			id, ok = c.id, true
		}
	}
	return id, ok
}

// take moves every cursor at id past it and returns the entry of the
// newest extent that holds one (has false if none does: a snapshot
// record that is not live).
func (m *merger) take(id uint64) (l loc, has bool, err error) {
	for i := len(m.curs) - 1; i >= 0; i-- {
		c := m.curs[i]
		if c.done || c.id != id {
			continue
		}
		if !has {
			l, has = c.entry()
		}
		if err := c.advance(); err != nil {
			return loc{}, false, err
		}
	}
	return l, has, nil
}

// metaID returns the id of the index record b of kind k without decoding
// the rest of it.
func metaID(k int, b []byte) uint64 {
	if k == kindValueSet {
		return le.Uint64(b)
	}
	return uint64(le.Uint32(b))
}

// find looks up the committed entries of ids, sorted and all in one page,
// without building the page: what a commit's resolve needs of a page that
// is not resident and that the budget would not keep. It reads the same
// extent blocks a page load would (those between the first and the last
// id) but decodes only the records of ids and allocates nothing: at 20M
// keys, with ~18 of a page's 1 024 ids changed per commit, building and
// dropping whole pages was most of a commit's index work (session 16's
// profile: page.put, the page's slice and decoding every record were 70 s
// of tsrc.load's 113 s). out[i] and has[i] receive the entry of ids[i]
// as a loaded page would hold it.
func (s *tsrc) find(ids []uint64, out []loc, has []bool) error {
	clear(has)
	if len(ids) == 0 {
		return nil
	}
	rs := metaRecord[s.kind].Size
	return s.spans(ids[0], ids[len(ids)-1]+1, func(x *srcExtent, b []byte) {
		k := 0
		for o := 0; o+rs <= len(b) && k < len(ids); o += rs {
			id := metaID(s.kind, b[o:])
			for k < len(ids) && ids[k] < id {
				k++
			}
			if k == len(ids) || ids[k] != id {
				continue
			}
			_, l := decodeMeta[s.kind](b[o : o+rs])
			if l, ok := x.entry(l); ok {
				out[k], has[k] = l, true // a later duplicate (old extents) wins, as in load
			}
		}
	})
}

// deltaChunk is how many records a delta cursor reads at a time.
const deltaChunk = 2048

// cursor reads the records of one extent in order, deltaChunk at a time.
type cursor struct {
	s    *tsrc
	x    *srcExtent
	next uint64 // the record after the chunk read
	buf  []byte
	b    []byte // the chunk's records from the current one on
	id   uint64 // the current record's id, valid unless done
	done bool
}

func (s *tsrc) cursor(x *srcExtent) (*cursor, error) {
	c := &cursor{s: s, x: x}
	return c, c.advance()
}

// advance moves c to its next record.
func (c *cursor) advance() error {
	rs := metaRecord[c.s.kind].Size
	if len(c.b) > 0 {
		c.b = c.b[rs:]
	}
	if len(c.b) == 0 {
		if c.next >= c.x.e.count {
			c.done = true
			return nil
		}
		j := min(c.next+deltaChunk, c.x.e.count)
		b, err := c.s.read(c.x, c.next, j, &c.buf)
		if err != nil {
			return fmt.Errorf("read %s index records %d..%d of extent %d: %w", kindName[c.s.kind], c.next, j-1, c.x.e.ref, err)
		}
		c.b, c.next = b, j
	}
	c.id = metaID(c.s.kind, c.b)
	return nil
}

// entry is the table entry of c's current record.
func (c *cursor) entry() (loc, bool) {
	_, l := decodeMeta[c.s.kind](c.b[:metaRecord[c.s.kind].Size])
	return c.x.entry(l)
}

// deltas reports whether s is a snapshot followed by deltas only: what
// eachDirty's merge needs.
func (s *tsrc) deltas() bool {
	if len(s.exts) == 0 || s.exts[0].delta {
		return false
	}
	for _, x := range s.exts[1:] {
		if !x.delta {
			return false
		}
	}
	return true
}
