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
	// deltas, when not nil, makes the backend take bucket deltas: it
	// holds each bucket's latest delta beside its base in buckets.
	deltas map[uint32]port.BucketRecord
}

// testBackend is a minimal in-memory port.Backend for white-box tests (the
// real reference backend, storage-mem, lives in another module).
type testBackend struct {
	d      *testData
	closed bool
}

func newTestBackend() *testBackend {
	return &testBackend{d: &testData{buckets: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{}, deltas: map[uint32]port.BucketRecord{}}}
}

// newWholeTestBackend returns a testBackend that takes no bucket deltas
// (newTestBackend's do, as do the backends built on them).
func newWholeTestBackend() *testBackend {
	b := newTestBackend()
	b.d.deltas = nil
	return b
}

// BucketDeltas implements port.BucketDeltas.
func (b *testBackend) BucketDeltas() bool { return b.d.deltas != nil }

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
	if d, ok := b.d.deltas[id]; ok {
		merged, keys, err := port.ApplyBucketDelta(nil, nil, r.Entries, d.Entries)
		if err != nil {
			return port.BucketRecord{}, fmt.Errorf("bucket %d: %w: %w", id, port.ErrCorrupt, err)
		}
		r.Entries, r.DeltaKeys, r.SortedCount = merged, keys, uint32(len(merged)/port.EntrySize)
		r.LocalDepth, r.LastCompacted = d.LocalDepth, d.LastCompacted
	}
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
	for _, r := range cp.Buckets {
		if r.Delta {
			if b.d.deltas == nil {
				return fmt.Errorf("bucket %d: a delta sent to a backend that takes none", r.ID)
			}
			if slices.Contains(cp.FreedBuckets, r.ID) {
				return fmt.Errorf("bucket %d: a delta of a freed bucket", r.ID)
			}
			base, ok := b.d.buckets[r.ID]
			if !ok || cp.Full {
				return fmt.Errorf("bucket %d: a delta without a base", r.ID)
			}
			if _, _, err := port.ApplyBucketDelta(nil, nil, base.Entries, r.Entries); err != nil {
				return fmt.Errorf("bucket %d: %w", r.ID, err)
			}
		}
	}
	if cp.Full {
		b.d.buckets, b.d.sets = map[uint32]port.BucketRecord{}, map[uint64]port.ValueSetRecord{}
		if b.d.deltas != nil {
			b.d.deltas = map[uint32]port.BucketRecord{}
		}
	}
	for _, id := range cp.FreedBuckets {
		delete(b.d.buckets, id)
		delete(b.d.deltas, id)
	}
	for _, id := range cp.FreedValueSets {
		delete(b.d.sets, id)
	}
	for _, r := range cp.Buckets {
		if r.Delta {
			b.d.deltas[r.ID] = r
		} else {
			b.d.buckets[r.ID] = r
			delete(b.d.deltas, r.ID)
		}
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
