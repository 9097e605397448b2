package h5store

import (
	"fmt"
	"math/bits"
	"os"
	"strings"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// Pools: each is a list of large contiguous datasets ("segments") of one
// record type, allocated at creation and never filled. Objects live in runs
// of records addressed by ref (segment, record).
const (
	poolRows       = iota // /buckets/rows: HashEntry
	poolValues            // /values/data: Value
	poolDirectory         // /directory: BucketPointer
	poolBucketMeta        // /buckets/meta: BucketMeta
	poolValueMeta         // /values/meta: ValueSetMeta
	poolDeletions         // /deletion_log: DeletionRecord, append-only
	numPools
)

type poolSpec struct {
	name    string     // dataset of segment 0; segment k>0 is name_%04d
	rec     *h5.Record // record type
	granule uint64     // records per allocation bit (0: append-only pool)
	share   int64      // initial size = SegmentBytes/share
}

// Value granules are 4 records (64 bytes): most value sets hold 3–5
// values, and with 32-record granules each took 512 bytes on disk and its
// own pwrite. Measured on W1 at 1M keys (cidbench, same run as Pebble):
// 32 → 4 took durable ingest from 433k to 653k pairs/s and disk from 894
// to 475 MB; 1 record measured 568k and 460 MB.
var poolSpecs = [numPools]poolSpec{
	poolRows:       {"/buckets/rows", recHashEntry, 8, 1},
	poolValues:     {"/values/data", recValue, 4, 2},
	poolDirectory:  {"/directory", recBucketPointer, 64, 16},
	poolBucketMeta: {"/buckets/meta", recBucketMeta, 16, 16},
	poolValueMeta:  {"/values/meta", recValueSetMeta, 16, 16},
	poolDeletions:  {"/deletion_log", recDeletion, 0, 64},
}

// The pools of each kind's index records and rows: a bucket delta's are
// those of buckets.
var metaPool = [numKinds]int{poolBucketMeta, poolValueMeta, poolBucketMeta}
var dataPool = [numKinds]int{poolRows, poolValues, poolRows}

// segmentName is the dataset of segment index of a pool.
func segmentName(pool, index int) string {
	if index == 0 {
		return poolSpecs[pool].name
	}
	return fmt.Sprintf("%s_%04d", poolSpecs[pool].name, index)
}

// segmentFile is the file holding segment index of a pool: segment 0 of
// every pool is in the store file itself, later ones each in a sidecar HDF5
// file next to it (store.h5.buckets-rows_0001.h5 holds /buckets/rows_0001).
func segmentFile(path string, pool, index int) string {
	if index == 0 {
		return path
	}
	return path + "." + strings.ReplaceAll(strings.TrimPrefix(segmentName(pool, index), "/"), "/", "-") + ".h5"
}

// segment is one dataset of a pool.
type segment struct {
	f        *os.File // file holding the segment
	offset   int64    // file offset of record 0
	capacity uint64   // records
	free     *bitmap
	hint     uint64 // next-fit cursor, in granules
}

// pool is the in-memory view of one pool. Only the writer builds bitmaps.
type pool struct {
	id      int
	recSize int64
	granule uint64
	segs    []*segment
	cur     int // segment where next-fit starts
	// run is the free extent new versions are cut from, in order, so
	// that a commit's small objects land next to each other and go out
	// in few large pwrites instead of one per reused hole.
	run struct {
		seg     int
		at, end uint64 // granules
	}
	noRuns bool // no free run of minRun granules: until space is freed
}

// runBytes is the smallest free extent the allocator starts a run in;
// smaller holes are used only when no segment has one.
const runBytes = 64 << 10

func newPool(id int) *pool {
	return &pool{id: id, recSize: int64(poolSpecs[id].rec.Size), granule: poolSpecs[id].granule}
}

func (p *pool) addSegment(f *os.File, offset int64, capacity uint64, withBitmap bool) *segment {
	s := &segment{f: f, offset: offset, capacity: capacity}
	if withBitmap && p.granule > 0 {
		s.free = newBitmap(capacity / p.granule)
		p.noRuns = false
	}
	p.segs = append(p.segs, s)
	return s
}

func (p *pool) capacity() uint64 {
	var n uint64
	for _, s := range p.segs {
		n += s.capacity
	}
	return n
}

// locate returns the file and offset of n records at r, checking that they
// lie inside the segment.
func (p *pool) locate(r ref, n uint64) (*os.File, int64, error) {
	if r.seg() >= len(p.segs) {
		return nil, 0, fmt.Errorf("%w: ref %v outside %s (%d segments)", port.ErrCorrupt, r, poolSpecs[p.id].name, len(p.segs))
	}
	s := p.segs[r.seg()]
	if r.rec()+n > s.capacity || r.rec()+n < r.rec() {
		return nil, 0, fmt.Errorf("%w: ref %v+%d beyond segment %d of %s (%d records)", port.ErrCorrupt, r, n, r.seg(), poolSpecs[p.id].name, s.capacity)
	}
	return s.f, s.offset + int64(r.rec())*p.recSize, nil
}

func (p *pool) granules(n uint64) uint64 { return (n + p.granule - 1) / p.granule }

// alloc finds n free records (n > 0): the next ones of the current run,
// else a new run (a free extent of at least runBytes, next-fit), else
// next-fit over the segments for any hole that fits; ok is false when no
// segment has room.
func (p *pool) alloc(n uint64) (r ref, ok bool) {
	g := p.granules(n)
	if r, ok := p.allocRun(g); ok {
		return r, true
	}
	si, at, ok := p.nextFit(g)
	if !ok {
		return 0, false
	}
	s := p.segs[si]
	s.free.set(at, g)
	s.hint = at + g
	return mkRef(si, at*p.granule), true
}

// nextFit finds the first run of want free granules at or after the hint
// of the segment last used, trying the other segments in turn.
func (p *pool) nextFit(want uint64) (si int, at uint64, ok bool) {
	for i := range len(p.segs) {
		si := (p.cur + i) % len(p.segs)
		s := p.segs[si]
		if s.free == nil || want > s.free.n {
			continue
		}
		if at := s.free.find(want, s.hint); at >= 0 {
			p.cur = si
			return si, uint64(at), true
		}
	}
	return 0, 0, false
}

// allocRun cuts g granules from the current run, starting a new one when
// it has too little left.
func (p *pool) allocRun(g uint64) (ref, bool) {
	if p.run.end-p.run.at < g {
		if !p.startRun(g) {
			return 0, false
		}
	}
	s := p.segs[p.run.seg]
	at := p.run.at
	s.free.set(at, g)
	p.run.at += g
	return mkRef(p.run.seg, at*p.granule), true
}

// startRun makes the next free extent of at least max(g, runBytes) the
// current run, next-fit over the segments. Having found none, it does not
// search again until space is released or added: the search scans the
// whole bitmap.
func (p *pool) startRun(g uint64) bool {
	if p.noRuns {
		return false
	}
	want := max(g, uint64(runBytes)/(p.granule*uint64(p.recSize)))
	if si, at, ok := p.nextFit(want); ok {
		s := p.segs[si]
		end := s.free.nextSet(at+want, s.free.n)
		p.run.seg, p.run.at, p.run.end = si, at, end
		s.hint = end
		return true
	}
	p.run.at, p.run.end = 0, 0
	p.noRuns = true
	return false
}

// markUsed claims an extent found in a committed state; an extent outside
// its segment or overlapping another is corruption.
func (p *pool) markUsed(r ref, n uint64) error {
	if n == 0 {
		return nil
	}
	if _, _, err := p.locate(r, n); err != nil {
		return err
	}
	s := p.segs[r.seg()]
	if s.free == nil {
		return nil
	}
	if r.rec()%p.granule != 0 {
		return fmt.Errorf("%w: ref %v not aligned to %d records", port.ErrCorrupt, r, p.granule)
	}
	g0, g := r.rec()/p.granule, p.granules(n)
	if s.free.anySet(g0, g) {
		return fmt.Errorf("%w: extent %v+%d in %s overlaps another object", port.ErrCorrupt, r, n, poolSpecs[p.id].name)
	}
	s.free.set(g0, g)
	return nil
}

// release returns an extent to the free space.
func (p *pool) release(r ref, n uint64) {
	if n == 0 || r.seg() >= len(p.segs) {
		return
	}
	s := p.segs[r.seg()]
	if s.free == nil {
		return
	}
	s.free.clear(r.rec()/p.granule, p.granules(n))
	p.noRuns = false
}

// bitmap tracks used granules of a segment, one bit each (1 = used).
type bitmap struct {
	w []uint64
	n uint64
}

func newBitmap(n uint64) *bitmap { return &bitmap{w: make([]uint64, (n+63)/64), n: n} }

func (b *bitmap) get(i uint64) bool { return b.w[i>>6]&(1<<(i&63)) != 0 }

func (b *bitmap) set(i, n uint64) {
	for ; n > 0 && i&63 != 0; i, n = i+1, n-1 {
		b.w[i>>6] |= 1 << (i & 63)
	}
	for ; n >= 64; i, n = i+64, n-64 {
		b.w[i>>6] = ^uint64(0)
	}
	for ; n > 0; i, n = i+1, n-1 {
		b.w[i>>6] |= 1 << (i & 63)
	}
}

func (b *bitmap) clear(i, n uint64) {
	for ; n > 0 && i&63 != 0; i, n = i+1, n-1 {
		b.w[i>>6] &^= 1 << (i & 63)
	}
	for ; n >= 64; i, n = i+64, n-64 {
		b.w[i>>6] = 0
	}
	for ; n > 0; i, n = i+1, n-1 {
		b.w[i>>6] &^= 1 << (i & 63)
	}
}

func (b *bitmap) anySet(i, n uint64) bool {
	return b.nextSet(i, i+n) < i+n
}

// nextSet returns the first used bit in [i, end), or end.
func (b *bitmap) nextSet(i, end uint64) uint64 {
	for i < end {
		w := b.w[i>>6] >> (i & 63)
		if w != 0 {
			j := i + uint64(bits.TrailingZeros64(w))
			return min(j, end)
		}
		i = (i | 63) + 1
	}
	return end
}

// nextClear returns the first free bit in [i, end), or end.
func (b *bitmap) nextClear(i, end uint64) uint64 {
	for i < end {
		w := ^b.w[i>>6] >> (i & 63)
		if w != 0 {
			j := i + uint64(bits.TrailingZeros64(w))
			return min(j, end)
		}
		i = (i | 63) + 1
	}
	return end
}

// findIn returns the start of the first run of n free bits in [lo, hi).
func (b *bitmap) findIn(n, lo, hi uint64) int64 {
	for i := lo; i+n <= hi; {
		i = b.nextClear(i, hi)
		if i+n > hi {
			return -1
		}
		j := b.nextSet(i, i+n)
		if j == i+n {
			return int64(i)
		}
		i = j + 1
	}
	return -1
}

// find is next-fit: the first run of n free bits at or after hint, wrapping
// around once.
func (b *bitmap) find(n, hint uint64) int64 {
	if hint > b.n {
		hint = 0
	}
	if at := b.findIn(n, hint, b.n); at >= 0 {
		return at
	}
	return b.findIn(n, 0, min(b.n, hint+n))
}
