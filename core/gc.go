package cidstore

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// Garbage collection of backend space (DESIGN.md §7, §8).
//
// Core frees a value set or bucket in the checkpoint after it stops using
// it (dropSet, freeBucket), so space leaks only when that free is lost: a
// failed commit, a crash between a deletion and the checkpoint that would
// have freed the id on a backend whose own recovery kept it, or a bug. GC
// finds such orphans two ways:
//
//   - the deletion log (port.DeletionLogReader, optional): every record that
//     names a value set is checked: an id that is not live in core but that
//     the backend still holds is an orphan. The records read are then
//     trimmed by the next checkpoint (Checkpoint.TrimDeletions).
//   - a full scan (port.Lister, optional): every value set id the backend
//     lists that no live key references, and every bucket id it lists that
//     is not a live bucket, is an orphan. It catches what the log missed.
//
// Orphans are freed by the next checkpoint (they join s.freedSets and
// s.freedBuckets), so GC itself never writes to the backend and a crash
// during GC loses nothing but the pass. GC is idempotent: a second pass
// finds the ids already queued (or already freed) and queues nothing.
//
// Locking: a pass holds ckptMu while it checks the deletion log, and
// again for each page of the backend's listing it checks, so that the
// backend stays at one checkpoint while an answer from it is used (no
// Commit can interleave); within a hold it takes the writer lock only for
// bounded chunks of liveness checks. A full scan first collects the value
// set ids that live keys reference (referencedSets) without ckptMu:
// reading every evicted bucket back takes seconds to minutes on a large
// store, and checkpoints (and writers waiting for one) must not wait that
// long. gcMu serializes passes.

// gcScanEvery: the scheduler's GC passes include a full scan every this
// many passes (the first one included).
const gcScanEvery = 10

// gcChunk is the number of ids checked per writer-lock hold, and listed
// per page of port.Lister.ValueSetIDs.
const gcChunk = 4096

// heldSets returns the value set ids named by the deletion records recs
// that the backend holds. With a Lister it pages through the listing from
// each id not yet answered (a page answers every id up to its last), so
// that a few records cost a few small pages, not a listing of every set;
// without one it reads each set.
func heldSets(b port.Backend, l port.Lister, recs []port.DeletionRecord) (map[uint64]struct{}, error) {
	var ids []uint64
	for _, r := range recs {
		if r.ValueGroup != 0 {
			ids = append(ids, r.ValueGroup)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	held := make(map[uint64]struct{}, len(ids))
	if l == nil {
		for _, id := range ids {
			if _, err := b.ReadValueSet(id); err == nil {
				held[id] = struct{}{}
			}
		}
		return held, nil
	}
	for len(ids) > 0 {
		page, err := l.ValueSetIDs(ids[0]-1, gcChunk)
		if err != nil {
			return nil, fmt.Errorf("list value sets: %w", err)
		}
		end := len(page) < gcChunk // the page holds every id from ids[0] on
		for len(ids) > 0 && (end || ids[0] <= page[len(page)-1]) {
			if _, ok := slices.BinarySearch(page, ids[0]); ok {
				held[ids[0]] = struct{}{}
			}
			ids = ids[1:]
		}
	}
	return held, nil
}

// GCStats describes one garbage-collection pass.
type GCStats struct {
	LogRecords      int   // deletion-log records examined
	OrphanValueSets int   // value sets queued to be freed
	OrphanBuckets   int   // buckets queued to be freed
	ReclaimedBytes  int64 // persisted bytes of the orphans
	FullScan        bool  // the pass included a full scan
}

// gcState is the Store's GC bookkeeping (writer lock held).
type gcState struct {
	trim uint64 // deletion-log records the next checkpoint trims
}

// GC runs one garbage-collection pass with a full scan and returns what it
// found. Orphans are freed, and processed deletion-log records trimmed, by
// the next checkpoint. Readers, writers and checkpoints keep running while
// it reads the buckets back; checkpoints wait for the rest of the pass (the
// deletion log and the backend's listing).
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	if s.closed.Load() {
		return GCStats{}, ErrClosed
	}
	if s.opts.ReadOnly {
		return GCStats{}, ErrReadOnly
	}
	return s.gc(ctx, true)
}

func (s *Store) gc(ctx context.Context, full bool) (GCStats, error) {
	var st GCStats
	start := time.Now()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.closed.Load() {
		return st, ErrClosed
	}
	lister, _ := s.backend.(port.Lister)
	full = full && lister != nil
	var refs referenced
	if full {
		var err error
		if refs, err = s.referencedSets(ctx); err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
	}
	q := &gcQueue{s: s}
	if dl, ok := s.backend.(port.DeletionLogReader); ok {
		n, err := s.gcLog(ctx, q, dl, lister)
		st.LogRecords = n
		if err != nil {
			return st, err
		}
	}
	if full {
		st.FullScan = true
		if err := s.scanOrphans(ctx, q, lister, refs); err != nil {
			return st, err
		}
		s.maint.stats.gcScans.Add(1)
		s.maint.stats.gcScanNs.Store(int64(time.Since(start)))
	}
	s.failpoint("maint.gc")
	st.OrphanValueSets, st.OrphanBuckets = len(q.freedSets), len(q.freedBuckets)
	st.ReclaimedBytes = q.bytes
	if n := st.OrphanValueSets + st.OrphanBuckets; n > 0 {
		s.maint.stats.gc.add(start, int(st.ReclaimedBytes))
		s.log.Info("gc: orphans queued for the next checkpoint", "value_sets", st.OrphanValueSets, "buckets", st.OrphanBuckets, "bytes", st.ReclaimedBytes)
	}
	return st, nil
}

// measure adds to q.bytes the persisted bytes of the orphans queued since
// the hold began, when it held sets and buckets orphans (ckptMu held: no
// checkpoint has freed them yet).
func (q *gcQueue) measure(sets, buckets int) {
	b := q.s.backend
	for _, id := range q.freedSets[sets:] {
		if r, err := b.ReadValueSet(id); err == nil {
			q.bytes += int64(len(r.Values) + len(r.Tombstones))
		}
	}
	for _, id := range q.freedBuckets[buckets:] {
		if r, err := b.ReadBucket(id); err == nil {
			q.bytes += int64(len(r.Entries))
		}
	}
}

// gcLog checks the deletion log's records (one ckptMu hold) and returns
// how many it read.
func (s *Store) gcLog(ctx context.Context, q *gcQueue, dl port.DeletionLogReader, lister port.Lister) (int, error) {
	if err := s.lockGC(); err != nil {
		return 0, err
	}
	defer s.unlockGC(time.Now())
	recs, err := dl.DeletionLog()
	if err != nil {
		return 0, fmt.Errorf("gc: read deletion log: %w", err)
	}
	held, err := heldSets(s.backend, lister, recs)
	if err != nil {
		return len(recs), fmt.Errorf("gc: %w", err)
	}
	var cands []port.DeletionRecord
	for _, r := range recs {
		if _, ok := held[r.ValueGroup]; ok {
			cands = append(cands, r)
		}
	}
	// A value set id is never reused and belongs to one key: it is
	// live exactly when that key's entry still names it.
	err = chunked(ctx, s, cands, func(r port.DeletionRecord) error {
		live, err := s.keyNamesSet(E{r.KeyHigh, r.KeyLow}, r.ValueGroup)
		if err == nil {
			q.set(r.ValueGroup, live)
		}
		return err
	})
	if err != nil {
		return len(recs), fmt.Errorf("gc: %w", err)
	}
	s.wmu.Lock()
	s.gcs.trim = max(s.gcs.trim, uint64(len(recs)))
	s.wmu.Unlock()
	q.measure(0, 0)
	return len(recs), nil
}

// lockGC takes ckptMu for a GC step, unless the store closed.
func (s *Store) lockGC() error {
	s.ckptMu.Lock()
	if s.closed.Load() {
		s.ckptMu.Unlock()
		return ErrClosed
	}
	return nil
}

// unlockGC releases the checkpoint lock that a GC pass took at locked and
// records the hold.
func (s *Store) unlockGC(locked time.Time) {
	held := int64(time.Since(locked))
	s.ckptMu.Unlock()
	m := &s.maint.stats.gcHoldMaxNs
	for old := m.Load(); held > old && !m.CompareAndSwap(old, held); old = m.Load() {
	}
}

// gcQueue queues orphans for the next checkpoint, skipping ids the writer
// (or this pass) already queued, so that nothing is freed twice. Its view
// of the queues is valid while ckptMu is held; a checkpoint in between
// takes them (and frees their ids, which the backend then no longer
// lists), so sync starts over when one ran.
type gcQueue struct {
	s                    *Store
	seq                  uint64 // s.ckptSeq when pend was built
	pendSets             map[uint64]struct{}
	pendBuckets          map[uint32]struct{}
	seenSets, seenBucket int // prefixes of s.freedSets, s.freedBuckets in the maps
	freedSets            []uint64
	freedBuckets         []uint32
	bytes                int64 // persisted bytes of freedSets and freedBuckets
}

// sync adds what the writer queued since the last call (writer lock and
// ckptMu held).
func (q *gcQueue) sync() {
	s := q.s
	if q.pendSets == nil || q.seq != s.ckptSeq {
		q.seq = s.ckptSeq
		q.pendSets, q.pendBuckets = map[uint64]struct{}{}, map[uint32]struct{}{}
		q.seenSets, q.seenBucket = 0, 0
	}
	for _, id := range s.freedSets[q.seenSets:] {
		q.pendSets[id] = struct{}{}
	}
	q.seenSets = len(s.freedSets)
	for _, id := range s.freedBuckets[q.seenBucket:] {
		q.pendBuckets[id] = struct{}{}
	}
	q.seenBucket = len(s.freedBuckets)
}

// chunked runs fn over ids in chunks, each under the writer lock.
func chunked[T any](ctx context.Context, s *Store, ids []T, fn func(T) error) error {
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(ids), gcChunk)
		s.wmu.Lock()
		if s.closed.Load() {
			s.wmu.Unlock()
			return ErrClosed
		}
		for _, id := range ids[:n] {
			if err := fn(id); err != nil {
				s.wmu.Unlock()
				return err
			}
		}
		s.wmu.Unlock()
		ids = ids[n:]
	}
	return nil
}

// set queues value set id unless it is live or already queued (writer
// lock held).
func (q *gcQueue) set(id uint64, live bool) {
	s := q.s
	q.sync()
	if _, ok := q.pendSets[id]; ok || live || s.sets.lookup(id) != nil {
		return
	}
	q.pendSets[id] = struct{}{}
	s.freedSets = append(s.freedSets, id)
	q.seenSets = len(s.freedSets)
	q.freedSets = append(q.freedSets, id)
}

func (q *gcQueue) buckets(ctx context.Context, ids []uint32) error {
	s := q.s
	return chunked(ctx, s, ids, func(id uint32) error {
		q.sync()
		if _, ok := q.pendBuckets[id]; ok || s.gcBucketLive(id) {
			return nil
		}
		q.pendBuckets[id] = struct{}{}
		s.freedBuckets = append(s.freedBuckets, id)
		q.seenBucket = len(s.freedBuckets)
		q.freedBuckets = append(q.freedBuckets, id)
		return nil
	})
}

// keyNamesSet reports whether key's entry names value set id (writer lock
// held); it loads key's bucket if needed.
func (s *Store) keyNamesSet(key E, id uint64) (bool, error) {
	h := s.hash(key)
	b := s.bucketFor(h)
	if err := s.loadBucket(b); err != nil {
		return false, err
	}
	i := b.find(key, tagOf(h))
	return i >= 0 && b.entries[i].spilled() && b.entries[i].spillID() == id, nil
}

// idSet is a set of value set ids: a bitmap below the id counter at its
// creation (ids are dense, a counter from 1, so a bit per id ever
// allocated is 64 times less than a sorted list of the live ones, and a
// full scan's memory stays a small fraction of the store's), and a map for
// any id past it, which only a damaged record could name: such an id
// never sizes the bitmap.
type idSet struct {
	bits  []uint64
	extra map[uint64]struct{}
}

func newIDSet(limit uint64) idSet { return idSet{bits: make([]uint64, limit/64+1)} }

func (m *idSet) add(id uint64) {
	if w := id / 64; w < uint64(len(m.bits)) {
		m.bits[w] |= 1 << (id % 64)
		return
	}
	if m.extra == nil {
		m.extra = map[uint64]struct{}{}
	}
	m.extra[id] = struct{}{}
}

// union adds o's ids to m.
func (m *idSet) union(o *idSet) {
	for i, w := range o.bits {
		if i < len(m.bits) {
			m.bits[i] |= w
			continue
		}
		for ; w != 0; w &= w - 1 {
			m.add(uint64(i)*64 + uint64(bits.TrailingZeros64(w)))
		}
	}
	for id := range o.extra {
		m.add(id)
	}
}

func (m *idSet) has(id uint64) bool {
	if w := id / 64; w < uint64(len(m.bits)) {
		return m.bits[w]&(1<<(id%64)) != 0
	}
	_, ok := m.extra[id]
	return ok
}

// referenced is what a full scan found live keys to reference: every id
// below limit that a key referenced when the walk began is in ids.
type referenced struct {
	ids   idSet
	limit uint64 // the value set id counter when the walk began
}

// gcWalk records, for the full scan in progress, the buckets loaded while
// it reads evicted ones back, and the value set ids they referenced when
// loaded (see referencedSets).
type gcWalk struct {
	mu     sync.Mutex
	loaded map[uint32]struct{}
	ids    idSet
}

// sawLoad records that bucket id was loaded with entries (b.mu held by the
// loader, a reader or the writer).
func (w *gcWalk) sawLoad(id uint32, entries []entry) {
	w.mu.Lock()
	w.loaded[id] = struct{}{}
	for i := range entries {
		if e := &entries[i]; e.spilled() {
			w.ids.add(e.spillID())
		}
	}
	w.mu.Unlock()
}

// referencedSets returns the value set ids named by the entries of every
// live bucket, without ckptMu: checkpoints run during the walk.
//
// The resident buckets are walked in one writer-lock hold (T0). Each
// bucket evicted at T0 is then read back from the backend, without being
// cached. Soundness: a set id below the counter at T0 that a live key
// references at any later time was referenced by that key at T0 (ids are
// never reused and belong to one key), from a bucket that was resident
// (walked) or evicted. An evicted bucket's committed record changes only
// after the bucket is loaded (a commit writes loaded buckets only; a split
// or merge loads what it moves), and every load during the walk is
// recorded with the ids it saw (gcWalk.sawLoad, from readBucket): the
// first load of an evicted bucket sees its T0 entries. So a read of an
// evicted bucket that no load preceded returns its T0 entries, and one that
// a load preceded is discarded: its ids are already in the walk, and the
// read may have raced a commit of the bucket (port.Loader allows it to
// fail then). Ids allocated after T0 are not covered: the caller must not
// free them (they wait for the next scan).
func (s *Store) referencedSets(ctx context.Context) (referenced, error) {
	var evicted []uint32
	s.wmu.Lock()
	limit := s.nextVSID
	ids := newIDSet(limit)
	w := &gcWalk{loaded: map[uint32]struct{}{}, ids: newIDSet(limit)}
	s.gcw.Store(w) // before any bucket is seen unloaded
	defer s.gcw.Store(nil)
	for _, b := range s.buckets {
		if b == nil {
			continue
		}
		b.mu.RLock() // readers load buckets and sets under b.mu
		if b.loaded.Load() {
			for i := range b.entries {
				if e := &b.entries[i]; e.spilled() {
					ids.add(e.spillID())
				}
			}
		} else {
			evicted = append(evicted, b.id)
		}
		b.mu.RUnlock()
	}
	s.wmu.Unlock()
	for _, id := range evicted {
		if err := ctx.Err(); err != nil {
			return referenced{}, err
		}
		if s.closed.Load() {
			return referenced{}, ErrClosed
		}
		s.failpoint("gc.walk")
		if w.sawBucket(id) {
			continue
		}
		rec, err := s.backend.ReadBucket(id)
		// Whatever a read returned once the bucket was loaded (a commit may
		// have been writing it) is discarded.
		if w.sawBucket(id) {
			continue
		}
		if err != nil {
			return referenced{}, fmt.Errorf("read bucket %d: %w", id, err)
		}
		for k := 0; k+port.EntrySize <= len(rec.Entries); k += port.EntrySize {
			e, err := decodeEntry(rec.Entries[k : k+port.EntrySize])
			if err != nil {
				return referenced{}, fmt.Errorf("bucket %d entry %d: %w", id, k/port.EntrySize, err)
			}
			if e.spilled() {
				ids.add(e.spillID())
			}
		}
	}
	w.mu.Lock()
	ids.union(&w.ids)
	w.mu.Unlock()
	return referenced{ids: ids, limit: limit}, nil
}

// sawBucket reports whether bucket id was loaded since the walk began.
func (w *gcWalk) sawBucket(id uint32) bool {
	w.mu.Lock()
	_, ok := w.loaded[id]
	w.mu.Unlock()
	return ok
}

// gcBucketLive reports whether id is a live bucket (writer lock held).
func (s *Store) gcBucketLive(id uint32) bool {
	return int(id) < len(s.buckets) && s.buckets[id] != nil
}

// scanOrphans is the rest of the full scan: the backend's value set ids
// that no live key references and its bucket ids that are not live buckets
// are queued on q, to be freed by the next checkpoint. The listing is
// walked a page at a time, each page listed and checked in one ckptMu
// hold; checkpoints run between pages. That is sound because refs holds
// every id below refs.limit that a key referenced when the walk began, an
// id below it that no key referenced then is never referenced again (ids
// are not reused), and one the writer has dropped since is either still
// queued (q skips it) or freed (no longer listed). Ids allocated since the
// walk began are left to the next scan.
func (s *Store) scanOrphans(ctx context.Context, q *gcQueue, lister port.Lister, refs referenced) error {
	for after := uint64(0); ; {
		s.failpoint("gc.page")
		page, err := s.scanPage(ctx, q, lister, refs, after)
		if err != nil {
			return err
		}
		if len(page) < gcChunk {
			break
		}
		after = page[len(page)-1]
	}
	if err := s.lockGC(); err != nil {
		return err
	}
	defer s.unlockGC(time.Now())
	ids, err := lister.BucketIDs()
	if err != nil {
		return fmt.Errorf("gc: list buckets: %w", err)
	}
	n := len(q.freedBuckets)
	err = q.buckets(ctx, ids)
	q.measure(len(q.freedSets), n)
	return err
}

// scanPage lists and checks the page of value set ids after after.
func (s *Store) scanPage(ctx context.Context, q *gcQueue, lister port.Lister, refs referenced, after uint64) ([]uint64, error) {
	if err := s.lockGC(); err != nil {
		return nil, err
	}
	defer s.unlockGC(time.Now())
	page, err := lister.ValueSetIDs(after, gcChunk)
	if err != nil {
		return nil, fmt.Errorf("gc: list value sets: %w", err)
	}
	n := len(q.freedSets)
	err = chunked(ctx, s, page, func(id uint64) error {
		if id < refs.limit || id >= s.nextVSID { // past the counter: never allocated
			q.set(id, refs.ids.has(id))
		}
		return nil
	})
	q.measure(n, len(q.freedBuckets))
	return page, err
}

// takeTrim hands the pending deletion-log trim to the checkpoint being
// frozen (writer lock held).
func (s *Store) takeTrim() uint64 {
	n := s.gcs.trim
	s.gcs.trim = 0
	return n
}

// restoreTrim gives a failed checkpoint's trim back (writer lock held):
// the committed log was not trimmed, and any later GC pass read it whole,
// so the larger count is right.
func (s *Store) restoreTrim(n uint64) { s.gcs.trim = max(s.gcs.trim, n) }
