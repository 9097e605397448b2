package memstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cidstore/cidstore/core/port"
)

// Store is the in-memory backend. It implements port.Backend, port.Lister
// and port.DeletionLogReader.
type Store struct {
	mu      sync.Mutex
	path    string // "" when volatile
	closed  bool
	has     bool
	meta    port.Meta
	dir     []uint32
	buckets map[uint32]port.BucketRecord // bases
	deltas  map[uint32]port.BucketRecord // the committed delta of a base, if any
	sets    map[uint64]port.ValueSetRecord
	dels    []port.DeletionRecord
	// setIDs is sets' keys, sorted, for ValueSetIDs' pages; nil until a
	// page asks for it after the last change (Commit clears it).
	setIDs []uint64

	// failCommit, when set, makes Commit fail (tests of error paths).
	failCommit error
}

var _ port.Backend = (*Store)(nil)
var _ port.Lister = (*Store)(nil)
var _ port.Volatile = (*Store)(nil)
var _ port.DeletionLogReader = (*Store)(nil)
var _ port.BucketDeltas = (*Store)(nil)

// BucketDeltas implements port.BucketDeltas: a bucket is kept as its base
// and its latest delta, merged when read. A durable store's snapshot file
// holds buckets merged.
func (s *Store) BucketDeltas() bool { return true }

// New returns a volatile in-memory backend.
func New() *Store {
	return &Store{buckets: map[uint32]port.BucketRecord{}, deltas: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{}}
}

// Open returns a durable backend whose checkpoints are snapshots in the file
// at path, loading the snapshot if the file exists.
func Open(path string) (*Store, error) {
	s := New()
	s.path = path
	if err := s.readSnapshot(); err != nil {
		return nil, fmt.Errorf("memstore: open %s: %w", path, err)
	}
	return s, nil
}

// LoadMeta implements port.Loader.
func (s *Store) LoadMeta() (port.Meta, []uint32, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return port.Meta{}, nil, false, errClosed
	}
	if !s.has {
		return port.Meta{}, nil, false, nil
	}
	return s.meta, slices.Clone(s.dir), true, nil
}

// ReadBucket implements port.Loader.
func (s *Store) ReadBucket(id uint32) (port.BucketRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return port.BucketRecord{}, errClosed
	}
	r, ok := s.buckets[id]
	if !ok {
		return port.BucketRecord{}, fmt.Errorf("bucket %d: %w", id, port.ErrNotFound)
	}
	r, err := merge(r, s.deltas)
	if err != nil {
		return port.BucketRecord{}, fmt.Errorf("bucket %d: %w: %w", id, port.ErrCorrupt, err)
	}
	return r, nil
}

// merge returns base r with its delta in deltas applied, in new memory.
func merge(r port.BucketRecord, deltas map[uint32]port.BucketRecord) (port.BucketRecord, error) {
	d, ok := deltas[r.ID]
	if !ok {
		r.Entries = slices.Clone(r.Entries)
		return r, nil
	}
	merged, keys, err := port.ApplyBucketDelta(nil, nil, r.Entries, d.Entries)
	if err != nil {
		return port.BucketRecord{}, err
	}
	r.Entries, r.DeltaKeys = merged, keys
	r.SortedCount = uint32(len(merged) / port.EntrySize)
	r.LocalDepth, r.LastCompacted = d.LocalDepth, d.LastCompacted
	return r, nil
}

// ReadValueSet implements port.Loader.
func (s *Store) ReadValueSet(id uint64) (port.ValueSetRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return port.ValueSetRecord{}, errClosed
	}
	r, ok := s.sets[id]
	if !ok {
		return port.ValueSetRecord{}, fmt.Errorf("value set %d: %w", id, port.ErrNotFound)
	}
	r.Values = slices.Clone(r.Values)
	r.Tombstones = slices.Clone(r.Tombstones)
	return r, nil
}

// BucketIDs implements port.Lister.
func (s *Store) BucketIDs() ([]uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.buckets)), nil
}

// ValueSetIDs implements port.Lister.
func (s *Store) ValueSetIDs(after uint64, limit int) ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("memstore: list value sets: limit %d is not positive", limit)
	}
	if s.setIDs == nil {
		s.setIDs = slices.Sorted(maps.Keys(s.sets))
	}
	i, found := slices.BinarySearch(s.setIDs, after)
	if found {
		i++
	}
	return slices.Clone(s.setIDs[i:min(len(s.setIDs), i+limit)]), nil
}

// Volatile implements port.Volatile: a store from New keeps nothing.
func (s *Store) Volatile() bool { return s.path == "" }

// DeletionLog implements port.DeletionLogReader: the committed deletion
// records, oldest first, after those checkpoints trimmed. The slice belongs
// to the caller.
func (s *Store) DeletionLog() ([]port.DeletionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return slices.Clone(s.dels), nil
}

// Commit implements port.Committer. A durable store writes the complete
// new state to its snapshot file (atomically: temp file, fsync, rename,
// fsync of the directory) before its in-memory state moves to the new
// checkpoint, so a failed write leaves both at the previous checkpoint.
func (s *Store) Commit(cp *port.Checkpoint) error {
	// Before the lock: the stream takes core's bucket locks, and core holds
	// one while it calls ReadBucket and ReadValueSet.
	if err := cp.Collect(); err != nil {
		return fmt.Errorf("memstore: commit lsn %d: %w", cp.Meta.CheckpointLSN, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.failCommit != nil {
		return s.failCommit
	}
	s.setIDs = nil
	if cp.TrimDeletions > uint64(len(s.dels)) {
		return fmt.Errorf("memstore: commit lsn %d: trim %d deletion records of a %d-record log",
			cp.Meta.CheckpointLSN, cp.TrimDeletions, len(s.dels))
	}
	oldB, oldD, oldS := s.buckets, s.deltas, s.sets
	if cp.Full {
		s.buckets, s.deltas, s.sets = map[uint32]port.BucketRecord{}, map[uint32]port.BucketRecord{}, map[uint64]port.ValueSetRecord{}
	}
	// Apply in place, remembering how to undo each change so that a bad
	// delta or a failed snapshot write leaves the previous checkpoint
	// (cheaper than copying the maps).
	var undo []func()
	rollback := func() {
		if cp.Full {
			s.buckets, s.deltas, s.sets = oldB, oldD, oldS // untouched: new maps were filled
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	setBucket := func(m map[uint32]port.BucketRecord, id uint32, r port.BucketRecord, del bool) {
		old, had := m[id]
		undo = append(undo, func() {
			if had {
				m[id] = old
			} else {
				delete(m, id)
			}
		})
		if del {
			delete(m, id)
		} else {
			m[id] = r
		}
	}
	setSet := func(id uint64, r port.ValueSetRecord, del bool) {
		old, had := s.sets[id]
		undo = append(undo, func() {
			if had {
				s.sets[id] = old
			} else {
				delete(s.sets, id)
			}
		})
		if del {
			delete(s.sets, id)
		} else {
			s.sets[id] = r
		}
	}
	for _, id := range cp.FreedBuckets {
		setBucket(s.buckets, id, port.BucketRecord{}, true)
		setBucket(s.deltas, id, port.BucketRecord{}, true)
	}
	for _, id := range cp.FreedValueSets {
		setSet(id, port.ValueSetRecord{}, true)
	}
	for _, b := range cp.Buckets {
		if !b.Delta {
			setBucket(s.buckets, b.ID, b, false)
			setBucket(s.deltas, b.ID, port.BucketRecord{}, true)
			continue
		}
		base, ok := s.buckets[b.ID]
		if !ok {
			rollback()
			return fmt.Errorf("memstore: commit lsn %d: a delta of bucket %d, which has no base", cp.Meta.CheckpointLSN, b.ID)
		}
		if _, _, err := port.ApplyBucketDelta(nil, nil, base.Entries, b.Entries); err != nil {
			rollback()
			return fmt.Errorf("memstore: commit lsn %d: bucket %d: %w", cp.Meta.CheckpointLSN, b.ID, err)
		}
		setBucket(s.deltas, b.ID, b, false)
	}
	for _, v := range cp.ValueSets {
		setSet(v.ID, v, false)
	}
	// A new slice, so that a failed snapshot write leaves s.dels intact and
	// trimmed records are not kept alive.
	dels := s.dels
	if cp.TrimDeletions > 0 || len(cp.Deletions) > 0 {
		kept := s.dels[cp.TrimDeletions:]
		dels = make([]port.DeletionRecord, 0, len(kept)+len(cp.Deletions))
		dels = append(append(dels, kept...), cp.Deletions...)
	}
	if s.path != "" {
		buckets := s.buckets
		if len(s.deltas) > 0 {
			buckets = maps.Clone(s.buckets)
			for id := range s.deltas {
				r, err := merge(buckets[id], s.deltas)
				if err != nil { // Commit checked every delta
					rollback()
					return fmt.Errorf("memstore: commit lsn %d: bucket %d: %w", cp.Meta.CheckpointLSN, id, err)
				}
				r.DeltaKeys = nil
				buckets[id] = r
			}
		}
		if err := writeSnapshot(s.path, &cp.Meta, cp.Directory, buckets, s.sets, dels); err != nil {
			rollback()
			return fmt.Errorf("memstore: commit lsn %d: %w", cp.Meta.CheckpointLSN, err)
		}
	}
	s.has, s.meta, s.dir, s.dels = true, cp.Meta, slices.Clone(cp.Directory), dels
	return nil
}

// Close implements port.Backend.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	s.closed = true
	return nil
}

var errClosed = errors.New("memstore: closed")
