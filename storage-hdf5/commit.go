package h5store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// Failpoints: Commit calls Store.failpoint with these names; the crash
// tests kill the process there.
const (
	fpRowsWritten    = "h5.commit.rows-written"  // every new row written, not yet fsynced
	fpSyncing        = "h5.commit.syncing"       // in an fsync of Commit, mu released
	fpBeforeRoot     = "h5.commit.before-root"   // rows fsynced, commit record not written
	fpAfterRoot      = "h5.commit.after-root"    // commit record written, not yet fsynced
	fpSegmentCreated = "h5.grow.segment-created" // segment file closed by HDF5, not yet synced and renamed
	fpSegmentReady   = "h5.grow.segment-ready"   // segment file in place, not yet named by a commit record
)

// Commit applies cp atomically and durably:
//
//  1. every new bucket, value set, directory and index version is written
//     to free space with pwrite (live rows are never overwritten);
//  2. fsync;
//  3. the new commit record goes to the /commit slot that does not hold
//     the current one;
//  4. fsync.
//
// A crash before 3 completes leaves the old record the newest valid one; a
// torn record fails its CRC. Space the old state used is reused only after
// the new record is durable and ReuseDelayCommits more commits. An error
// before step 2 rolls everything back and the Store stays usable; a failed
// fsync, or an error in steps 3–4, makes the Store refuse further commits
// (ErrFailed) until reopened: the committed state on disk is then the
// previous one or, after step 3, possibly the new one.
func (s *Store) Commit(cp *port.Checkpoint) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	// cmu keeps Close and other commits out, so closed and failed can be
	// read here without mu; the txn takes mu only around changes readers
	// can see (txn.lock), so reads proceed while it writes and syncs.
	if err := s.usable(); err != nil {
		return err
	}
	if s.failed != nil {
		return fmt.Errorf("commit: %w: %w", ErrFailed, s.failed)
	}
	if err := s.waitScan(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if cp == nil {
		return errors.New("commit: nil checkpoint")
	}
	lsn := cp.Meta.CheckpointLSN
	if cp.Full {
		// Applied under mu (below), so its stream runs first: Stream must
		// not run under a lock the Loader takes.
		if err := cp.Collect(); err != nil {
			return fmt.Errorf("commit lsn %d: checkpoint stream: %w", lsn, err)
		}
	}
	if err := validateCheckpoint(cp); err != nil {
		return fmt.Errorf("commit lsn %d: %w", lsn, err)
	}
	if r := &s.st.root; cp.TrimDeletions > r.deletions-r.delStart {
		return fmt.Errorf("commit lsn %d: trim %d deletion records of a %d-record log",
			lsn, cp.TrimDeletions, r.deletions-r.delStart)
	}
	tx := s.newTxn(cp)
	defer func() { s.spareAllocs = tx.allocs[:0] }()
	if cp.Full {
		// A full checkpoint replaces the tables at once: readers wait for
		// it (it happens when a store is created).
		tx.exclusive = true
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if err := tx.apply(); err != nil {
		if tx.rootWritten || tx.poisoned {
			s.failed = err
			return fmt.Errorf("commit lsn %d: %w: %w", lsn, ErrFailed, err)
		}
		tx.lock()
		tx.rollback()
		tx.unlock()
		return fmt.Errorf("commit lsn %d: %w", lsn, err)
	}
	for _, t := range s.st.tabs {
		t.absorb()
	}
	tx.lock()
	tx.finish()
	tx.unlock()
	return nil
}

func validateCheckpoint(cp *port.Checkpoint) error {
	var errs []error
	d := cp.Meta.GlobalDepth
	if d > 31 {
		errs = append(errs, fmt.Errorf("global depth %d is over 31", d))
	} else if len(cp.Directory) != 1<<d {
		errs = append(errs, fmt.Errorf("directory has %d slots, want 1<<%d", len(cp.Directory), d))
	}
	for i := range cp.Buckets {
		if err := validateBucket(&cp.Buckets[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range cp.ValueSets {
		if err := validateValueSet(&cp.ValueSets[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("and %d more", len(errs)-10))
	}
	return errors.Join(errs...)
}

func validateBucket(b *port.BucketRecord) error {
	n := len(b.Entries) / port.EntrySize
	if len(b.Entries)%port.EntrySize != 0 || n > math.MaxUint32 || int(b.SortedCount) > n {
		return fmt.Errorf("bucket %d: %d entry bytes, sorted count %d", b.ID, len(b.Entries), b.SortedCount)
	}
	if b.Delta {
		// port.ApplyBucketDelta checks the same when the bucket is read;
		// its base is checked then (reading it here would cost a read per
		// delta).
		for o := port.EntrySize; o < len(b.Entries); o += port.EntrySize {
			if !keyLess(b.Entries[o-port.EntrySize:], b.Entries[o:]) {
				return fmt.Errorf("bucket %d: delta row %d does not follow row %d in key order", b.ID, o/port.EntrySize, o/port.EntrySize-1)
			}
		}
	}
	return nil
}

// keyLess reports whether the key of row a (high, then low word) is
// before row b's, port's key order.
func keyLess(a, b []byte) bool {
	ah, bh := le.Uint64(a), le.Uint64(b)
	if ah != bh {
		return ah < bh
	}
	return le.Uint64(a[8:]) < le.Uint64(b[8:])
}

func validateValueSet(v *port.ValueSetRecord) error {
	if len(v.Values)%port.ValueSize != 0 || len(v.Tombstones)%port.ValueSize != 0 ||
		int(v.SortedCount) > len(v.Values)/port.ValueSize {
		return fmt.Errorf("value set %d: %d value bytes, %d tombstone bytes, sorted count %d",
			v.ID, len(v.Values), len(v.Tombstones), v.SortedCount)
	}
	return nil
}

// txn is one Commit in progress.
type txn struct {
	s           *Store
	cp          *port.Checkpoint
	gen         uint64
	root        commitRec // the record being built
	w           *pwriter
	allocs      []pext           // released again on rollback
	frees       []pext           // released after the commit is durable
	saved       [numKinds]*idSet // ids this commit changes
	counts      [numKinds][2]int // live and dirty of each table before it
	oldTabs     [numKinds]*table // tables replaced by a Full checkpoint
	src         [numKinds]*tsrc  // each table's index extents after it
	snapshotted [numKinds]bool
	rootWritten bool   // the durable state is unknown from here on
	poisoned    bool   // an fsync failed
	chunk       []byte // blobWriter buffer
	// exclusive is set when the txn holds the Store's mu throughout (full
	// checkpoints, commitStream); otherwise it takes mu only to change
	// what readers see: table entries and pool segment lists (lock).
	exclusive bool
	staged    []stagedLoc // new versions not yet in the tables (publish)
	// dirRefs are the buckets whose refs writeDirectory looked up, for
	// Store.bucketRefs once the commit is durable.
	dirRefs []bucketRef
	// stream, when set, puts more objects after cp's (commitStream).
	stream func(tx *txn) error
	// noUndo skips the allocation list: the txn cannot be rolled back
	// (commitStream).
	noUndo bool
}

// lock takes the Store's mu for a change that readers can see, unless the
// txn holds it throughout. Only the committing goroutine changes the
// tables and pools (cmu), so it reads them without mu.
func (tx *txn) lock() {
	if !tx.exclusive {
		tx.s.mu.Lock()
	}
}

func (tx *txn) unlock() {
	if !tx.exclusive {
		tx.s.mu.Unlock()
	}
}

// sync fsyncs f for the txn without holding mu, so that reads proceed
// while the disk works.
func (tx *txn) sync(f *os.File) error {
	if tx.exclusive {
		tx.s.mu.Unlock()
		defer tx.s.mu.Lock()
	}
	tx.s.fire(fpSyncing)
	return tx.s.sync(f)
}

func (s *Store) newTxn(cp *port.Checkpoint) *txn {
	tx := &txn{s: s, cp: cp, gen: s.st.root.gen + 1, root: s.st.root,
		w:      &pwriter{buf: s.wbuf[:0], files: map[*os.File]struct{}{}},
		allocs: s.spareAllocs[:0], frees: s.spareFrees[:0]}
	s.spareAllocs, s.spareFrees = nil, nil
	tx.root.gen = tx.gen
	tx.root.flags |= flagHasMeta
	tx.root.meta = cp.Meta
	for k := range numKinds {
		tx.root.deltas[k] = slices.Clone(tx.root.deltas[k])
		t := s.st.tabs[k]
		tx.counts[k] = [2]int{t.live, t.dirty}
		tx.src[k] = t.src
	}
	// Ids below the checkpoint's next ids take a bit each; others (not
	// from core) a map entry.
	tx.saved[kindBucket] = newIDSet(uint64(cp.Meta.NextBucketID))
	tx.saved[kindBucketDelta] = newIDSet(uint64(cp.Meta.NextBucketID))
	tx.saved[kindValueSet] = newIDSet(cp.Meta.NextValueSetID)
	return tx
}

// idSet is a set of ids: a bitmap below limit, a map above. A commit
// touching 600k value sets keeps 75 KB of bits instead of a 20 MB map.
type idSet struct {
	bits  []uint64
	other map[uint64]struct{}
}

// idSetMaxBits caps the bitmap (128 MiB of bits at most); ids above it
// go to the map.
const idSetMaxBits = 1 << 30

func newIDSet(limit uint64) *idSet {
	return &idSet{bits: make([]uint64, (min(limit, idSetMaxBits)+63)/64)}
}

func (s *idSet) has(id uint64) bool {
	if id/64 < uint64(len(s.bits)) {
		return s.bits[id/64]&(1<<(id%64)) != 0
	}
	_, ok := s.other[id]
	return ok
}

func (s *idSet) add(id uint64) {
	if id/64 < uint64(len(s.bits)) {
		s.bits[id/64] |= 1 << (id % 64)
		return
	}
	if s.other == nil {
		s.other = make(map[uint64]struct{})
	}
	s.other[id] = struct{}{}
}

func (tx *txn) apply() error {
	s, cp := tx.s, tx.cp
	if cp.Full {
		for k := range numKinds {
			if err := tx.dropAll(k); err != nil {
				return err
			}
		}
	} else {
		for _, id := range cp.FreedBuckets {
			if err := tx.free(kindBucket, uint64(id)); err != nil {
				return err
			}
			if err := tx.dropDelta(id); err != nil {
				return err
			}
			if err := tx.endRecord(); err != nil {
				return err
			}
		}
		for _, id := range cp.FreedValueSets {
			if err := tx.free(kindValueSet, id); err != nil {
				return err
			}
			if err := tx.endRecord(); err != nil {
				return err
			}
		}
	}
	for i := range cp.Buckets {
		if err := tx.putBucket(&cp.Buckets[i]); err != nil {
			return err
		}
	}
	for i := range cp.ValueSets {
		if err := tx.putValueSet(&cp.ValueSets[i]); err != nil {
			return err
		}
	}
	if cp.Stream != nil {
		err := cp.Stream(func(b *port.BucketRecord) error {
			if err := validateBucket(b); err != nil {
				return err
			}
			return tx.putBucket(b)
		}, func(v *port.ValueSetRecord) error {
			if err := validateValueSet(v); err != nil {
				return err
			}
			return tx.putValueSet(v)
		})
		if err != nil {
			return fmt.Errorf("checkpoint stream: %w", err)
		}
	}
	if tx.stream != nil {
		if err := tx.stream(tx); err != nil {
			return err
		}
	}
	if err := tx.publish(); err != nil {
		return err
	}
	if err := tx.writeDirectory(); err != nil {
		return err
	}
	for k := range numKinds {
		if err := tx.resolve(k); err != nil {
			return err
		}
		if err := tx.writeIndex(k); err != nil {
			return err
		}
	}
	if err := tx.appendDeletions(); err != nil {
		return err
	}
	if err := tx.w.flush(); err != nil {
		return err
	}
	s.fire(fpRowsWritten)
	for f := range tx.w.files {
		if err := tx.sync(f); err != nil {
			// After a failed fsync the kernel may have dropped dirty pages
			// it will not retry: trust nothing written since, not even
			// space this commit would reuse.
			tx.poisoned = true
			return fmt.Errorf("fsync rows: %w", err)
		}
	}
	s.fire(fpBeforeRoot)
	tx.root.segments = segmentsOf(&s.st.pools, &s.names)
	if len(tx.root.segments) > maxSegments {
		return fmt.Errorf("%d segments exceed the commit record's %d: raise SegmentBytes", len(tx.root.segments), maxSegments)
	}
	tx.root.slot = 1 - s.st.root.slot
	rec := tx.root.encode()
	tx.rootWritten = true
	if _, err := s.fd.WriteAt(rec, s.commitOff+int64(tx.root.slot)*commitSize); err != nil {
		return fmt.Errorf("write commit record: %w", err)
	}
	s.fire(fpAfterRoot)
	if err := tx.sync(s.fd); err != nil {
		return fmt.Errorf("fsync commit record: %w", err)
	}
	return nil
}

// putBucket writes a bucket record: a whole one as the bucket's new base,
// dropping any delta it had; a delta (b.Delta) as the bucket's delta,
// replacing any previous one, if the bucket has a base in the committed
// state or earlier in this checkpoint.
func (tx *txn) putBucket(b *port.BucketRecord) error {
	meta := loc{depth: b.LocalDepth, sorted: b.SortedCount, lastCompacted: b.LastCompacted,
		count: uint64(len(b.Entries) / port.EntrySize)}
	if !b.Delta {
		if err := tx.put(kindBucket, uint64(b.ID), meta, b.Entries); err != nil {
			return err
		}
		if err := tx.dropDelta(b.ID); err != nil {
			return err
		}
		return tx.endRecord()
	}
	if err := tx.hasBase(b.ID); err != nil {
		return err
	}
	if err := tx.put(kindBucketDelta, uint64(b.ID), meta, b.Entries); err != nil {
		return err
	}
	return tx.endRecord()
}

// hasBase returns an error unless bucket id is live as this checkpoint
// stands so far: committed and not freed, or written by it.
func (tx *txn) hasBase(id uint32) error {
	l, ok, err := tx.current(kindBucket, uint64(id))
	if err != nil {
		return fmt.Errorf("bucket %d: %w", id, err)
	}
	if !ok || !l.live() {
		return fmt.Errorf("bucket %d: a delta of a bucket that has no base (neither committed nor earlier in this checkpoint)", id)
	}
	return nil
}

// dropDelta frees the delta of bucket id, if it has one. When no delta
// is committed and this commit wrote none of id (a store that takes no
// deltas), there is nothing to look up.
func (tx *txn) dropDelta(id uint32) error {
	if !tx.saved[kindBucketDelta].has(uint64(id)) && tx.counts[kindBucketDelta][0] == 0 {
		return nil
	}
	return tx.free(kindBucketDelta, uint64(id))
}

func (tx *txn) putValueSet(v *port.ValueSetRecord) error {
	meta := loc{sorted: v.SortedCount, count: uint64(len(v.Values) / port.ValueSize),
		tombs: uint64(len(v.Tombstones) / port.ValueSize)}
	if err := tx.put(kindValueSet, v.ID, meta, v.Values, v.Tombstones); err != nil {
		return err
	}
	return tx.endRecord()
}

// commitStream is Commit for a checkpoint too large to hold in memory:
// after cp's own records, stream puts further buckets and value sets one
// at a time (their slices are not retained). It keeps no undo records, so
// that memory stays at the per-object locs: an error leaves the Store
// failed, and the caller discards the file. Rewrite uses it on a new file.
func (s *Store) commitStream(cp *port.Checkpoint, stream func(tx *txn) error) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if s.failed != nil {
		return fmt.Errorf("commit: %w: %w", ErrFailed, s.failed)
	}
	if err := s.waitScan(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := validateCheckpoint(cp); err != nil {
		return fmt.Errorf("commit lsn %d: %w", cp.Meta.CheckpointLSN, err)
	}
	tx := s.newTxn(cp)
	defer func() { s.spareAllocs = tx.allocs[:0] }()
	tx.stream, tx.noUndo, tx.exclusive = stream, true, true
	if err := tx.apply(); err != nil {
		s.failed = err
		return fmt.Errorf("commit lsn %d: %w: %w", cp.Meta.CheckpointLSN, ErrFailed, err)
	}
	tx.finish()
	return nil
}

// dropAll empties a kind for a Full checkpoint.
func (tx *txn) dropAll(k int) error {
	old := tx.s.st.tabs[k]
	err := old.each(func(_ uint64, l *loc) error {
		if l.live() {
			tx.frees = append(tx.frees, pext{dataPool[k], l.ref, l.records()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s index: %w", kindName[k], err)
	}
	tx.oldTabs[k] = old
	tx.s.st.tabs[k] = newTable()
	tx.counts[k] = [2]int{}
	return nil
}

// free stages a tombstone for id. Whether id was live, and the space its
// committed version frees, is settled by resolve. A version this commit
// wrote (a bucket delta, then its bucket whole) is freed here.
func (tx *txn) free(k int, id uint64) error {
	t := tx.s.st.tabs[k]
	if mine := tx.saved[k].has(id); t.src == nil || mine {
		// Resident, or this commit's version: no I/O.
		l, ok, err := tx.current(k, id)
		if err != nil {
			return fmt.Errorf("%s %d: %w", kindName[k], id, err)
		}
		if ok && l.live() {
			tx.frees = append(tx.frees, pext{dataPool[k], l.ref, l.records()})
		} else if t.src == nil {
			return nil
		}
	}
	tx.saved[k].add(id)
	tx.stageLoc(k, id, loc{state: stDirty})
	return nil
}

// put writes a new version of an object to free space and points its loc
// at it. The committed version it supersedes is freed by resolve (a paged
// table) or here (a resident one, where looking it up costs no I/O).
func (tx *txn) put(k int, id uint64, meta loc, parts ...[]byte) error {
	n := meta.records()
	meta.ref = nilRef
	if n > 0 {
		r, f, off, err := tx.alloc(dataPool[k], n)
		if err != nil {
			return fmt.Errorf("%s %d: %w", kindName[k], id, err)
		}
		meta.ref = r
		// Padded to whole granules (its own allocation), so that objects
		// allocated one after another are one contiguous write.
		p := tx.s.st.pools[dataPool[k]]
		pad := zeroPad[:(p.granules(n)*p.granule-n)*uint64(p.recSize)]
		err = tx.w.write(f, off, parts...)
		if err == nil {
			err = tx.w.write(f, off+int64(n)*p.recSize, pad)
		}
		if err != nil {
			return fmt.Errorf("write %s %d: %w", kindName[k], id, err)
		}
	}
	meta.crc = objectCRC(id, n, parts...)
	meta.gen = tx.gen
	meta.state = stLive | stDirty
	t := tx.s.st.tabs[k]
	if tx.saved[k].has(id) || t.src == nil {
		// A second version in one commit supersedes (and frees) the
		// first; a resident table's committed version is freed here.
		old, had, err := tx.current(k, id)
		if err != nil {
			return fmt.Errorf("%s %d: %w", kindName[k], id, err)
		}
		if had && old.live() {
			tx.frees = append(tx.frees, pext{dataPool[k], old.ref, old.records()})
		}
	}
	tx.saved[k].add(id)
	tx.stageLoc(k, id, meta)
	return nil
}

// current returns id's entry in kind k's table as this commit has it so
// far: its newest staged version, else the table's (the overlay's, or
// the committed one). It does no I/O for an id this commit wrote or for a
// resident table.
func (tx *txn) current(k int, id uint64) (loc, bool, error) {
	if tx.saved[k].has(id) {
		for i := len(tx.staged) - 1; i >= 0; i-- {
			if st := &tx.staged[i]; st.kind == k && st.id == id {
				return st.l, true, nil
			}
		}
	}
	return tx.s.st.tabs[k].get(id)
}

// stageLoc makes l id's entry of kind k in this commit: at once when the
// txn holds mu throughout, else at the next publish.
func (tx *txn) stageLoc(k int, id uint64, l loc) {
	if tx.exclusive {
		tx.s.st.tabs[k].stage(id, l)
		return
	}
	tx.staged = append(tx.staged, stagedLoc{k, id, l})
}

// endRecord publishes the staged versions once a batch is full. It is
// called after each record a checkpoint gives, never within one, so that
// readers see the entries a record changes (a bucket and its delta's
// removal) change together.
func (tx *txn) endRecord() error {
	if len(tx.staged) >= publishBatch {
		return tx.publish()
	}
	return nil
}

// resolve settles kind k's overlay against the committed entries, reading
// each page the commit touches once, in id order: the committed version
// of every changed id is freed, the live and dirty counts are updated, and
// tombstones of ids that were not live are dropped.
func (tx *txn) resolve(k int) error {
	t := tx.s.st.tabs[k]
	if t.src == nil {
		return nil // stage counted and put freed
	}
	return t.resolve(func(base loc) {
		tx.frees = append(tx.frees, pext{dataPool[k], base.ref, base.records()})
	})
}

// zeroPad pads a bucket or value set to a whole granule: at most a
// granule of the rows pool less one record.
var zeroPad = make([]byte, 512)

// stagedLoc is a new object version whose rows may still sit in the
// pwriter's buffer: readers must not see it yet.
type stagedLoc struct {
	kind int
	id   uint64
	l    loc
}

// publishBatch is how many new versions wait for one publish: one lock
// hold per batch, not per object.
const publishBatch = 1024

// publish writes out the buffered rows, then points the tables at the
// staged versions under mu. A reader that reads one of them before the
// commit is durable gets the new rows, written but not yet synced (core
// never reads an object a commit writes; other callers accept either
// version).
func (tx *txn) publish() error {
	if err := tx.w.flush(); err != nil {
		return err
	}
	tx.lock()
	for _, st := range tx.staged {
		tx.s.st.tabs[st.kind].stage(st.id, st.l)
	}
	tx.unlock()
	tx.staged = tx.staged[:0]
	return nil
}

// alloc reserves n records of a pool, growing it when no segment has room.
func (tx *txn) alloc(pi int, n uint64) (ref, *os.File, int64, error) {
	p := tx.s.st.pools[pi]
	r, ok := p.alloc(n)
	if !ok {
		if err := tx.grow(pi, n); err != nil {
			return 0, nil, 0, err
		}
		if r, ok = p.alloc(n); !ok {
			return 0, nil, 0, fmt.Errorf("allocate %d records in %s after growing it", n, poolSpecs[pi].name)
		}
	}
	if !tx.noUndo {
		tx.allocs = append(tx.allocs, pext{pi, r, n})
	}
	f, off, err := p.locate(r, n)
	return r, f, off, err
}

// writeDirectory writes the directory with each slot's current bucket ref,
// checking that every slot names a live bucket (an error rolls back).
func (tx *txn) writeDirectory() error {
	dir := tx.cp.Directory
	bt := tx.s.st.tabs[kindBucket]
	r, f, off, err := tx.alloc(poolDirectory, uint64(len(dir)))
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	bw := tx.blob(f, off)
	lastID, lastRef := uint32(0), ref(0)
	known := tx.s.bucketRefs
	if tx.cp.Full {
		known = nil
	}
	tx.dirRefs = tx.s.spareDirRefs[:0]
	tx.s.spareDirRefs = nil
	for i, id := range dir {
		if i == 0 || id != lastID {
			lastID = id
			if int(id) < len(known) && known[id] != noRef && !tx.saved[kindBucket].has(uint64(id)) {
				// Live at the last commit and untouched by this one.
				lastRef = known[id]
			} else {
				l, ok, err := bt.get(uint64(id))
				if err != nil {
					return fmt.Errorf("directory slot %d: %w", i, err)
				}
				if !ok || !l.live() {
					return fmt.Errorf("directory slot %d names bucket %d, which is neither committed nor in this checkpoint", i, id)
				}
				lastRef = l.ref
				tx.dirRefs = append(tx.dirRefs, bucketRef{id, l.ref})
			}
		}
		rec, err := bw.next(recBucketPointer.Size)
		if err != nil {
			return fmt.Errorf("write directory: %w", err)
		}
		le.PutUint32(rec[0:], id)
		le.PutUint64(rec[4:], uint64(lastRef))
	}
	crc, err := bw.close()
	if err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	old := tx.s.st.root.dir
	if old.count > 0 {
		tx.frees = append(tx.frees, pext{poolDirectory, old.ref, old.count})
	}
	tx.root.dir = extent{ref: r, count: uint64(len(dir)), gen: tx.gen, crc: crc}
	return nil
}

// bucketRef is a bucket's committed rows ref.
type bucketRef struct {
	id uint32
	r  ref
}

// noRef marks a bucket whose ref Store.bucketRefs does not know.
const noRef = nilRef - 1

// learnRefs brings Store.bucketRefs to the durable commit: the buckets
// it changed are forgotten, then those writeDirectory looked up are
// learnt.
func (tx *txn) learnRefs() {
	s := tx.s
	if tx.cp.Full {
		s.bucketRefs = s.bucketRefs[:0]
	}
	known := s.bucketRefs
	saved := tx.saved[kindBucket]
	for w, x := range saved.bits {
		for ; x != 0; x &= x - 1 {
			if id := w*64 + bits.TrailingZeros64(x); id < len(known) {
				known[id] = noRef
			}
		}
	}
	for id := range saved.other {
		if id < uint64(len(known)) {
			known[id] = noRef
		}
	}
	for _, b := range tx.dirRefs {
		for int(b.id) >= len(known) {
			known = append(known, noRef)
		}
		known[b.id] = b.r
	}
	s.bucketRefs = known
	s.spareDirRefs = tx.dirRefs[:0]
}

// writeIndex persists kind k's table: a snapshot of every live entry, a
// delta of the entries this commit changed, or, when the commit record's
// delta list is full, one merged delta of everything changed since the
// snapshot. A snapshot is written when the changed entries reach half the
// live ones, which bounds both load time and write amplification. Every
// extent is sorted by id, so that a paged table finds a page's records in
// it (see index.go); tx.src[k] becomes the table's source.
func (tx *txn) writeIndex(k int) error {
	t := tx.s.st.tabs[k]
	old := &tx.s.st.root
	mp := metaPool[k]
	freeOld := func(e extent) {
		if e.count > 0 {
			tx.frees = append(tx.frees, pext{mp, e.ref, e.count})
		}
	}
	src := &tsrc{kind: k, pool: tx.s.st.pools[mp]}
	if t.src != nil && !tx.cp.Full {
		src.exts = t.src.exts
	}
	switch {
	case tx.cp.Full || !old.hasSnap[k] || 2*t.dirty >= t.live:
		x, err := tx.writeMeta(k, uint64(t.live), false, func(emit func(uint64, *loc) error) error {
			return t.each(func(id uint64, l *loc) error {
				if l.live() {
					return emit(id, l)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		if old.hasSnap[k] {
			freeOld(old.snap[k])
		}
		for _, d := range old.deltas[k] {
			freeOld(d)
		}
		tx.root.snap[k], tx.root.hasSnap[k], tx.root.deltas[k] = x.e, true, nil
		tx.snapshotted[k] = true
		src.exts = []srcExtent{x}
	case !t.pending():
	case len(old.deltas[k]) < maxDeltas:
		order := t.staged()
		x, err := tx.writeMeta(k, uint64(len(order)), true, func(emit func(uint64, *loc) error) error {
			var l loc // one for all: emit's argument escapes
			for _, e := range order {
				ent := &t.over.ents[e]
				l = ent.l
				if err := emit(ent.id, &l); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		tx.root.deltas[k] = append(tx.root.deltas[k], x.e)
		src.exts = append(slices.Clip(src.exts), x)
	default:
		x, err := tx.writeMeta(k, uint64(t.dirty), true, func(emit func(uint64, *loc) error) error {
			return t.eachDirty(emit)
		})
		if err != nil {
			return err
		}
		for _, d := range old.deltas[k] {
			freeOld(d)
		}
		tx.root.deltas[k] = []extent{x.e}
		src.exts = append(slices.Clone(src.exts[:1]), x) // the snapshot, then x
	}
	tx.src[k] = src
	return nil
}

// writeMeta writes n index records produced by gen, in ascending id order,
// as one extent.
func (tx *txn) writeMeta(k int, n uint64, delta bool, gen func(emit func(uint64, *loc) error) error) (srcExtent, error) {
	if n == 0 {
		return srcExtent{e: extent{gen: tx.gen}, delta: delta}, nil
	}
	r, f, off, err := tx.alloc(metaPool[k], n)
	if err != nil {
		return srcExtent{}, fmt.Errorf("%s index: %w", kindName[k], err)
	}
	bw := tx.blob(f, off)
	rs := metaRecord[k].Size
	fc := newFencer(delta, n)
	err = gen(func(id uint64, l *loc) error {
		if fc.n >= n {
			return fmt.Errorf("more than %d records", n)
		}
		prev := fc.last
		if fc.add(id); fc.unsorted {
			return fmt.Errorf("id %d after %d: not ascending", id, prev)
		}
		rec, err := bw.next(rs)
		if err == nil {
			encodeMeta[k](rec, id, l)
		}
		return err
	})
	crc, cerr := bw.close()
	if err = errors.Join(err, cerr); err == nil && fc.n != n {
		err = fmt.Errorf("%d records, expected %d", fc.n, n)
	}
	if err != nil {
		return srcExtent{}, fmt.Errorf("write %s index: %w", kindName[k], err)
	}
	return srcExtent{e: extent{ref: r, count: n, gen: tx.gen, crc: crc}, delta: delta, fences: fc.fences, filter: fc.filter}, nil
}

// appendDeletions trims the deletion log and appends the checkpoint's
// records after the committed ones: space no commit record covers yet.
//
// The log is the records [delStart, deletions) of the pool. Trimming
// advances delStart. Once the trimmed log is empty, it restarts at record
// 0 if the records appended now fit below the committed log's start, so
// that they never overwrite a record the current commit record still
// names (a crash before the new record lands loads that one). SWMR
// Readers do not read the log, so no reuse delay is needed. In steady
// state, with garbage collection trimming everything it has processed,
// the log's space is reused from the start; otherwise it grows like any
// pool until Compact rewrites the store without it.
func (tx *txn) appendDeletions() error {
	old := &tx.s.st.root
	dels := tx.cp.Deletions
	start, end := old.delStart+tx.cp.TrimDeletions, old.deletions
	if start == end && uint64(len(dels)) <= old.delStart {
		start, end = 0, 0
	}
	tx.root.delStart, tx.root.deletions = start, end
	if len(dels) == 0 {
		return nil
	}
	p := tx.s.st.pools[poolDeletions]
	newEnd := end + uint64(len(dels))
	if c := p.capacity(); newEnd > c {
		if err := tx.grow(poolDeletions, newEnd-c); err != nil {
			return fmt.Errorf("deletion log: %w", err)
		}
	}
	var rec [32]byte
	pos, base := end, uint64(0)
	si := 0
	for _, d := range dels {
		for pos >= base+p.segs[si].capacity {
			base += p.segs[si].capacity
			si++
		}
		le.PutUint64(rec[0:], d.KeyHigh)
		le.PutUint64(rec[8:], d.KeyLow)
		le.PutUint64(rec[16:], d.ValueGroup)
		le.PutUint64(rec[24:], uint64(d.UnixNano))
		off := p.segs[si].offset + int64(pos-base)*p.recSize
		if err := tx.w.write(p.segs[si].f, off, rec[:]); err != nil {
			return fmt.Errorf("write deletion log: %w", err)
		}
		pos++
	}
	tx.root.deletions = newEnd
	return nil
}

// rollback undoes an unfinished commit in memory; nothing it wrote is
// referenced by a commit record.
func (tx *txn) rollback() {
	s := tx.s
	for k := range numKinds {
		if tx.oldTabs[k] != nil {
			s.st.tabs[k] = tx.oldTabs[k]
			continue
		}
		s.st.tabs[k].discard(tx.counts[k][0], tx.counts[k][1])
	}
	tx.staged = nil
	for _, a := range tx.allocs {
		s.st.pools[a.pool].release(a.ref, a.n)
	}
}

// finish makes the durable commit the current state and schedules the
// superseded space for reuse.
func (tx *txn) finish() {
	s := tx.s
	s.st.root = tx.root
	tx.learnRefs()
	for k := range numKinds {
		t := s.st.tabs[k]
		if t.budget == 0 {
			t.budget = indexShare(k, s.opts.IndexCacheBytes)
		}
		t.commit(tx.src[k], tx.snapshotted[k])
	}
	s.pending = append(s.pending, freeBatch{gen: tx.gen, extents: tx.frees})
	delay := uint64(s.opts.ReuseDelayCommits)
	n := 0
	for _, b := range s.pending {
		if b.gen+delay > tx.gen {
			break
		}
		for _, e := range b.extents {
			s.st.pools[e.pool].release(e.ref, e.n)
		}
		if cap(b.extents) > cap(s.spareFrees) {
			s.spareFrees = b.extents[:0]
		}
		n++
	}
	s.pending = slices.Delete(s.pending, 0, n)
	s.stats.Commits++
	s.stats.Generation = tx.gen
	s.stats.BytesWritten += tx.w.written
	// The attributes mirror the commit record for h5dump and h5py; nothing
	// loads them, so a failure here does not undo a durable commit.
	if s.h == nil {
		return
	}
	if err := errors.Join(
		s.h.SetAttrs("/config", s.changedAttrs("/config", configAttrs(&tx.root))),
		s.h.SetAttrs("/wal", s.changedAttrs("/wal", walAttrs(&tx.root))),
		s.h.Flush(),
	); err != nil {
		clear(s.mirrored)
		s.log.Warn("h5store: mirror commit into /config attributes", "generation", tx.gen, "err", err)
	}
}

// changedAttrs returns the attributes whose values differ from what was
// last mirrored; most commits change only checkpoint_lsn and generation.
func (s *Store) changedAttrs(group string, attrs []h5.Attr) []h5.Attr {
	out := attrs[:0]
	for _, a := range attrs {
		key := group + "/" + a.Name
		if s.missingAttrs[key] {
			continue
		}
		if old, ok := s.mirrored[key]; ok && old == a.Value {
			continue
		}
		s.mirrored[key] = a.Value
		out = append(out, a)
	}
	return out
}

// grow adds a segment to pool pi with room for at least need records: a
// new dataset as large as the pool so far, in a new sidecar HDF5 file.
//
// The store file's HDF5 structure never changes after creation: HDF5 1.10
// does not support creating objects in SWMR-write mode, and its metadata
// writes are not crash-consistent (a kill while linking a new dataset can
// tear the parent group's header, and the root group's would make the file
// unopenable). A segment file is instead built under a temporary name,
// closed, fsynced and renamed into place, so it exists complete or not at
// all; h5store then writes it with pwrite only.
//
// Readers see the pool change only when the segment is added, under mu.
func (tx *txn) grow(pi int, need uint64) error {
	s := tx.s
	total := 0
	for _, p := range s.st.pools {
		total += len(p.segs)
	}
	if total >= maxSegments {
		return fmt.Errorf("grow %s: %d segments is the limit: raise SegmentBytes", poolSpecs[pi].name, maxSegments)
	}
	p := s.st.pools[pi]
	g := max(p.granule, 64)
	recs := max(p.capacity(), need)
	recs = (recs + g - 1) / g * g
	idx := 0
	for _, n := range s.names[pi] {
		idx = max(idx, n+1)
	}
	file := segmentFile(s.path, pi, idx)
	ds, err := createSegmentFile(file, pi, idx, recs, s.opts.CacheBytes, s.fire)
	if err != nil {
		return fmt.Errorf("grow %s: %w", poolSpecs[pi].name, err)
	}
	s.fire(fpSegmentReady)
	f, err := s.openSegment(pi, idx)
	if err != nil {
		return fmt.Errorf("grow %s: %w", poolSpecs[pi].name, err)
	}
	tx.lock()
	p.addSegment(f, ds.Offset, ds.Records, true)
	s.names[pi] = append(s.names[pi], idx)
	s.stats.SegmentsCreated++
	tx.unlock()
	s.log.Info("h5store: new segment", "file", file, "records", ds.Records, "bytes", int64(ds.Records)*p.recSize)
	return nil
}

// createSegmentFile makes a sidecar HDF5 file holding one segment dataset.
func createSegmentFile(file string, pi, idx int, recs uint64, cacheBytes int64, fire func(string)) (h5.Dataset, error) {
	tmp := file + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return h5.Dataset{}, err
	}
	h, err := h5.Create(tmp, h5config(cacheBytes))
	if err != nil {
		return h5.Dataset{}, err
	}
	name := segmentName(pi, idx)
	var ds h5.Dataset
	if dir := filepath.Dir(name); dir != "/" {
		err = h.CreateGroup(dir)
	}
	if err == nil {
		ds, err = h.CreateDataset(name, poolSpecs[pi].rec, recs)
	}
	if err == nil {
		err = h.SetAttrs("/", []h5.Attr{
			{Name: "format_version", Value: uint32(FormatVersion)},
			{Name: "version_string", Value: versionString + " segment"},
		})
	}
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		fire(fpSegmentCreated)
		err = syncFile(tmp, ds.Offset+int64(ds.Records)*int64(poolSpecs[pi].rec.Size))
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err == nil {
		err = syncDir(filepath.Dir(file))
	}
	if err != nil {
		return h5.Dataset{}, errors.Join(err, os.Remove(tmp))
	}
	return ds, nil
}

// syncFile makes a closed file at least size bytes long and fsyncs it.
func syncFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < size {
		err = f.Truncate(size)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// pwriter coalesces writes of consecutive ranges of one file into one
// pwrite, and remembers which files it wrote to.
type pwriter struct {
	f       *os.File
	buf     []byte // pending bytes for [off, off+len(buf)) of f
	off     int64
	written uint64
	files   map[*os.File]struct{}
	dirty   int64 // bytes written since writeback was last started
}

// writebackEvery is how many bytes a commit writes between two requests
// to start writing its dirty pages back, so that its final fsync does not
// flood the disk and the WAL's syncs wait behind less (Pebble's
// BytesPerSync).
const writebackEvery = 4 << 20

func (w *pwriter) wrote(f *os.File, n int) {
	if w.dirty += int64(n); w.dirty >= writebackEvery {
		w.dirty = 0
		// Best effort: an error here changes nothing the fsync will not see.
		_ = syscall.SyncFileRange(int(f.Fd()), 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */)
	}
}

func (w *pwriter) write(f *os.File, off int64, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return nil
	}
	w.files[f] = struct{}{}
	if len(w.buf) > 0 && (f != w.f || off != w.off+int64(len(w.buf)) || len(w.buf)+n > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.written += uint64(n)
	if n > cap(w.buf) {
		for _, p := range parts {
			if _, err := f.WriteAt(p, off); err != nil {
				return err
			}
			off += int64(len(p))
			w.wrote(f, len(p))
		}
		return nil
	}
	if len(w.buf) == 0 {
		w.f, w.off = f, off
	}
	for _, p := range parts {
		w.buf = append(w.buf, p...)
	}
	return nil
}

func (w *pwriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.WriteAt(w.buf, w.off)
	w.wrote(w.f, len(w.buf))
	w.buf = w.buf[:0]
	return err
}

// blobWriter streams the records of one extent through a chunk buffer and
// computes the extent's CRC.
type blobWriter struct {
	w     *pwriter
	f     *os.File
	off   int64 // file offset of chunk[0]
	chunk []byte
	crc   uint32
}

const blobChunk = 64 << 10

func (tx *txn) blob(f *os.File, off int64) *blobWriter {
	if tx.chunk == nil {
		tx.chunk = make([]byte, 0, blobChunk)
	}
	return &blobWriter{w: tx.w, f: f, off: off, chunk: tx.chunk[:0]}
}

// next returns the next n bytes of the extent for the caller to fill
// before the following call.
func (b *blobWriter) next(n int) ([]byte, error) {
	if len(b.chunk)+n > cap(b.chunk) {
		if err := b.flush(); err != nil {
			return nil, err
		}
	}
	b.chunk = b.chunk[:len(b.chunk)+n]
	return b.chunk[len(b.chunk)-n:], nil
}

func (b *blobWriter) flush() error {
	b.crc = crc32.Update(b.crc, castagnoli, b.chunk)
	err := b.w.write(b.f, b.off, b.chunk)
	b.off += int64(len(b.chunk))
	b.chunk = b.chunk[:0]
	return err
}

// close writes what is left and returns the CRC of the whole extent.
func (b *blobWriter) close() (uint32, error) {
	err := b.flush()
	return b.crc, err
}
