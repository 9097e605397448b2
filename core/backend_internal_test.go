package cidstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cidstore/cidstore/core/port"
)

// testData is what a testBackend persists; handles share it so that a store
// can be closed and reopened.
type testData struct {
	mu      sync.Mutex
	has     bool
	meta    port.Meta
	dir     []uint32
	buckets map[uint32]port.BucketRecord
	sets    map[uint64]port.ValueSetRecord
	commits int
}

// testBackend is a minimal in-memory port.Backend for white-box tests (the
// real reference backend, storage-mem, lives in another module).
type testBackend struct {
	d      *testData
	closed bool
}

func newTestBackend() *testBackend {
	return &testBackend{d: &testData{buckets: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{}}}
}

// reopen returns a fresh handle on the same data.
func (b *testBackend) reopen() *testBackend { return &testBackend{d: b.d} }

var errTestClosed = errors.New("test backend closed")

func (b *testBackend) LoadMeta() (port.Meta, []uint32, bool, error) {
	if b.closed {
		return port.Meta{}, nil, false, errTestClosed
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	return b.d.meta, slices.Clone(b.d.dir), b.d.has, nil
}

func (b *testBackend) ReadBucket(id uint32) (port.BucketRecord, error) {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	r, ok := b.d.buckets[id]
	if !ok {
		return r, fmt.Errorf("bucket %d: %w", id, port.ErrNotFound)
	}
	r.Entries = slices.Clone(r.Entries)
	return r, nil
}

func (b *testBackend) ReadValueSet(id uint64) (port.ValueSetRecord, error) {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	r, ok := b.d.sets[id]
	if !ok {
		return r, fmt.Errorf("value set %d: %w", id, port.ErrNotFound)
	}
	r.Values, r.Tombstones = slices.Clone(r.Values), slices.Clone(r.Tombstones)
	return r, nil
}

func (b *testBackend) Commit(cp *port.Checkpoint) error {
	if b.closed {
		return errTestClosed
	}
	if err := cp.Collect(); err != nil {
		return err
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if cp.Full {
		b.d.buckets, b.d.sets = map[uint32]port.BucketRecord{}, map[uint64]port.ValueSetRecord{}
	}
	for _, id := range cp.FreedBuckets {
		delete(b.d.buckets, id)
	}
	for _, id := range cp.FreedValueSets {
		delete(b.d.sets, id)
	}
	for _, r := range cp.Buckets {
		b.d.buckets[r.ID] = r
	}
	for _, r := range cp.ValueSets {
		b.d.sets[r.ID] = r
	}
	b.d.has, b.d.meta, b.d.dir = true, cp.Meta, slices.Clone(cp.Directory)
	b.d.commits++
	return nil
}

func (b *testBackend) Close() error {
	if b.closed {
		return errTestClosed
	}
	b.closed = true
	return nil
}

func (b *testBackend) setIDs() []uint64 {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	return slices.Sorted(maps.Keys(b.d.sets))
}
