package h5store

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/storage-hdf5/internal/h5"
)

// Reader is a read-only view of a store that a writer, in this or another
// process, may be committing to. It implements port.Backend (Commit returns
// port.ErrReadOnly) and port.Lister; methods are safe for concurrent use.
//
// A Reader shows one generation until Refresh moves it to the newest
// commit. It opens the file as an HDF5 SWMR reader (RDONLY|SWMR_READ) to
// find /commit and to check the segments against their datasets, and
// closes that handle again: rows, indexes and commit records are read with
// pread at the offsets the commit record gives, so no HDF5 refresh is
// involved and the Reader holds no HDF5 object between calls (a held
// handle would share HDF5's file object with a writer in the same process
// and block its growth). When the writer has reused the space of the
// Reader's generation (ReuseDelayCommits commits after it was superseded),
// a read fails its checksum and returns ErrStale: Refresh and retry.
type Reader struct {
	mu        sync.RWMutex
	path      string
	opts      ReaderOptions
	log       port.Logger
	fd        *os.File
	sidecars  map[string]*os.File // open segment files, by path
	commitOff int64
	st        *state
	closed    bool
}

const refreshAttempts = 32

// OpenReader opens the store at path read-only.
func OpenReader(path string, opts ReaderOptions) (*Reader, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{path: path, opts: opts, log: opts.Logger, sidecars: map[string]*os.File{}}
	if err := r.open(); err != nil {
		return nil, errors.Join(fmt.Errorf("open reader %s: %w", path, err), r.closeFiles())
	}
	return r, nil
}

func (r *Reader) open() error {
	h, err := h5.Open(r.path, h5.SWMRRead, h5config(r.opts.CacheBytes))
	if err != nil {
		return err
	}
	cds, err := h.OpenDataset("/commit")
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("not an h5store file: %w", err)
	}
	if cds.Records != 2 || cds.RecSize != commitSize {
		return fmt.Errorf("%w: /commit has %d records of %d bytes", port.ErrCorrupt, cds.Records, cds.RecSize)
	}
	r.commitOff = cds.Offset
	if r.fd, err = os.Open(r.path); err != nil {
		return err
	}
	for range refreshAttempts {
		root, err := readRoot(r.fd, r.commitOff)
		if err != nil {
			return err
		}
		st, err := loadState(root, false, r.openSegment, 0)
		if err == nil {
			r.st = st
			r.checkSegments(nil, &root)
			return nil
		}
		if !errors.Is(err, port.ErrCorrupt) || !r.movedFrom(root.gen) {
			return err
		}
	}
	return fmt.Errorf("%w: the writer overwrote every generation this reader tried to load", ErrStale)
}

// movedFrom reports whether the newest commit is no longer gen.
func (r *Reader) movedFrom(gen uint64) bool {
	root, err := readRoot(r.fd, r.commitOff)
	return err == nil && root.gen != gen
}

// stale turns a checksum failure into ErrStale when the writer has moved on
// since this Reader's generation.
func (r *Reader) stale(err error) error {
	if err != nil && errors.Is(err, port.ErrCorrupt) && r.movedFrom(r.st.root.gen) {
		return fmt.Errorf("%w (generation %d): %w", ErrStale, r.st.root.gen, err)
	}
	return err
}

// Generation returns the commit generation the Reader shows.
func (r *Reader) Generation() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.st == nil {
		return 0
	}
	return r.st.root.gen
}

// Refresh moves the Reader to the newest commit. changed is false when
// there is none. Index deltas are applied incrementally while the writer's
// index snapshot is unchanged; a new snapshot is read whole. When the
// writer announces new segments, they are checked with a fresh SWMR open
// (an SWMR reader does not see objects created after it opened the file).
func (r *Reader) Refresh() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	for range refreshAttempts {
		root, err := readRoot(r.fd, r.commitOff)
		if err != nil {
			return false, err
		}
		if root.gen == r.st.root.gen {
			return false, nil
		}
		err = r.advance(root)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, port.ErrCorrupt) || !r.movedFrom(root.gen) {
			return false, fmt.Errorf("refresh to generation %d: %w", root.gen, err)
		}
	}
	return false, fmt.Errorf("refresh: %w: the writer overwrote every generation this reader tried to load", ErrStale)
}

// advance loads root. It reads everything first and changes r.st only when
// nothing can fail any more.
func (r *Reader) advance(root commitRec) error {
	pools, err := buildPools(&root, false, r.openSegment)
	if err != nil {
		return err
	}
	old := &r.st.root
	var (
		fresh  [numKinds]*table
		deltas [numKinds][][]byte
	)
	for k := range numKinds {
		incremental := old.hasSnap[k] && root.hasSnap[k] && old.snap[k] == root.snap[k]
		if !incremental {
			if fresh[k], err = loadTable(&root, &pools, k); err != nil {
				return err
			}
			continue
		}
		for i, d := range root.deltas[k] {
			if slices.Contains(old.deltas[k], d) {
				continue
			}
			blob, err := readBlob(pools[metaPool[k]], d, fmt.Sprintf("%s index delta %d", kindName[k], i))
			if err != nil {
				return err
			}
			deltas[k] = append(deltas[k], blob)
		}
	}
	st := &state{root: root, pools: pools}
	for k := range numKinds {
		if fresh[k] != nil {
			st.tabs[k] = fresh[k]
			continue
		}
		st.tabs[k] = r.st.tabs[k]
		for _, blob := range deltas[k] {
			applyIndex(st.tabs[k], k, blob, true)
		}
	}
	if !sameSegments(old, &root) {
		r.checkSegments(old, &root)
	}
	r.st = st
	return nil
}

// openSegment opens the file of a segment read-only, once.
func (r *Reader) openSegment(pool, index int) (*os.File, error) {
	if index == 0 {
		return r.fd, nil
	}
	file := segmentFile(r.path, pool, index)
	if f := r.sidecars[file]; f != nil {
		return f, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	r.sidecars[file] = f
	return f, nil
}

// checkSegments compares the segments that are new since old with their
// HDF5 datasets: the store file through a fresh SWMR open (an SWMR reader
// does not see objects created after it opened the file), segment files
// read-only. Reads do not depend on HDF5, so problems are only logged.
func (r *Reader) checkSegments(old, root *commitRec) {
	h, err := h5.Open(r.path, h5.SWMRRead, h5config(r.opts.CacheBytes))
	if err != nil {
		r.log.Warn("h5store: open reader handle to check segments", "err", err)
		return
	}
	for _, sr := range root.segments {
		if old != nil && slices.Contains(old.segments, sr) {
			continue
		}
		ds, err := datasetOf(h, r.path, sr.pool, sr.index, r.opts.CacheBytes)
		if err != nil || ds.Offset != sr.offset || ds.Records != sr.capacity {
			r.log.Warn("h5store: segment does not match its HDF5 dataset",
				"segment", segmentName(sr.pool, sr.index), "err", err)
		}
	}
	if err := h.Close(); err != nil {
		r.log.Warn("h5store: close reader handle", "err", err)
	}
}

func (r *Reader) usable() error {
	if r.closed {
		return ErrClosed
	}
	return nil
}

// LoadMeta returns the metadata and directory of the Reader's generation.
func (r *Reader) LoadMeta() (port.Meta, []uint32, bool, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return port.Meta{}, nil, false, err
	}
	m, dir, ok, err := r.st.loadMeta()
	return m, dir, ok, r.stale(err)
}

// ReadBucket reads a bucket of the Reader's generation; see Store.ReadBucket.
// It returns ErrStale when the writer has reused the bucket's space.
func (r *Reader) ReadBucket(id uint32) (port.BucketRecord, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return port.BucketRecord{}, err
	}
	b, err := r.st.readBucket(id)
	return b, r.stale(err)
}

// ReadValueSet reads a value set of the Reader's generation; see ReadBucket.
func (r *Reader) ReadValueSet(id uint64) (port.ValueSetRecord, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return port.ValueSetRecord{}, err
	}
	v, err := r.st.readValueSet(id)
	return v, r.stale(err)
}

// BucketIDs returns the bucket ids of the Reader's generation.
func (r *Reader) BucketIDs() ([]uint32, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return nil, err
	}
	ids, err := r.st.tabs[kindBucket].ids()
	return ids32(ids), err
}

// ValueSetIDs implements port.Lister: the value set ids of the Reader's
// generation greater than after, ascending, at most limit of them.
func (r *Reader) ValueSetIDs(after uint64, limit int) ([]uint64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return nil, err
	}
	return r.st.tabs[kindValueSet].idsAfter(after, limit)
}

// Commit returns port.ErrReadOnly.
func (r *Reader) Commit(*port.Checkpoint) error {
	return fmt.Errorf("h5store reader %s: %w", r.path, port.ErrReadOnly)
}

// Close closes the Reader. Calls after Close return ErrClosed.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	return r.closeFiles()
}

func (r *Reader) closeFiles() error {
	var errs []error
	for _, f := range r.sidecars {
		errs = append(errs, f.Close())
	}
	clear(r.sidecars)
	if r.fd != nil {
		errs = append(errs, r.fd.Close())
		r.fd = nil
	}
	return errors.Join(errs...)
}

// RecycleEntries implements port.EntriesRecycler, as Store's does.
func (r *Reader) RecycleEntries(entries []byte) { recycleEntries(entries) }

var (
	_ port.Backend = (*Store)(nil)
	_ port.Lister  = (*Store)(nil)

	_ port.DeletionLogReader = (*Store)(nil)
	_ port.BucketDeltas      = (*Store)(nil)
	_ port.EntriesRecycler   = (*Store)(nil)
	_ port.Backend           = (*Reader)(nil)
	_ port.Lister            = (*Reader)(nil)
	_ port.EntriesRecycler   = (*Reader)(nil)
)
