package h5store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// Store is the writer: it implements port.Backend and port.Lister over one
// HDF5 file. Loader methods are safe for concurrent use with each other and
// with Commit. Commit takes mu only for each in-memory table or segment
// list change, not while it writes rows or waits for fsync: a read
// meanwhile returns the committed version of any object the commit does
// not write (an object it writes may read as either version; core never
// reads those). LoadMeta and Check wait for a commit in progress.
type Store struct {
	cmu       sync.Mutex // serializes Commit, Close, LoadMeta and Check; taken before mu
	mu        sync.RWMutex
	path      string
	opts      Options
	log       port.Logger
	h         *h5.File
	fd        *os.File
	lock      *os.File
	commitOff int64
	st        *state
	names     [numPools][]int // segment name index, by pool and position
	sidecars  []*os.File      // open segment files other than the store file
	mirrored  map[string]any  // /config and /wal attribute values last written
	// missingAttrs are mirror attributes the file lacks (made by an older
	// version), by group/name; they are not mirrored.
	missingAttrs map[string]bool
	pending      []freeBatch
	// spareAllocs and spareFrees are the emptied lists of earlier commits,
	// for the next: a commit of 1M value sets appends 1M extents to each,
	// 24 MB that would otherwise be grown by doubling, copied at every
	// step (BENCHMARKS.md, session 11).
	spareAllocs, spareFrees []pext
	// bucketRefs is, by bucket id, the committed rows ref of each bucket
	// the last commits' directories named (noRef: unknown), so that a
	// commit writes the directory (a ref per slot) looking up only the
	// buckets it changed: at 20M keys, 131k lookups per commit against a
	// paged index were 1.3 % of an ingest's CPU. Check verifies every
	// slot's ref against the index.
	bucketRefs   []ref
	spareDirRefs []bucketRef
	// The data pools' free space and the tables' counts are rebuilt after
	// Open, in the background (scan): a reopen then costs the index's
	// extents, not a walk of every object's entry. scanned is closed when
	// the walk ends, with its error in scanErr; a commit waits for it, and
	// Close stops it (scanStop).
	scanned   chan struct{}
	scanErr   error
	scanStop  atomic.Bool
	scanNanos atomic.Int64 // how long the scan took (Stats.FreeSpaceScan)
	closed    bool
	failed    error
	wbuf      []byte
	stats     Stats

	// failpoint, when set, is called at named steps of Commit and growth;
	// crash tests kill the process there.
	failpoint func(name string)
}

// Stats counts what a Store has done since Open.
type Stats struct {
	Generation      uint64 // generation of the committed state
	Commits         uint64
	BytesWritten    uint64 // rows, values, index and directory bytes
	SegmentsCreated int
	Recovered       bool // Open cleared a crashed writer's status flags
	// IndexBytes is the memory of resident index pages (all three tables:
	// buckets, bucket deltas, value sets;
	// Options.IndexCacheBytes bounds it between commits); IndexLoads
	// counts pages rebuilt from the file's index extents (kept resident
	// or, over the budget, used once and dropped), IndexEvictions resident
	// pages dropped,
	// IndexLookups reads answered from the file's index extents.
	IndexBytes     int64
	IndexPages     int
	IndexLoads     uint64
	IndexEvictions uint64
	IndexLookups   uint64
	// IndexFinds counts the pages whose changed entries a commit looked
	// up in the index extents without building the page (not resident,
	// and no room in the budget to keep it).
	IndexFinds uint64
	// IndexLookupReads counts the extent blocks those reads read (one per
	// index extent tried, newest first).
	IndexLookupReads uint64
	// IndexExtentBytes is the memory the index extents keep beside the
	// pages (fences, and the deltas' Bloom filters); it counts against
	// IndexCacheBytes.
	IndexExtentBytes int64
	// IndexExtents is the number of index extents (snapshots and deltas,
	// of every table) that pages and lookups read from.
	IndexExtents int
	// FormatBackup is the directory holding the copy of the store that
	// Open made (or found) because the file was of an older format
	// version, which its next commit upgrades: <path>.format<N>-backup.
	// Empty for a file of the current version.
	FormatBackup string
	// FreeSpaceScan is how long the scan after Open took to rebuild the
	// data pools' free space from the index (0 while it runs).
	FreeSpaceScan time.Duration
}

// freeBatch is space superseded by the commit of generation gen.
type freeBatch struct {
	gen     uint64
	extents []pext
}

// pext is an extent of records in one pool.
type pext struct {
	pool int
	ref  ref
	n    uint64
}

// Open opens the store at path (the .h5 file), creating it when it does
// not exist. Only one Store may have a file open: a second Open, in this
// process or another, returns ErrLocked. A file left by a writer that died
// is recovered without manual tools (its HDF5 status flags are cleared and
// its end of allocation raised to the end of file); the state loaded is the
// last commit whose commit record reached the file.
func Open(path string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := create(path, &opts, nil); err != nil {
			return nil, errors.Join(fmt.Errorf("create %s: %w", path, err), lock.Close())
		}
	}
	s := &Store{path: path, opts: opts, log: opts.Logger, lock: lock, wbuf: make([]byte, 0, opts.writeBuffer()),
		mirrored: map[string]any{}, missingAttrs: map[string]bool{}, failpoint: opts.failpoint}
	if err := s.open(); err != nil {
		s.stopScan()
		return nil, errors.Join(fmt.Errorf("open %s: %w", path, err), s.closeFiles())
	}
	return s, nil
}

func h5config(cacheBytes int64) h5.Config { return h5.Config{MetaCacheBytes: cacheBytes / 2} }

// create builds a new file under a temporary name and renames it into
// place, so a crash never leaves a half-made store at path. recs, if not
// nil, gives the records of every pool's first segment (Rewrite);
// otherwise they follow opts.SegmentBytes.
func create(path string, opts *Options, recs *[numPools]uint64) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	h, err := h5.Create(tmp, h5config(opts.CacheBytes))
	if err != nil {
		return err
	}
	root := commitRec{gen: 1}
	commitOff, err := layoutNewFile(h, opts, recs, &root)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	// The commit records are written after HDF5 closed the file: nothing
	// HDF5 does later touches them (the dataset is never filled).
	fd, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err = fd.WriteAt(root.encode(), commitOff); err == nil {
		err = fd.Sync()
	}
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// layoutNewFile creates every group, attribute and dataset of a new file
// and records the segments in root.
func layoutNewFile(h *h5.File, opts *Options, recs *[numPools]uint64, root *commitRec) (int64, error) {
	for _, g := range []string{"/config", "/buckets", "/values", "/wal"} {
		if err := h.CreateGroup(g); err != nil {
			return 0, err
		}
	}
	if err := h.SetAttrs("/config", configAttrs(root)); err != nil {
		return 0, err
	}
	if err := h.SetAttrs("/wal", walAttrs(root)); err != nil {
		return 0, err
	}
	cds, err := h.CreateDataset("/commit", recCommit, 2)
	if err != nil {
		return 0, err
	}
	for pi := range numPools {
		n := initialRecords(pi, opts)
		if recs != nil {
			n = recs[pi]
		}
		ds, err := h.CreateDataset(segmentName(pi, 0), poolSpecs[pi].rec, n)
		if err != nil {
			return 0, err
		}
		root.segments = append(root.segments, segRec{offset: ds.Offset, capacity: ds.Records, pool: pi})
	}
	return cds.Offset, nil
}

func initialRecords(pi int, opts *Options) uint64 {
	sp := poolSpecs[pi]
	n := uint64(opts.SegmentBytes / sp.share / int64(sp.rec.Size))
	g := max(sp.granule, 64)
	return max((n+g-1)/g*g, g)
}

func configAttrs(root *commitRec) []h5.Attr {
	m := &root.meta
	return []h5.Attr{
		{Name: "format_version", Value: uint32(FormatVersion)},
		{Name: "version_string", Value: versionString},
		{Name: "created_timestamp", Value: float64(m.CreatedUnixNano) / 1e9},
		{Name: "global_depth", Value: m.GlobalDepth},
		{Name: "num_buckets", Value: m.NumBuckets},
		{Name: "hash_seed", Value: m.HashSeed},
		{Name: "bucket_capacity", Value: m.BucketCapacity},
		{Name: "checkpoint_lsn", Value: m.CheckpointLSN},
		{Name: "core_format_version", Value: m.FormatVersion},
		{Name: "next_bucket_id", Value: m.NextBucketID},
		{Name: "next_value_set_id", Value: m.NextValueSetID},
		{Name: "generation", Value: root.gen},
		{Name: "num_keys", Value: m.Keys},
		{Name: "num_values", Value: m.Values},
		{Name: "num_spilled_keys", Value: m.SpilledKeys},
	}
}

func walAttrs(root *commitRec) []h5.Attr {
	return []h5.Attr{
		{Name: "checkpoint_lsn", Value: root.meta.CheckpointLSN},
		{Name: "record_size", Value: uint32(64)},
		{Name: "location", Value: "sidecar file owned by core (Options.WALPath)"},
	}
}

// open opens the HDF5 file for writing, recovering it if a writer died, and
// loads the committed state.
func (s *Store) open() error {
	cfg := h5config(s.opts.CacheBytes)
	h, err := h5.Open(s.path, h5.ReadWrite, cfg)
	if err != nil {
		// We hold the writer lock, so no live writer owns the status flags
		// that refused the open: a previous writer died.
		if rerr := h5.Recover(s.path, cfg); rerr != nil {
			return errors.Join(err, rerr)
		}
		if h, err = h5.Open(s.path, h5.ReadWrite, cfg); err != nil {
			return err
		}
		s.stats.Recovered = true
		s.log.Warn("h5store: recovered file left by a writer that did not close it", "path", s.path)
	}
	s.h = h
	cds, err := h.OpenDataset("/commit")
	if err != nil {
		return fmt.Errorf("not an h5store file: %w", err)
	}
	if cds.Records != 2 || cds.RecSize != commitSize {
		return fmt.Errorf("%w: /commit has %d records of %d bytes", port.ErrCorrupt, cds.Records, cds.RecSize)
	}
	s.commitOff = cds.Offset
	if s.fd, err = os.OpenFile(s.path, os.O_RDWR, 0); err != nil {
		return err
	}
	root, err := readRoot(s.fd, s.commitOff)
	if err != nil {
		return err
	}
	if root.format < FormatVersion {
		if err := s.backup(root.format); err != nil {
			return err
		}
	}
	st, err := loadState(root, true, s.openSegment, s.opts.IndexCacheBytes)
	s.st = st
	if err != nil {
		return err
	}
	s.names = segNames(&root)
	if err := s.checkSegments(); err != nil {
		return err
	}
	if err := s.adoptSegments(); err != nil {
		return err
	}
	s.stats.Generation = root.gen
	if err := s.findMissingAttrs(); err != nil {
		return err
	}
	if err := s.h.StartSWMRWrite(); err != nil {
		return err
	}
	s.scanned = make(chan struct{})
	go s.scan()
	return nil
}

// scan rebuilds the data pools' free space and the tables' counts
// (state.markData) while the store serves reads.
func (s *Store) scan() {
	defer close(s.scanned)
	t0 := time.Now()
	err := s.st.markData(s.scanStop.Load)
	if err != nil && !errors.Is(err, errScanStopped) {
		err = fmt.Errorf("rebuild free space: %w", err)
		s.log.Error("h5store: rebuilding the free space after Open failed: commits refused", "path", s.path, "err", err)
	}
	s.scanErr = err
	s.scanNanos.Store(int64(time.Since(t0))) // not under mu: Close holds it waiting for the scan
}

// waitScan waits for the background scan of Open and returns its error.
func (s *Store) waitScan() error {
	if s.scanned == nil {
		return nil
	}
	<-s.scanned
	return s.scanErr
}

// backup copies a store of an older format version, which the next
// commit turns into FormatVersion, to backupDir before anything writes to
// it (backupStore), so that the build that wrote it can still open the
// copy. The store file is closed in HDF5 for the copy, so that the copy is
// a cleanly closed file, and opened again. An Open that finds the backup
// made keeps it.
func (s *Store) backup(format uint32) error {
	err := s.h.Close()
	s.h = nil
	if err != nil {
		return err
	}
	dir, made, err := backupStore(s.path, format)
	if err != nil {
		return fmt.Errorf("back up the format %d store before upgrading it to format %d: %w", format, FormatVersion, err)
	}
	s.stats.FormatBackup = dir
	if made {
		s.log.Info("h5store: backed up a store of an older format before its first commit in the new one",
			"path", s.path, "format", format, "new_format", FormatVersion, "backup", dir)
	} else {
		s.log.Info("h5store: a store of an older format is backed up already", "path", s.path, "format", format, "backup", dir)
	}
	s.h, err = h5.Open(s.path, h5.ReadWrite, h5config(s.opts.CacheBytes))
	return err
}

// findMissingAttrs records the mirror attributes that a file made by an
// older version lacks. They are never created later: creating an attribute
// is an HDF5 metadata change, which h5store makes only when it creates a
// file, so such a file mirrors the attributes it has.
func (s *Store) findMissingAttrs() error {
	for group, attrs := range map[string][]h5.Attr{"/config": configAttrs(&commitRec{}), "/wal": walAttrs(&commitRec{})} {
		for _, a := range attrs {
			ok, err := s.h.HasAttr(group, a.Name)
			if err != nil {
				return err
			}
			if !ok {
				s.missingAttrs[group+"/"+a.Name] = true
			}
		}
	}
	return nil
}

// openSegment opens the file of a segment for reading and writing.
func (s *Store) openSegment(pool, index int) (*os.File, error) {
	if index == 0 {
		return s.fd, nil
	}
	f, err := os.OpenFile(segmentFile(s.path, pool, index), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment file missing: %w", port.ErrCorrupt, err)
	}
	if err == nil {
		s.sidecars = append(s.sidecars, f)
	}
	return f, err
}

// checkSegments compares the commit record's segments with their HDF5
// datasets, so that what h5dump shows is what the store reads.
func (s *Store) checkSegments() error {
	for pi, p := range s.st.pools {
		for si, seg := range p.segs {
			index := s.names[pi][si]
			ds, err := datasetOf(s.h, s.path, pi, index, s.opts.CacheBytes)
			if err != nil {
				return fmt.Errorf("%w: segment %s: %w", port.ErrCorrupt, segmentName(pi, index), err)
			}
			if ds.Offset != seg.offset || ds.Records != seg.capacity || ds.RecSize != int(p.recSize) {
				return fmt.Errorf("%w: dataset %s at %d (%d×%d B) but the commit record says %d (%d records)",
					port.ErrCorrupt, ds.Name, ds.Offset, ds.Records, ds.RecSize, seg.offset, seg.capacity)
			}
		}
	}
	return nil
}

// datasetOf reports where segment index of a pool lives. main is the open
// store file; sidecar files are opened read-only for the question (no
// writer has them open in HDF5: h5store writes them with pwrite only).
func datasetOf(main *h5.File, path string, pool, index int, cacheBytes int64) (h5.Dataset, error) {
	name := segmentName(pool, index)
	if index == 0 {
		return main.OpenDataset(name)
	}
	h, err := h5.Open(segmentFile(path, pool, index), h5.ReadOnly, h5config(cacheBytes))
	if err != nil {
		return h5.Dataset{}, err
	}
	ds, err := h.OpenDataset(name)
	return ds, errors.Join(err, h.Close())
}

// adoptSegments takes segment files that a crash left unreferenced (made
// by a commit that did not finish; a segment file appears only complete,
// by rename) as free space, and removes half-made ones.
func (s *Store) adoptSegments() error {
	tmps, err := filepath.Glob(s.path + ".*.h5.tmp")
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := os.Remove(t); err != nil {
			return err
		}
	}
	for pi, p := range s.st.pools {
		next := 0
		for _, n := range s.names[pi] {
			next = max(next, n+1)
		}
		for ; ; next++ {
			file := segmentFile(s.path, pi, next)
			if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
				break
			}
			ds, err := datasetOf(s.h, s.path, pi, next, s.opts.CacheBytes)
			if err != nil || ds.RecSize != int(p.recSize) {
				return fmt.Errorf("%w: leftover segment file %s: %v", port.ErrCorrupt, file, err)
			}
			f, err := s.openSegment(pi, next)
			if err != nil {
				return err
			}
			p.addSegment(f, ds.Offset, ds.Records, true)
			s.names[pi] = append(s.names[pi], next)
			s.log.Info("h5store: adopted segment left by an unfinished commit", "segment", file)
		}
	}
	return nil
}

func (s *Store) usable() error {
	if s.closed {
		return ErrClosed
	}
	return nil
}

// LoadMeta returns the committed metadata and directory; ok is false for a
// store that was never committed to. The directory slice belongs to the
// caller.
func (s *Store) LoadMeta() (port.Meta, []uint32, bool, error) {
	s.cmu.Lock() // a commit in progress changes the tables before the root
	defer s.cmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return port.Meta{}, nil, false, err
	}
	return s.st.loadMeta()
}

// ReadBucket reads a committed bucket with one pread and verifies its
// checksum; a bucket with a delta takes a second pread and is returned
// whole, the delta applied (port.ApplyBucketDelta) and its keys in
// DeltaKeys. It returns an error wrapping port.ErrNotFound for an id the
// last commit does not hold and port.ErrCorrupt, naming the bucket, for
// rows that fail their checksum or a delta that does not apply. Entries
// belongs to the caller.
func (s *Store) ReadBucket(id uint32) (port.BucketRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return port.BucketRecord{}, err
	}
	return s.st.readBucket(id)
}

// BucketDeltas implements port.BucketDeltas: Commit accepts bucket deltas
// (port.BucketRecord.Delta), kept beside their base and merged on read.
func (s *Store) BucketDeltas() bool { return true }

// RecycleEntries implements port.EntriesRecycler: a later ReadBucket may
// read into entries, which the caller no longer uses.
func (s *Store) RecycleEntries(entries []byte) { recycleEntries(entries) }

func recycleEntries(entries []byte) {
	if c := cap(entries); c == 0 || c > maxRecycled {
		return
	}
	entries = entries[:0]
	entryBufs.Put(&entries)
}

// entryBufs holds the Entries handed back by RecycleEntries, for the
// buckets' reads (of any Store: they are plain memory).
var entryBufs sync.Pool

// maxRecycled bounds the Entries kept for reuse: those of an overfull
// bucket (one that cannot split) are left to the collector.
const maxRecycled = 64 << 10

// entryBuf returns n bytes for a bucket's rows: recycled ones if a big
// enough buffer is at hand, else new ones with room to spare (a quarter,
// rounded up to 4 KiB) so that the buffer fits the next bucket too.
func entryBuf(n uint64) []byte {
	if p, _ := entryBufs.Get().(*[]byte); p != nil && uint64(cap(*p)) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, (n+n/4+4095)&^4095)
}

// ReadValueSet reads a committed value set; see ReadBucket.
func (s *Store) ReadValueSet(id uint64) (port.ValueSetRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return port.ValueSetRecord{}, err
	}
	return s.st.readValueSet(id)
}

// BucketIDs returns the committed bucket ids in ascending order.
func (s *Store) BucketIDs() ([]uint32, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	ids, err := s.st.tabs[kindBucket].ids()
	return ids32(ids), err
}

// ValueSetIDs implements port.Lister: the committed value set ids greater
// than after, ascending, at most limit of them.
func (s *Store) ValueSetIDs(after uint64, limit int) ([]uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	return s.st.tabs[kindValueSet].idsAfter(after, limit)
}

// DeletionLog implements port.DeletionLogReader: the committed deletion
// records, oldest first, after those checkpoints trimmed. The slice belongs
// to the caller. A Reader does not offer it: garbage collection is the
// writer's, and the writer may reuse the log's space without the delay
// that protects Readers' rows.
func (s *Store) DeletionLog() ([]port.DeletionRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	return s.st.readDeletions()
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.stats
	st.FreeSpaceScan = time.Duration(s.scanNanos.Load())
	if s.st != nil {
		for _, t := range s.st.tabs {
			if t == nil {
				continue
			}
			ts := t.stats()
			st.IndexBytes += ts.Resident
			st.IndexPages += ts.Pages
			st.IndexLoads += ts.Loads
			st.IndexEvictions += ts.Evictions
			st.IndexLookups += ts.Lookups
			st.IndexFinds += ts.Finds
			st.IndexLookupReads += ts.LookupReads
			st.IndexExtentBytes += ts.Overhead
			st.IndexExtents += ts.Extents
		}
	}
	return st
}

// Check verifies the committed state the way fsck would: the directory, the
// checksum of every bucket, bucket delta and value set, and that every
// delta has its bucket and applies to it; overlapping extents are what
// the free-space scan after Open found (Check waits for it and returns its
// error). It returns every problem found, each wrapping port.ErrCorrupt.
func (s *Store) Check() error {
	s.cmu.Lock() // see the committed state, not a commit in progress
	defer s.cmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.waitScan(); err != nil {
		return err
	}
	return checkState(s.st)
}

// Close closes the file cleanly (HDF5 clears its SWMR status flags) and
// releases the writer lock. Calls after Close return ErrClosed.
func (s *Store) Close() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.stopScan()
	return s.closeFiles()
}

// stopScan stops the background scan, if it runs, and waits for it: it
// reads through the files.
func (s *Store) stopScan() {
	if s.scanned != nil {
		s.scanStop.Store(true)
		<-s.scanned
	}
}

func (s *Store) closeFiles() error {
	var errs []error
	if s.h != nil {
		errs = append(errs, s.h.Close())
		s.h = nil
	}
	for _, f := range s.sidecars {
		errs = append(errs, f.Close())
	}
	s.sidecars = nil
	if s.fd != nil {
		errs = append(errs, s.fd.Close())
		s.fd = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func (s *Store) fire(name string) {
	if s.failpoint != nil {
		s.failpoint(name)
	}
}

func (s *Store) sync(f *os.File) error {
	if s.opts.NoSync {
		return nil
	}
	return f.Sync()
}
