package h5store

import (
	"bytes"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/cidstore/cidstore/core/port"
)

// workload is a deterministic sequence of checkpoints and the state they
// build: checkpoint n depends only on the seed and the state after n-1, so a
// child process and its parent replay the same history. It is the model
// crash and SWMR tests compare a store with.
//
// Half of the new buckets are sorted (a base core could send deltas of);
// a non-full checkpoint sends cumulative deltas of some of those
// (port.BucketRecord.Delta) instead of rewriting them whole, at least one
// when it can, so every such commit writes delta rows.
type workload struct {
	seed    uint64
	lsn     uint64
	buckets map[uint32]port.BucketRecord // as ReadBucket returns them: merged, with DeltaKeys
	sets    map[uint64]port.ValueSetRecord
	// bases are the buckets that take deltas: a sorted base and the keys
	// changed since.
	bases map[uint32]*deltaBase
	nextB uint32
	nextV uint64
	meta  port.Meta
	dir   []uint32
	dels  []port.DeletionRecord
	// noDeltas makes a history without deltas (for files turned into an
	// older format version, which has none).
	noDeltas bool
}

// deltaBase is a bucket's base and the rows of the keys changed since
// (nil: removed), from which its cumulative delta is built.
type deltaBase struct {
	rows    []byte // sorted by key
	changed map[[port.KeySize]byte][]byte
}

func newWorkload(seed uint64) *workload {
	return &workload{seed: seed, buckets: map[uint32]port.BucketRecord{}, sets: map[uint64]port.ValueSetRecord{},
		bases: map[uint32]*deltaBase{}, nextV: 1}
}

// keyCmp orders encoded rows by key, as port does.
func keyCmp(a, b []byte) int {
	if c := cmpU64(le.Uint64(a), le.Uint64(b)); c != 0 {
		return c
	}
	return cmpU64(le.Uint64(a[8:]), le.Uint64(b[8:]))
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rowsOf returns the rows of m sorted by key; a nil row is a removal row
// (port.PutRemovalRow).
func rowsOf(m map[[port.KeySize]byte][]byte) []byte {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b [port.KeySize]byte) int { return keyCmp(a[:], b[:]) })
	var out []byte
	for _, k := range keys {
		r := m[k]
		if r == nil {
			r = make([]byte, port.EntrySize)
			port.PutRemovalRow(r, le.Uint64(k[:]), le.Uint64(k[8:]))
		}
		out = append(out, r...)
	}
	return out
}

// sortedBucket is a bucket of up to maxEntries entries with distinct keys,
// sorted.
func (w *workload) sortedBucket(r *rand.Rand, id uint32, maxEntries int) port.BucketRecord {
	b := w.bucket(r, id, maxEntries)
	n := len(b.Entries) / port.EntrySize
	rows := make([][]byte, n)
	for i := range rows {
		rows[i] = b.Entries[i*port.EntrySize : (i+1)*port.EntrySize]
	}
	slices.SortFunc(rows, keyCmp)
	rows = slices.CompactFunc(rows, func(a, b []byte) bool { return keyCmp(a, b) == 0 })
	b.Entries = slices.Concat(rows...)
	b.SortedCount = uint32(len(rows))
	return b
}

// merged is base with its changes applied, as ReadBucket returns it
// (computed without port.ApplyBucketDelta).
func (d *deltaBase) merged() (rows, keys []byte) {
	cur := map[[port.KeySize]byte][]byte{}
	for o := 0; o < len(d.rows); o += port.EntrySize {
		cur[[port.KeySize]byte(d.rows[o:])] = d.rows[o : o+port.EntrySize]
	}
	for k, r := range d.changed {
		if r == nil {
			delete(cur, k)
		} else {
			cur[k] = r
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(d.changed), func(a, b [port.KeySize]byte) int { return keyCmp(a[:], b[:]) }) {
		keys = append(keys, k[:]...)
	}
	return rowsOf(cur), keys
}

// delta changes a few keys of bucket id (new keys, new rows of present
// keys, removals, also of keys the delta added) and returns its
// cumulative delta record, updating the model.
func (w *workload) delta(r *rand.Rand, id uint32) port.BucketRecord {
	d := w.bases[id]
	if d.changed == nil {
		d.changed = map[[port.KeySize]byte][]byte{}
	}
	cur, _ := d.merged()
	for range 1 + r.IntN(4) {
		row := make([]byte, port.EntrySize)
		fillRandom(r, row)
		switch op := r.IntN(3); {
		case op == 0 || len(cur) == 0:
			d.changed[[port.KeySize]byte(row)] = row
		case op == 1:
			o := r.IntN(len(cur)/port.EntrySize) * port.EntrySize
			copy(row, cur[o:o+port.KeySize])
			d.changed[[port.KeySize]byte(row)] = row
		default:
			o := r.IntN(len(cur)/port.EntrySize) * port.EntrySize
			d.changed[[port.KeySize]byte(cur[o:])] = nil
		}
	}
	return w.deltaRecord(id, uint8(r.IntN(20)), r.Int64N(1<<60))
}

// fold makes the model's buckets with a delta whole, as a compaction
// writes them: the merged rows become the base.
func (w *workload) fold() {
	for id, d := range w.bases {
		if len(d.changed) == 0 {
			continue
		}
		b := w.buckets[id]
		b.DeltaKeys = nil
		w.buckets[id] = b
		w.bases[id] = &deltaBase{rows: bytes.Clone(b.Entries)}
	}
}

// clone returns a copy of w that shares no state that next changes.
func (w *workload) clone() *workload {
	c := *w
	c.buckets, c.sets, c.bases = maps.Clone(w.buckets), maps.Clone(w.sets), maps.Clone(w.bases)
	for id, d := range c.bases {
		c.bases[id] = &deltaBase{rows: d.rows, changed: maps.Clone(d.changed)}
	}
	c.dels, c.dir = slices.Clone(w.dels), slices.Clone(w.dir)
	return &c
}

// setWhole records that bucket b was committed whole.
func (w *workload) setWhole(b port.BucketRecord, sorted bool) {
	c := b
	c.Entries = bytes.Clone(b.Entries)
	w.buckets[b.ID] = c
	delete(w.bases, b.ID)
	if sorted && !w.noDeltas {
		w.bases[b.ID] = &deltaBase{rows: c.Entries}
	}
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
		w.setWhole(b, false)
	}
	// newBucket makes a bucket whole, sorted half of the time.
	newBucket := func(id uint32, maxEntries int) {
		if w.noDeltas || r.IntN(2) == 0 {
			put(w.bucket(r, id, maxEntries))
			return
		}
		b := w.sortedBucket(r, id, maxEntries)
		cp.Buckets = append(cp.Buckets, b)
		w.setWhole(b, true)
	}
	deltas := 0
	putDelta := func(id uint32) {
		cp.Buckets = append(cp.Buckets, w.delta(r, id))
		deltas++
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
			delete(w.bases, id)
			if r.IntN(8) > 0 || len(w.buckets) == 0 {
				newBucket(id, 64)
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
			delete(w.bases, live[i])
			live = slices.Delete(live, i, i+1)
		}
		for range r.IntN(4) {
			newBucket(w.nextB, 64)
			w.nextB++
		}
		// Rewrites: whole, or a delta of a bucket that takes them (also
		// after its whole rewrite earlier in this checkpoint, or before
		// one).
		for range 2 + r.IntN(5) {
			if len(live) == 0 {
				break
			}
			id := live[r.IntN(len(live))]
			switch _, ok := w.bases[id]; {
			case ok && r.IntN(3) > 0:
				putDelta(id)
			case r.IntN(2) == 0:
				newBucket(id, 64)
			default:
				put(w.bucket(r, id, 64))
			}
		}
		if deltas == 0 && len(w.bases) > 0 {
			ids := slices.Sorted(maps.Keys(w.bases))
			putDelta(ids[r.IntN(len(ids))])
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
		newBucket(w.nextB, 8)
		w.nextB++
	}
	w.lsn--
	return w.seal(cp)
}

// seal makes cp checkpoint lsn+1 of the records already applied to the
// model: its directory names the live buckets, its Meta counts them.
func (w *workload) seal(cp *port.Checkpoint) *port.Checkpoint {
	w.lsn++
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

// deltaRecord returns the cumulative delta record of bucket id, from its
// changes in the model, and sets the model's bucket to the merged one.
func (w *workload) deltaRecord(id uint32, depth uint8, lastCompacted int64) port.BucketRecord {
	d := w.bases[id]
	rows := rowsOf(d.changed)
	b := port.BucketRecord{ID: id, LocalDepth: depth, SortedCount: uint32(len(rows) / port.EntrySize),
		LastCompacted: lastCompacted, Entries: rows, Delta: true}
	merged, keys := d.merged()
	w.buckets[id] = port.BucketRecord{ID: id, LocalDepth: depth, SortedCount: uint32(len(merged) / port.EntrySize),
		LastCompacted: lastCompacted, Entries: merged, DeltaKeys: keys}
	return b
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
			got.LastCompacted != want.LastCompacted || !bytes.Equal(got.Entries, want.Entries) ||
			!bytes.Equal(got.DeltaKeys, want.DeltaKeys) || got.Delta {
			return fmt.Errorf("lsn %d: bucket %d differs (%d entries, %d delta keys; want %d, %d)", w.lsn, id,
				got.EntryCount(), len(got.DeltaKeys)/port.KeySize, want.EntryCount(), len(want.DeltaKeys)/port.KeySize)
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
