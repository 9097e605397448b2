package h5store

import (
	"bytes"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/cidstore/cidstore/core/port"
)

// workload is a deterministic sequence of checkpoints and the state they
// build: checkpoint n depends only on the seed and the state after n-1, so a
// child process and its parent replay the same history. It is the model
// crash and SWMR tests compare a store with.
type workload struct {
	seed    uint64
	lsn     uint64
	buckets map[uint32]port.BucketRecord
	sets    map[uint64]port.ValueSetRecord
	nextB   uint32
	nextV   uint64
	meta    port.Meta
	dir     []uint32
	dels    []port.DeletionRecord
}

func newWorkload(seed uint64) *workload {
	return &workload{seed: seed, buckets: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{}, nextV: 1}
}

func fillRandom(r *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		le.PutUint64(b[i:], r.Uint64()|1)
	}
}

func (w *workload) bucket(r *rand.Rand, id uint32, maxEntries int) port.BucketRecord {
	n := r.IntN(maxEntries + 1)
	b := port.BucketRecord{ID: id, LocalDepth: uint8(r.IntN(20)), SortedCount: uint32(r.IntN(n + 1)),
		LastCompacted: r.Int64N(1 << 60)}
	if n > 0 {
		b.Entries = make([]byte, n*port.EntrySize)
		fillRandom(r, b.Entries)
	}
	return b
}

func (w *workload) valueSet(r *rand.Rand, id uint64, n int) port.ValueSetRecord {
	v := port.ValueSetRecord{ID: id, SortedCount: uint32(r.IntN(n + 1)), Values: make([]byte, n*port.ValueSize)}
	fillRandom(r, v.Values)
	if t := r.IntN(4); t > 0 {
		v.Tombstones = make([]byte, t*port.ValueSize)
		fillRandom(r, v.Tombstones)
	}
	return v
}

func (w *workload) liveBuckets() []uint32 {
	ids := make([]uint32, 0, len(w.buckets))
	for id := range w.buckets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (w *workload) liveSets() []uint64 {
	ids := make([]uint64, 0, len(w.sets))
	for id := range w.sets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// next makes checkpoint lsn+1 and applies it to the model. The returned
// checkpoint shares no memory with the model.
func (w *workload) next() *port.Checkpoint {
	w.lsn++
	r := rand.New(rand.NewPCG(w.seed, w.lsn))
	cp := &port.Checkpoint{}
	put := func(b port.BucketRecord) {
		cp.Buckets = append(cp.Buckets, b)
		c := b
		c.Entries = bytes.Clone(b.Entries)
		w.buckets[b.ID] = c
	}
	putSet := func(v port.ValueSetRecord) {
		cp.ValueSets = append(cp.ValueSets, v)
		c := v
		c.Values, c.Tombstones = bytes.Clone(v.Values), bytes.Clone(v.Tombstones)
		w.sets[v.ID] = c
	}
	if w.lsn%25 == 0 {
		// A full checkpoint drops a few objects and rewrites the rest.
		cp.Full = true
		for _, id := range w.liveBuckets() {
			delete(w.buckets, id)
			if r.IntN(8) > 0 || len(w.buckets) == 0 {
				put(w.bucket(r, id, 64))
			}
		}
		for _, id := range w.liveSets() {
			delete(w.sets, id)
			if r.IntN(8) > 0 {
				putSet(w.valueSet(r, id, 3+r.IntN(300)))
			}
		}
	} else {
		// Like core, a checkpoint never writes an id it frees.
		live := w.liveBuckets()
		if len(live) > 4 && r.IntN(3) == 0 {
			i := r.IntN(len(live))
			cp.FreedBuckets = append(cp.FreedBuckets, live[i])
			delete(w.buckets, live[i])
			live = slices.Delete(live, i, i+1)
		}
		for range r.IntN(4) {
			put(w.bucket(r, w.nextB, 64))
			w.nextB++
		}
		for range 2 + r.IntN(5) {
			if len(live) > 0 {
				put(w.bucket(r, live[r.IntN(len(live))], 64))
			}
		}
		sets := w.liveSets()
		if len(sets) > 3 && r.IntN(3) == 0 {
			i := r.IntN(len(sets))
			cp.FreedValueSets = append(cp.FreedValueSets, sets[i])
			delete(w.sets, sets[i])
			sets = slices.Delete(sets, i, i+1)
		}
		for range r.IntN(3) {
			n := 3 + r.IntN(300)
			if r.IntN(40) == 0 {
				n = 20_000 // a large set now and then drives pool growth
			}
			putSet(w.valueSet(r, w.nextV, n))
			w.nextV++
		}
		if len(sets) > 0 && r.IntN(2) == 0 {
			putSet(w.valueSet(r, sets[r.IntN(len(sets))], 3+r.IntN(300)))
		}
		if len(w.dels) > 0 && r.IntN(3) == 0 {
			cp.TrimDeletions = r.Uint64N(uint64(len(w.dels)) + 1)
			w.dels = slices.Clone(w.dels[cp.TrimDeletions:])
		}
		for range r.IntN(3) {
			d := port.DeletionRecord{KeyHigh: r.Uint64(), KeyLow: r.Uint64(), ValueGroup: r.Uint64N(100), UnixNano: int64(w.lsn)}
			cp.Deletions = append(cp.Deletions, d)
			w.dels = append(w.dels, d)
		}
	}
	if len(w.buckets) == 0 {
		put(w.bucket(r, w.nextB, 8))
		w.nextB++
	}
	live := w.liveBuckets()
	depth := uint8(bits.Len(uint(len(live) - 1)))
	w.dir = make([]uint32, 1<<depth)
	for i := range w.dir {
		w.dir[i] = live[i%len(live)]
	}
	cp.Directory = slices.Clone(w.dir)
	var keys uint64
	for _, b := range w.buckets {
		keys += uint64(len(b.Entries) / port.EntrySize)
	}
	w.meta = port.Meta{FormatVersion: 1, GlobalDepth: depth, HashSeed: w.seed, BucketCapacity: 64,
		CheckpointLSN: w.lsn, NumBuckets: uint32(len(live)), NextBucketID: w.nextB, NextValueSetID: w.nextV,
		CreatedUnixNano: int64(w.seed), Keys: keys, Values: 3 * keys, SpilledKeys: uint64(len(w.sets))}
	cp.Meta = w.meta
	return cp
}

// advanceTo replays the workload up to lsn.
func (w *workload) advanceTo(lsn uint64) error {
	if lsn < w.lsn {
		return fmt.Errorf("model is at lsn %d, past %d", w.lsn, lsn)
	}
	for w.lsn < lsn {
		w.next()
	}
	return nil
}

// verifyState checks that b holds exactly the model's state.
func verifyState(b port.Loader, w *workload) error {
	meta, dir, ok, err := b.LoadMeta()
	if err != nil {
		return err
	}
	if !ok {
		if w.lsn != 0 {
			return fmt.Errorf("nothing committed, model at lsn %d", w.lsn)
		}
		return nil
	}
	if meta != w.meta {
		return fmt.Errorf("meta %+v, want %+v", meta, w.meta)
	}
	if !slices.Equal(dir, w.dir) {
		return fmt.Errorf("lsn %d: directory differs", w.lsn)
	}
	for id, want := range w.buckets {
		got, err := b.ReadBucket(id)
		if err != nil {
			return err
		}
		if got.ID != want.ID || got.LocalDepth != want.LocalDepth || got.SortedCount != want.SortedCount ||
			got.LastCompacted != want.LastCompacted || !bytes.Equal(got.Entries, want.Entries) {
			return fmt.Errorf("lsn %d: bucket %d differs", w.lsn, id)
		}
	}
	for id, want := range w.sets {
		got, err := b.ReadValueSet(id)
		if err != nil {
			return err
		}
		if got.ID != want.ID || got.SortedCount != want.SortedCount || !bytes.Equal(got.Values, want.Values) ||
			!bytes.Equal(got.Tombstones, want.Tombstones) {
			return fmt.Errorf("lsn %d: value set %d differs", w.lsn, id)
		}
	}
	if l, ok := b.(port.DeletionLogReader); ok {
		dels, err := l.DeletionLog()
		if err != nil {
			return err
		}
		if !slices.Equal(dels, w.dels) {
			return fmt.Errorf("lsn %d: deletion log of %d records differs from the model's %d", w.lsn, len(dels), len(w.dels))
		}
	}
	if l, ok := b.(port.Lister); ok {
		bids, err := l.BucketIDs()
		if err != nil {
			return err
		}
		if !slices.Equal(bids, w.liveBuckets()) {
			return fmt.Errorf("lsn %d: bucket ids %v, want %v", w.lsn, bids, w.liveBuckets())
		}
		vids, err := port.ListValueSetIDs(l)
		if err != nil {
			return err
		}
		if !slices.Equal(vids, w.liveSets()) {
			return fmt.Errorf("lsn %d: value set ids differ: %d, want %d", w.lsn, len(vids), len(w.sets))
		}
	}
	return nil
}
