package h5store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"

	"github.com/cidstore/cidstore/core/port"
)

// state is one committed generation as the writer or a reader sees it: the
// commit record, the pools' segments and the id → loc tables.
type state struct {
	root  commitRec
	pools [numPools]*pool
	tabs  [numKinds]*table
}

// readRoot returns the newest valid commit record of the two slots.
func readRoot(fd *os.File, off int64) (commitRec, error) {
	buf := make([]byte, 2*commitSize)
	if _, err := fd.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return commitRec{}, fmt.Errorf("read commit records: %w", err)
	}
	var best commitRec
	found := false
	for slot := range 2 {
		c, ok, err := decodeCommit(buf[slot*commitSize:(slot+1)*commitSize], fd.Name())
		if err != nil {
			return commitRec{}, err
		}
		if ok && (!found || c.gen > best.gen) {
			c.slot = slot
			best, found = c, true
		}
	}
	if !found {
		return commitRec{}, fmt.Errorf("%w: no valid commit record in /commit", port.ErrCorrupt)
	}
	return best, nil
}

// segOpener returns the open file holding segment index of pool.
type segOpener func(pool, index int) (*os.File, error)

// buildPools lays out the pools from a commit record's segment table.
func buildPools(root *commitRec, withBitmaps bool, open segOpener) ([numPools]*pool, error) {
	var pools [numPools]*pool
	for i := range pools {
		pools[i] = newPool(i)
	}
	for _, sr := range root.segments {
		if sr.pool < 0 || sr.pool >= numPools || sr.capacity == 0 || sr.offset <= 0 ||
			(len(pools[sr.pool].segs) == 0) != (sr.index == 0) {
			return pools, fmt.Errorf("%w: bad segment %+v in commit record", port.ErrCorrupt, sr)
		}
		f, err := open(sr.pool, sr.index)
		if err != nil {
			return pools, fmt.Errorf("segment %s: %w", segmentName(sr.pool, sr.index), err)
		}
		pools[sr.pool].addSegment(f, sr.offset, sr.capacity, withBitmaps)
	}
	for i, p := range pools {
		if len(p.segs) == 0 {
			return pools, fmt.Errorf("%w: pool %s has no segment", port.ErrCorrupt, poolSpecs[i].name)
		}
	}
	return pools, nil
}

// segmentsOf lists the pools' segments in commit-record order.
func segmentsOf(pools *[numPools]*pool, names *[numPools][]int) []segRec {
	var out []segRec
	for pi, p := range pools {
		for si, s := range p.segs {
			out = append(out, segRec{offset: s.offset, capacity: s.capacity, pool: pi, index: names[pi][si]})
		}
	}
	return out
}

// segNames returns the name index of every segment, by pool.
func segNames(root *commitRec) [numPools][]int {
	var n [numPools][]int
	for _, sr := range root.segments {
		n[sr.pool] = append(n[sr.pool], sr.index)
	}
	return n
}

// readBlob reads an extent of records and verifies its CRC.
func readBlob(p *pool, e extent, what string) ([]byte, error) {
	if e.count == 0 {
		return nil, nil
	}
	fd, off, err := p.locate(e.ref, e.count)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	buf := make([]byte, e.count*uint64(p.recSize))
	if _, err := fd.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if got := crc32.Checksum(buf, castagnoli); got != e.crc {
		return nil, fmt.Errorf("read %s at %v: checksum %08x, want %08x: %w", what, e.ref, got, e.crc, port.ErrCorrupt)
	}
	return buf, nil
}

// applyIndex applies one index blob to t. A snapshot's records are clean;
// a delta's are dirty (changed since the snapshot), and freed ids stay as
// dirty tombstones so that a merged delta carries them.
func applyIndex(t *table, kind int, blob []byte, delta bool) {
	rs := metaRecord[kind].Size
	for o := 0; o+rs <= len(blob); o += rs {
		id, l := decodeMeta[kind](blob[o : o+rs])
		if delta {
			l.state |= stDirty
		} else if !l.live() {
			continue
		}
		t.set(id, l)
	}
}

// loadTable reads a kind's snapshot and deltas into a new table.
func loadTable(root *commitRec, pools *[numPools]*pool, kind int) (*table, error) {
	t := newTable()
	p := pools[metaPool[kind]]
	if root.hasSnap[kind] {
		blob, err := readBlob(p, root.snap[kind], kindName[kind]+" index snapshot")
		if err != nil {
			return nil, err
		}
		applyIndex(t, kind, blob, false)
	}
	for i, d := range root.deltas[kind] {
		blob, err := readBlob(p, d, fmt.Sprintf("%s index delta %d", kindName[kind], i))
		if err != nil {
			return nil, err
		}
		applyIndex(t, kind, blob, true)
	}
	return t, nil
}

// loadState reads everything a commit record points to except the rows.
// The writer passes withBitmaps and gets paged tables that keep
// indexBudget bytes of index pages, with the free space of the directory
// and index pools rebuilt; the data pools' free space and the tables'
// counts come from markData, which the writer runs in the background after
// Open (Store.scan). A Reader gets resident tables.
func loadState(root commitRec, withBitmaps bool, open segOpener, indexBudget int64) (*state, error) {
	pools, err := buildPools(&root, withBitmaps, open)
	if err != nil {
		return nil, err
	}
	st := &state{root: root, pools: pools}
	if !withBitmaps {
		for k := range numKinds {
			if st.tabs[k], err = loadTable(&root, &pools, k); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	if err := pools[poolDirectory].markUsed(root.dir.ref, root.dir.count); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	for k := range numKinds {
		mp := pools[metaPool[k]]
		if root.hasSnap[k] {
			if err := mp.markUsed(root.snap[k].ref, root.snap[k].count); err != nil {
				return nil, fmt.Errorf("%s index snapshot: %w", kindName[k], err)
			}
		}
		for _, d := range root.deltas[k] {
			if err := mp.markUsed(d.ref, d.count); err != nil {
				return nil, fmt.Errorf("%s index delta: %w", kindName[k], err)
			}
		}
		if st.tabs[k], err = openTable(&root, &pools, k, indexShare(k, indexBudget)); err != nil {
			return nil, err
		}
	}
	var dcap uint64
	for _, s := range pools[poolDeletions].segs {
		dcap += s.capacity
	}
	if root.deletions > dcap || root.delStart > root.deletions {
		return nil, fmt.Errorf("%w: deletion log [%d, %d) outside its capacity %d", port.ErrCorrupt, root.delStart, root.deletions, dcap)
	}
	return st, nil
}

// markData walks every table of a state loaded with bitmaps once: it
// marks each live object's extent used in its data pool (which refuses
// overlapping or out-of-range extents) and sets the tables' counts, after
// building the index pages the budget keeps (table.warm). It is
// O(objects): at 10M keys most of what reopening took. stop, when it
// returns true, ends the walk early with errScanStopped.
func (st *state) markData(stop func() bool) error {
	// Pages first: reads after a reopen find the index resident sooner.
	for _, k := range warmOrder {
		if err := st.tabs[k].warm(stop); err != nil {
			return err
		}
	}
	for k := range numKinds {
		dp := st.pools[dataPool[k]]
		err := st.tabs[k].recount(func(id uint64, l *loc) error {
			if stop() {
				return errScanStopped
			}
			if !l.live() {
				return nil
			}
			if err := dp.markUsed(l.ref, l.records()); err != nil {
				return fmt.Errorf("%s %d: %w", kindName[k], id, err) // formatted only on error: this runs per object
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// warmOrder is the order markData builds the tables' pages in: the small
// tables every read of a bucket looks up (the bucket's and its delta's
// entries) first, the value sets, by far the largest, last (10M keys: 64
// pages each of buckets and deltas, 5 859 of value sets). In kind order
// the deltas came after all the value sets, and each of the 1 000 GETs
// cidbench makes right after a 10M reopen read its bucket's delta entry
// from an index extent (988 such reads; none now).
var warmOrder = [numKinds]int{kindBucket, kindBucketDelta, kindValueSet}

// errScanStopped ends a markData walk that Close interrupted.
var errScanStopped = errors.New("free space scan stopped")

// indexShare is the part of the index budget a kind's table keeps: value
// sets outnumber buckets by far; buckets and their deltas (at most one
// per bucket) share a quarter.
func indexShare(kind int, budget int64) int64 {
	switch kind {
	case kindBucket, kindBucketDelta:
		return budget / 8
	}
	return budget - 2*(budget/8)
}

// readObject reads and verifies the rows of one bucket, value set or
// bucket delta.
func (st *state) readObject(kind int, id uint64) (loc, []byte, error) {
	l, ok, err := st.tabs[kind].get(id)
	if err != nil {
		return loc{}, nil, fmt.Errorf("read %s %d: %w", kindName[kind], id, err)
	}
	if !ok || !l.live() {
		return loc{}, nil, fmt.Errorf("read %s %d: %w", kindName[kind], id, port.ErrNotFound)
	}
	buf, err := st.readRows(kind, id, &l)
	return l, buf, err
}

// readRows reads and verifies the rows of the object version l of id.
// Buckets' and deltas' rows come from entryBuf.
func (st *state) readRows(kind int, id uint64, l *loc) ([]byte, error) {
	n := l.records()
	if n == 0 {
		if c := objectCRC(id, 0); c != l.crc {
			return nil, fmt.Errorf("read %s %d: checksum %08x, want %08x: %w", kindName[kind], id, c, l.crc, port.ErrCorrupt)
		}
		return nil, nil
	}
	p := st.pools[dataPool[kind]]
	fd, off, err := p.locate(l.ref, n)
	if err != nil {
		return nil, fmt.Errorf("read %s %d: %w", kindName[kind], id, err)
	}
	var buf []byte
	if kind == kindValueSet {
		buf = make([]byte, n*uint64(p.recSize))
	} else {
		buf = entryBuf(n * uint64(p.recSize))
	}
	if _, err := fd.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read %s %d: %w", kindName[kind], id, err)
	}
	if c := objectCRC(id, n, buf); c != l.crc {
		return nil, fmt.Errorf("read %s %d: rows at %s %v fail checksum (%08x, want %08x): %w",
			kindName[kind], id, poolSpecs[dataPool[kind]].name, l.ref, c, l.crc, port.ErrCorrupt)
	}
	return buf, nil
}

// readBucket reads a bucket whole: its base rows and, if it has a delta,
// the delta's rows, merged (port.ApplyBucketDelta) into a new buffer,
// with the delta's local depth and last compaction. A delta that fails its
// checksum or does not apply is corruption of the bucket.
func (st *state) readBucket(id uint32) (port.BucketRecord, error) {
	l, buf, err := st.readObject(kindBucket, uint64(id))
	if err != nil {
		return port.BucketRecord{}, err
	}
	b := port.BucketRecord{
		ID:            id,
		LocalDepth:    l.depth,
		SortedCount:   l.sorted,
		LastCompacted: l.lastCompacted,
		Entries:       buf,
	}
	dl, ok, err := st.tabs[kindBucketDelta].get(uint64(id))
	if err != nil {
		recycleEntries(buf)
		return port.BucketRecord{}, fmt.Errorf("read bucket %d: %w", id, err)
	}
	if !ok || !dl.live() {
		return b, nil
	}
	rows, err := st.readRows(kindBucketDelta, uint64(id), &dl)
	if err != nil {
		recycleEntries(buf)
		return port.BucketRecord{}, fmt.Errorf("read bucket %d: %w", id, err)
	}
	dst := entryBuf(uint64(len(buf) + len(rows)))
	keysDst := make([]byte, 0, len(rows)/port.EntrySize*port.KeySize)
	merged, keys, err := port.ApplyBucketDelta(dst, keysDst, buf, rows)
	recycleEntries(buf)
	recycleEntries(rows)
	if err != nil {
		return port.BucketRecord{}, fmt.Errorf("read bucket %d: its delta (%d rows at %s %v) does not apply to its base (%d rows at %v): %w: %w",
			id, dl.count, poolSpecs[poolRows].name, dl.ref, l.count, l.ref, port.ErrCorrupt, err)
	}
	b.Entries, b.DeltaKeys = merged, keys
	b.SortedCount = uint32(len(merged) / port.EntrySize)
	b.LocalDepth, b.LastCompacted = dl.depth, dl.lastCompacted
	return b, nil
}

func (st *state) readValueSet(id uint64) (port.ValueSetRecord, error) {
	l, buf, err := st.readObject(kindValueSet, id)
	if err != nil {
		return port.ValueSetRecord{}, err
	}
	vs := port.ValueSetRecord{ID: id, SortedCount: l.sorted}
	if l.count > 0 {
		n := l.count * port.ValueSize
		vs.Values = buf[:n:n]
	}
	if l.tombs > 0 {
		vs.Tombstones = buf[l.count*port.ValueSize:]
	}
	return vs, nil
}

// readDirectory reads the committed directory and checks that it has
// 1<<GlobalDepth slots, each naming a live bucket; with refs (Check), also
// that each slot's hdf5_ref is its bucket's committed rows ref.
func (st *state) readDirectory(refs bool) ([]uint32, error) {
	r := &st.root
	blob, err := readBlob(st.pools[poolDirectory], r.dir, "directory")
	if err != nil {
		return nil, err
	}
	n := len(blob) / recBucketPointer.Size
	if r.meta.GlobalDepth > 40 || uint64(n) != 1<<r.meta.GlobalDepth {
		return nil, fmt.Errorf("%w: directory has %d slots, global depth %d", port.ErrCorrupt, n, r.meta.GlobalDepth)
	}
	dir := make([]uint32, n)
	bt := st.tabs[kindBucket]
	last, lastOK := uint32(0), false
	for i := range dir {
		rec := blob[i*recBucketPointer.Size:]
		id := le.Uint32(rec)
		if !lastOK || id != last {
			l, ok, err := bt.get(uint64(id))
			if err != nil {
				return nil, fmt.Errorf("directory slot %d: %w", i, err)
			}
			if !ok || !l.live() {
				return nil, fmt.Errorf("%w: directory slot %d names bucket %d, which is not committed", port.ErrCorrupt, i, id)
			}
			if r := ref(le.Uint64(rec[4:])); refs && r != l.ref {
				return nil, fmt.Errorf("%w: directory slot %d: bucket %d's hdf5_ref is %d, its rows are at %d", port.ErrCorrupt, i, id, r, l.ref)
			}
			last, lastOK = id, true
		}
		dir[i] = id
	}
	return dir, nil
}

func (st *state) loadMeta() (port.Meta, []uint32, bool, error) {
	if !st.root.hasMeta() {
		return port.Meta{}, nil, false, nil
	}
	dir, err := st.readDirectory(false)
	if err != nil {
		return port.Meta{}, nil, false, err
	}
	return st.root.meta, dir, true, nil
}

// readDeletions reads the deletion log, records [delStart, deletions) of
// its pool, in chunks of at most 64 KiB.
func (st *state) readDeletions() ([]port.DeletionRecord, error) {
	r := &st.root
	if r.delStart > r.deletions {
		return nil, fmt.Errorf("%w: deletion log [%d, %d)", port.ErrCorrupt, r.delStart, r.deletions)
	}
	p := st.pools[poolDeletions]
	rs := uint64(p.recSize)
	out := make([]port.DeletionRecord, 0, r.deletions-r.delStart)
	buf := make([]byte, 64<<10)
	pos, base := r.delStart, uint64(0)
	for _, seg := range p.segs {
		segEnd := base + seg.capacity
		for pos >= base && pos < min(segEnd, r.deletions) {
			n := min(min(segEnd, r.deletions)-pos, uint64(len(buf))/rs)
			b := buf[:n*rs]
			if _, err := seg.f.ReadAt(b, seg.offset+int64((pos-base)*rs)); err != nil {
				return nil, fmt.Errorf("read deletion log at %d: %w", pos, err)
			}
			for o := 0; o < len(b); o += int(rs) {
				out = append(out, port.DeletionRecord{KeyHigh: le.Uint64(b[o:]), KeyLow: le.Uint64(b[o+8:]),
					ValueGroup: le.Uint64(b[o+16:]), UnixNano: int64(le.Uint64(b[o+24:]))})
			}
			pos += n
		}
		base = segEnd
	}
	if pos != r.deletions {
		return nil, fmt.Errorf("%w: deletion log ends at %d, beyond its capacity %d", port.ErrCorrupt, r.deletions, base)
	}
	return out, nil
}

func ids32(ids []uint64) []uint32 {
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}

// checkState verifies a committed state the way fsck would: the directory,
// the checksum of every bucket, bucket delta and value set, that every
// delta applies to its bucket and that none lacks one. It returns every
// problem found (at most about 100), each wrapping port.ErrCorrupt.
func checkState(st *state) error {
	var errs []error
	if st.root.hasMeta() {
		if _, err := st.readDirectory(true); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range numKinds {
		ids, err := st.tabs[k].ids()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, id := range ids {
			switch k {
			case kindBucket:
				var b port.BucketRecord
				if b, err = st.readBucket(uint32(id)); err == nil {
					recycleEntries(b.Entries)
				}
			case kindBucketDelta:
				// Its rows were read with its bucket's.
				var l loc
				ok := false
				if l, ok, err = st.tabs[kindBucket].get(id); err == nil && (!ok || !l.live()) {
					err = fmt.Errorf("%w: bucket %d has a delta but no base", port.ErrCorrupt, id)
				}
			default:
				_, _, err = st.readObject(k, id)
			}
			if err != nil {
				errs = append(errs, err)
				if len(errs) > 100 {
					return errors.Join(errs...)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// sameSegments reports whether two commit records describe the same
// segments.
func sameSegments(a, b *commitRec) bool {
	return slices.Equal(a.segments, b.segments)
}
