package cidstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// Checkpoint persists the current state to the backend atomically and then
// lets the WAL drop the records it covers. Concurrent readers and writers
// keep running; writers pause only while the changed buckets are copied.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.checkpoint()
}

func (s *Store) checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	start := time.Now()
	s.wmu.Lock()
	if s.idle() {
		// Nothing changed: whatever the estimates say, nothing is pinned.
		s.cache.dirty.Store(0)
		s.cache.growth.Store(0)
		s.wmu.Unlock()
		return nil
	}
	cp, buckets, sets, capt := s.freeze()
	s.stats.ckptStart.Store(time.Now().UnixNano()) // writers pace themselves until it ends (walDelay)
	defer s.stats.ckptStart.Store(0)
	s.wmu.Unlock()
	// Writers run again: a frozen bucket or set they touch is captured by
	// them first (lockBucket, touchSet); the backend pulls the rest from
	// the stream, encoded one at a time.
	streamed := false
	cp.Stream = func(putBucket func(*port.BucketRecord) error, putSet func(*port.ValueSetRecord) error) error {
		if streamed {
			return errors.New("checkpoint stream run twice")
		}
		streamed = true
		return s.stream(capt, buckets, sets, putBucket, putSet)
	}
	s.failpoint("checkpoint.before-commit")
	err := s.backend.Commit(cp)
	if err == nil && !streamed {
		err = errors.New("backend committed without running the checkpoint's stream")
	}
	if err != nil {
		s.wmu.Lock()
		s.requeue(cp, buckets, sets)
		s.restoreTrim(cp.TrimDeletions)
		s.cache.frozen.Store(0) // requeue counted it as dirty again
		s.wmu.Unlock()
		return fmt.Errorf("checkpoint at lsn %d: %w", cp.Meta.CheckpointLSN, err)
	}
	s.committedSeq.Store(capt.seq)
	s.cache.frozen.Store(0)
	s.failpoint("checkpoint.after-commit")
	s.stats.checkpointLSN.Store(cp.Meta.CheckpointLSN)
	s.stats.checkpoints.Add(1)
	s.stats.ckptBucketBytes.Add(capt.bucketBytes)
	s.stats.ckptBucketDeltaBytes.Add(capt.bucketDeltaBytes)
	s.stats.ckptSetBytes.Add(capt.setBytes)
	d := int64(time.Since(start))
	s.stats.lastCkptNanos.Store(d)
	copy(s.ckptDurs[1:], s.ckptDurs[:])
	s.ckptDurs[0] = d
	s.stats.ckptEst.Store(slices.Max(s.ckptDurs[:]))
	s.stats.lastCkptBytes.Store(capt.bytes.Load() + int64(4*len(cp.Directory)))
	s.stats.lastCkptEnd.Store(time.Now().UnixNano())
	if s.wal != nil {
		if err := s.walTruncate(cp.Meta.CheckpointLSN); err != nil {
			return fmt.Errorf("checkpoint at lsn %d: advance wal: %w", cp.Meta.CheckpointLSN, err)
		}
	}
	return nil
}

// streamDrainEvery is how many buckets or value sets the stream encodes
// between hand-overs of what the writer captured meanwhile.
const streamDrainEvery = 64

// stream hands a frozen checkpoint to the backend one record at a time:
// each bucket and value set still frozen is encoded into a buffer reused
// for the next, and the copies the writer made of those it touched first
// are handed over as they accumulate. A checkpoint thus holds no encoded
// copy of everything it writes, only of what the writer changed while it
// ran.
func (s *Store) stream(c *capture, buckets []*bucket, sets []*valueSet,
	putBucket func(*port.BucketRecord) error, putSet func(*port.ValueSetRecord) error) error {
	drain := func() error {
		c.mu.Lock()
		bs, vs := c.buckets, c.sets
		c.buckets, c.sets = nil, nil
		c.mu.Unlock()
		for i := range bs {
			if err := putBucket(&bs[i]); err != nil {
				return err
			}
		}
		// The backend copied them: the writer's next captures reuse the
		// buffers instead of allocating a bucket's worth each.
		c.mu.Lock()
		for i := range bs {
			if len(c.spare) < captureSpareMax {
				c.spare = append(c.spare, bs[i].Entries[:0])
			}
		}
		c.mu.Unlock()
		for i := range vs {
			if err := putSet(&vs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var rec port.BucketRecord
	for i, b := range buckets {
		b.mu.Lock()
		frozen := b.frozen
		if frozen {
			rec = s.encodeBucket(c, b, rec.Entries[:0])
		}
		b.mu.Unlock()
		if frozen {
			if err := putBucket(&rec); err != nil {
				return err
			}
		}
		if i%streamDrainEvery == streamDrainEvery-1 {
			if err := drain(); err != nil {
				return err
			}
		}
	}
	var srec port.ValueSetRecord
	for i, vs := range sets {
		c.mu.Lock()
		frozen := vs.frozen.Load()
		if frozen {
			srec = s.encodeSet(c, vs, srec.Values[:0], srec.Tombstones[:0])
		}
		c.mu.Unlock()
		if frozen {
			if err := putSet(&srec); err != nil {
				return err
			}
		}
		if i%streamDrainEvery == streamDrainEvery-1 {
			if err := drain(); err != nil {
				return err
			}
		}
	}
	return drain()
}

func (s *Store) failpoint(name string) {
	if s.opts.Failpoint != nil {
		s.opts.Failpoint(name)
	}
}

// requeue puts what a failed checkpoint carried back into the next one
// (writer lock held): the backend still holds the previous checkpoint.
// Buckets and sets the stream did not reach are still frozen; they thaw
// here.
func (s *Store) requeue(cp *port.Checkpoint, buckets []*bucket, sets []*valueSet) {
	if cp.Full {
		s.needFull = true
	}
	for _, b := range buckets {
		b.mu.Lock()
		b.frozen = false
		b.mu.Unlock()
		if int(b.id) < len(s.buckets) && s.buckets[b.id] != nil {
			s.markRewritten(s.buckets[b.id]) // what it had is uncounted
		}
	}
	for _, vs := range sets {
		vs.frozen.Store(false)
		if v := s.sets.lookup(vs.id); v != nil {
			s.markSetDirty(v)
		}
	}
	s.freedBuckets = append(cp.FreedBuckets, s.freedBuckets...)
	s.freedSets = append(cp.FreedValueSets, s.freedSets...)
	s.deletions = append(cp.Deletions, s.deletions...)
}

// idle reports whether a checkpoint would change nothing: nothing was
// applied since the last one (writer lock held).
func (s *Store) idle() bool {
	return !s.needFull && len(s.dirtyBuckets) == 0 && len(s.dirtySets) == 0 &&
		len(s.freedBuckets) == 0 && len(s.freedSets) == 0 && len(s.deletions) == 0 &&
		s.appliedLSN() == s.stats.checkpointLSN.Load() && s.gcs.trim == 0
}

// capture collects the persisted forms of the buckets and value sets of one
// checkpoint, as they were when it was frozen.
type capture struct {
	seq     uint64                // checkpoint sequence number (cache.go: savedSeq)
	todo    int64                 // bytes of entries and values frozen (walDelay's progress)
	bytes   atomic.Int64          // bytes of entries and values encoded so far
	mu      sync.Mutex            // serializes captureSet with the stream
	buckets []port.BucketRecord   // copies the writer made (lockBucket)
	sets    []port.ValueSetRecord // copies the writer made (touchSet)
	spare   [][]byte              // entry buffers of drained bucket copies, for reuse

	// Bucket bytes this checkpoint writes (whole records and deltas),
	// the part of them in deltas, and value-set bytes, counted at the
	// freeze (chooseCapture). Added to the stats when it commits.
	bucketBytes, bucketDeltaBytes, setBytes int64
}

// chooseCapture decides at the freeze (writer lock held) whether b's
// capture in checkpoint c is a delta of b's base or whole, and returns
// the bytes it will write. A delta carries the rows of the keys changed
// since the base (cumulative: each replaces the previous one, so a load
// reads the base and one delta); b is written whole when it has no base,
// when the backend takes no deltas, in a full checkpoint, and when its
// changed keys pass foldAt.
func (s *Store) chooseCapture(c *capture, b *bucket, full bool) int64 {
	b.delta = false
	if s.deltas && !full && !b.whole {
		b.compactSince()
		b.delta = len(b.since) <= foldAt(len(b.entries))
	}
	var n int64
	if b.delta {
		n = int64(len(b.since)) * port.EntrySize
		c.bucketDeltaBytes += n
	} else {
		n = int64(len(b.entries)) * port.EntrySize
	}
	c.bucketBytes += n
	return n
}

// freeze takes the consistent cut of a checkpoint (writer lock held): the
// metadata, directory and freed ids as of now, and the buckets and value
// sets changed since the last checkpoint, marked frozen. Copying them is
// left to captureBucket and captureSet, so the writer pauses only for this
// O(changes) marking, not for encoding the state.
func (s *Store) freeze() (*port.Checkpoint, []*bucket, []*valueSet, *capture) {
	d := s.dir.Load()
	full := s.needFull
	s.needFull = false
	cp := &port.Checkpoint{
		Meta: port.Meta{
			FormatVersion:   FormatVersion,
			GlobalDepth:     d.depth,
			HashSeed:        s.seed,
			BucketCapacity:  uint32(s.capacity),
			CheckpointLSN:   s.appliedLSN(),
			NumBuckets:      uint32(s.stats.buckets.Load()),
			NextBucketID:    uint32(len(s.buckets)),
			NextValueSetID:  s.nextVSID,
			CreatedUnixNano: s.created,
			Keys:            s.nkeys,
			Values:          s.nvalues,
			SpilledKeys:     s.nspilled,
		},
		Directory:      make([]uint32, len(d.slots)),
		FreedBuckets:   s.freedBuckets,
		FreedValueSets: s.freedSets,
		Deletions:      s.deletions,
		TrimDeletions:  s.takeTrim(), // garbage collection processed them (gc.go)
		Full:           full,
	}
	for i := range d.slots {
		cp.Directory[i] = d.slots[i].Load().id
	}
	// The writer is stopped: no bucket lock is needed to set frozen. The
	// usual (incremental) case takes one pass over the dirty lists: each
	// bucket or set visited is a cache miss at 10M keys, and three passes
	// over 460k sets held the writer lock for up to 340 ms (BENCHMARKS.md,
	// session 10).
	var buckets []*bucket
	var sets []*valueSet
	var todo int64 // what the stream will encode, for walDelay (full: not counted)
	capt := new(capture)
	if full {
		cp.FreedBuckets, cp.FreedValueSets = nil, nil
		for _, b := range s.buckets {
			if b != nil {
				buckets = append(buckets, b)
			}
		}
		s.sets.each(func(vs *valueSet) { sets = append(sets, vs) })
		slices.SortFunc(sets, func(a, b *valueSet) int { return cmp.Compare(a.id, b.id) })
		for _, b := range s.dirtyBuckets {
			b.dirty = false
		}
		for _, vs := range s.dirtySets {
			vs.dirty = false
		}
		for _, b := range buckets {
			b.frozen = true
			s.chooseCapture(capt, b, true)
		}
		for _, vs := range sets {
			vs.frozen.Store(true)
			capt.setBytes += int64(port.ValueSize * len(vs.vals))
		}
	} else {
		buckets = make([]*bucket, 0, len(s.dirtyBuckets))
		for _, b := range s.dirtyBuckets {
			b.dirty = false
			if !b.retired {
				b.frozen = true
				buckets = append(buckets, b)
				todo += s.chooseCapture(capt, b, false)
			}
		}
		sets = make([]*valueSet, 0, len(s.dirtySets))
		for _, vs := range s.dirtySets {
			vs.dirty = false
			if !vs.freed {
				vs.frozen.Store(true)
				sets = append(sets, vs)
				n := int64(port.ValueSize * len(vs.vals))
				todo += n
				capt.setBytes += n
			}
		}
	}
	s.dirtyBuckets, s.dirtySets = nil, nil
	s.freedBuckets, s.freedSets, s.deletions = nil, nil, nil
	s.ckptSeq++
	s.cache.frozen.Store(s.cache.dirty.Load() + s.cache.growth.Load())
	s.cache.growth.Store(0)
	s.cache.dirty.Store(0)
	capt.seq, capt.todo = s.ckptSeq, todo
	s.capt = capt
	return cp, buckets, sets, capt
}

// lockBucket write-locks b for the writer, first capturing it for the
// checkpoint in progress if it is frozen.
func (s *Store) lockBucket(b *bucket) {
	b.mu.Lock()
	if b.frozen {
		s.captureBucket(b)
	}
}

// captureBucket copies frozen b into the checkpoint in progress, b.mu
// held: the writer is about to change it.
func (s *Store) captureBucket(b *bucket) {
	c := s.capt
	var buf []byte
	c.mu.Lock()
	if n := len(c.spare); n > 0 {
		buf, c.spare = c.spare[n-1], c.spare[:n-1]
	}
	c.mu.Unlock()
	rec := s.encodeBucket(c, b, buf)
	c.mu.Lock()
	c.buckets = append(c.buckets, rec)
	c.mu.Unlock()
}

// captureSpareMax bounds the buffers a capture keeps for reuse: the writer
// captures at most streamDrainEvery buckets between two drains, roughly.
const captureSpareMax = streamDrainEvery

// encodeBucket encodes frozen b for checkpoint c into dst's space and
// thaws it, b.mu held. The record is written sorted (the tail merged in)
// without reordering b itself: the writer reads its buckets without
// locking.
func (s *Store) encodeBucket(c *capture, b *bucket, dst []byte) port.BucketRecord {
	b.frozen = false
	b.savedSeq = c.seq
	s.rechargeBucket(b)
	if b.delta {
		// b.since is sorted and without repeats (chooseCapture), and b
		// has not changed since the freeze.
		b.delta = false
		n := port.EntrySize * len(b.since)
		rec := port.BucketRecord{ID: b.id, LocalDepth: b.depth, SortedCount: uint32(len(b.since)), LastCompacted: b.lastCompacted,
			Entries: slices.Grow(dst[:0], n)[:n], Delta: true}
		for k, key := range b.since {
			row := rec.Entries[k*port.EntrySize:]
			if i := b.find(key, tagOf(s.hash(key))); i >= 0 {
				encodeEntry(row, &b.entries[i])
			} else {
				port.PutRemovalRow(row, key.High, key.Low)
			}
		}
		c.bytes.Add(int64(n))
		return rec
	}
	// A whole record is b's new base once it commits (a failed commit
	// marks b whole again: requeue).
	b.since, b.whole = b.since[:0], false
	n := port.EntrySize * len(b.entries)
	rec := port.BucketRecord{ID: b.id, LocalDepth: b.depth, SortedCount: uint32(len(b.entries)), LastCompacted: b.lastCompacted, Entries: slices.Grow(dst[:0], n)[:n]}
	var buf [bucketTailMax]entry // appendEntry keeps tails this short: no allocation
	tail := append(buf[:0], b.entries[b.sorted:]...)
	slices.SortFunc(tail, func(x, y entry) int { return x.key.Compare(y.key) })
	i, j := 0, 0
	for k := range len(b.entries) {
		var e *entry
		if j == len(tail) || (i < b.sorted && b.entries[i].key.Less(tail[j].key)) {
			e = &b.entries[i]
			i++
		} else {
			e = &tail[j]
			j++
		}
		encodeEntry(rec.Entries[k*port.EntrySize:], e)
	}
	c.bytes.Add(int64(n))
	return rec
}

// touchSet must be called by the writer before it changes vs: a frozen set
// is captured first.
func (s *Store) touchSet(vs *valueSet) {
	if vs.frozen.Load() {
		s.captureSet(vs)
	}
}

// captureSet copies vs into the checkpoint in progress if it is still
// frozen: the writer is about to change it. The writer and the stream
// serialize on the capture's mutex; the writer changes vs only after
// seeing it thawed.
func (s *Store) captureSet(vs *valueSet) {
	c := s.capt
	c.mu.Lock()
	defer c.mu.Unlock()
	if !vs.frozen.Load() {
		return
	}
	c.sets = append(c.sets, s.encodeSet(c, vs, nil, nil))
}

// encodeSet encodes frozen vs for checkpoint c into the space of vals and
// tombs and thaws it, c.mu held.
func (s *Store) encodeSet(c *capture, vs *valueSet, vals, tombs []byte) port.ValueSetRecord {
	n := port.ValueSize * len(vs.vals)
	rec := port.ValueSetRecord{ID: vs.id, SortedCount: uint32(vs.sorted), Values: slices.Grow(vals[:0], n)[:n]}
	for i, v := range vs.vals {
		encodeValue(rec.Values[i*port.ValueSize:], v)
	}
	if len(vs.dead) > 0 {
		rec.Tombstones = slices.Grow(tombs[:0], port.ValueSize*len(vs.dead))
		var buf [port.ValueSize]byte
		for _, v := range vs.vals { // in vals order: deterministic
			if _, gone := vs.dead[v]; gone {
				encodeValue(buf[:], v)
				rec.Tombstones = append(rec.Tombstones, buf[:]...)
			}
		}
	}
	c.bytes.Add(int64(len(rec.Values) + len(rec.Tombstones)))
	vs.savedSeq = c.seq
	s.rechargeSet(vs)
	vs.frozen.Store(false)
	return rec
}

// restore rebuilds the resident state from a committed checkpoint: the
// directory and the bucket headers, whose local depths follow from the
// directory (a bucket at depth d owns an aligned run of 1<<(global-d)
// slots). Buckets and value sets are read on first use (cache.go); a
// read-only store reads them all now, since its backend may move to a newer
// checkpoint under it.
func (s *Store) restore(meta port.Meta, dirIDs []uint32) error {
	if len(dirIDs) != 1<<meta.GlobalDepth {
		return fmt.Errorf("%w: directory has %d slots, global depth %d", ErrCorrupt, len(dirIDs), meta.GlobalDepth)
	}
	s.initHash(meta.HashSeed)
	s.capacity = int(meta.BucketCapacity)
	s.maxDepth = uint8(s.opts.MaxGlobalDepth)
	if meta.GlobalDepth > s.maxDepth {
		s.maxDepth = meta.GlobalDepth
	}
	s.created = meta.CreatedUnixNano
	s.nextVSID = meta.NextValueSetID
	s.vsidLimit.Store(s.nextVSID)
	s.buckets = make([]*bucket, meta.NextBucketID)
	d := newDirectory(meta.GlobalDepth)
	for i := 0; i < len(dirIDs); {
		id := dirIDs[i]
		if int(id) >= len(s.buckets) || s.buckets[id] != nil {
			return fmt.Errorf("%w: directory slot %d: bucket %d out of range or not contiguous", ErrCorrupt, i, id)
		}
		span := 1
		for i+span < len(dirIDs) && dirIDs[i+span] == id {
			span++
		}
		if span&(span-1) != 0 || i%span != 0 {
			return fmt.Errorf("%w: bucket %d: misaligned run of %d slots at slot %d", ErrCorrupt, id, span, i)
		}
		depth := meta.GlobalDepth - uint8(bits.TrailingZeros(uint(span)))
		b := &bucket{id: id, depth: depth, prefix: uint64(i) >> (meta.GlobalDepth - depth)}
		s.buckets[id] = b
		s.depthCount[depth]++
		d.point(b)
		i += span
	}
	for id, b := range s.buckets {
		if b == nil {
			s.freeIDs = append(s.freeIDs, uint32(id))
		}
	}
	s.setDir(d)
	s.stats.buckets.Store(int64(len(s.buckets) - len(s.freeIDs)))
	if n := uint32(len(s.buckets) - len(s.freeIDs)); n != meta.NumBuckets {
		return fmt.Errorf("%w: directory names %d buckets, metadata %d", ErrCorrupt, n, meta.NumBuckets)
	}
	s.nkeys, s.nvalues, s.nspilled = meta.Keys, meta.Values, meta.SpilledKeys
	s.publish()
	s.stats.checkpointLSN.Store(meta.CheckpointLSN)
	s.restoredLSN = meta.CheckpointLSN
	s.lazy = true
	if s.opts.ReadOnly {
		return s.loadAll()
	}
	return nil
}

// readSet loads value set id from the backend into the set table (under
// the lock of the bucket whose entry names it).
func (s *Store) readSet(id uint64) (*valueSet, error) {
	if id == 0 || id >= s.vsidLimit.Load() {
		return nil, fmt.Errorf("%w: value set id %d out of range", ErrCorrupt, id)
	}
	rec, err := s.backend.ReadValueSet(id)
	if err != nil {
		if errors.Is(err, port.ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("read value set %d: %w", id, err)
	}
	if len(rec.Values)%port.ValueSize != 0 || len(rec.Tombstones)%port.ValueSize != 0 || int(rec.SortedCount)*port.ValueSize > len(rec.Values) {
		return nil, fmt.Errorf("%w: value set %d: malformed record", ErrCorrupt, id)
	}
	vs := &valueSet{id: id}
	vals := make([]E, len(rec.Values)/port.ValueSize)
	for i := range vals {
		vals[i] = decodeValue(rec.Values[i*port.ValueSize:])
	}
	vs.vals = vals
	vs.sorted = int(rec.SortedCount)
	if n := len(vs.vals) - vs.sorted; n > tailScanMax {
		vs.tail = make(map[E]struct{}, n)
		for _, v := range vs.vals[vs.sorted:] {
			vs.tail[v] = struct{}{}
		}
	}
	for i := 0; i < len(rec.Tombstones); i += port.ValueSize {
		if vs.dead == nil {
			vs.dead = make(map[E]struct{})
		}
		vs.dead[decodeValue(rec.Tombstones[i:])] = struct{}{}
	}
	if err := vs.check(); err != nil {
		return nil, fmt.Errorf("value set %d: %w", id, err)
	}
	if vs.live() == 0 {
		return nil, fmt.Errorf("%w: value set %d has no live value", ErrCorrupt, id)
	}
	slot := s.sets.alloc(id)
	slot.init(vals)
	slot.sorted, slot.tail, slot.dead = vs.sorted, vs.tail, vs.dead
	s.rechargeSet(slot)
	return slot, nil
}
