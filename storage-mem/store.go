package memstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cidstore/cidstore/core/port"
)

// Store is the in-memory backend. It implements port.Backend and
// port.Lister.
type Store struct {
	mu      sync.Mutex
	path    string // "" when volatile
	closed  bool
	has     bool
	meta    port.Meta
	dir     []uint32
	buckets map[uint32]port.BucketRecord
	sets    map[uint64]port.ValueSetRecord
	dels    []port.DeletionRecord

	// failCommit, when set, makes Commit fail (tests of error paths).
	failCommit error
}

var _ port.Backend = (*Store)(nil)
var _ port.Lister = (*Store)(nil)

// New returns a volatile in-memory backend.
func New() *Store {
	return &Store{buckets: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{}}
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
	r.Entries = slices.Clone(r.Entries)
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
func (s *Store) ValueSetIDs() ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.sets)), nil
}

// DeletionLog returns the deletion records committed so far.
func (s *Store) DeletionLog() []port.DeletionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dels)
}

// Commit implements port.Committer. A durable store writes the complete
// new state to its snapshot file before the in-memory state changes, so a
// failed write leaves both the file and memory at the previous checkpoint.
func (s *Store) Commit(cp *port.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.failCommit != nil {
		return s.failCommit
	}
	buckets, sets := s.buckets, s.sets
	switch {
	case cp.Full:
		buckets, sets = map[uint32]port.BucketRecord{}, map[uint64]port.ValueSetRecord{}
	case s.path != "":
		// The snapshot write may fail: build the new state aside.
		buckets, sets = maps.Clone(buckets), maps.Clone(sets)
	}
	for _, id := range cp.FreedBuckets {
		delete(buckets, id)
	}
	for _, id := range cp.FreedValueSets {
		delete(sets, id)
	}
	for _, b := range cp.Buckets {
		buckets[b.ID] = b
	}
	for _, v := range cp.ValueSets {
		sets[v.ID] = v
	}
	dels := append(slices.Clip(s.dels), cp.Deletions...)
	if s.path != "" {
		if err := writeSnapshot(s.path, &cp.Meta, cp.Directory, buckets, sets); err != nil {
			return fmt.Errorf("memstore: commit lsn %d: %w", cp.Meta.CheckpointLSN, err)
		}
	}
	s.has, s.meta, s.dir = true, cp.Meta, slices.Clone(cp.Directory)
	s.buckets, s.sets, s.dels = buckets, sets, dels
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
