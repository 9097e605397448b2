package cidstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// FormatVersion is the on-disk format this code writes and reads.
const FormatVersion = 2

// Store is a hash directory from 128-bit keys to sets of 128-bit values.
// It is safe for concurrent use: mutations are serialized by a single
// writer lock, and any number of Get calls run concurrently with them.
type Store struct {
	opts    Options
	backend port.Backend
	log     port.Logger
	seed    uint64
	hash    func(E) uint64

	dir atomic.Pointer[directory]

	// wmu is the writer lock. Everything below it is owned by the writer.
	wmu        sync.Mutex
	buckets    []*bucket // by id; nil for free ids
	freeIDs    []uint32
	depthCount [65]int // live buckets per local depth
	nextVSID   uint64
	capacity   int
	splitSide  []uint64 // split's scratch: which half each entry goes to (writer only)
	warmth     warmState
	maxDepth   uint8
	created    int64

	dirtyBuckets []*bucket
	dirtySets    []*valueSet
	freedBuckets []uint32
	freedSets    []uint64
	deletions    []port.DeletionRecord
	needFull     bool // the next checkpoint must write everything
	deltas       bool // the backend takes bucket deltas (port.BucketDeltas)

	sets setTable // value sets by id

	// Live counts, owned by the writer and published to stats after each
	// mutation so that the per-pair path does no atomic operations.
	nkeys, nvalues, nspilled uint64

	promote atomic.Int32 // promotion threshold, 1 or 2
	closed  atomic.Bool

	capt    *capture // the checkpoint being captured (see freeze)
	ckptSeq uint64   // sequence number of the last frozen checkpoint
	// committedSeq is the sequence number of the last committed checkpoint.
	committedSeq atomic.Uint64
	// vsidLimit mirrors nextVSID for readers that validate loaded records.
	vsidLimit atomic.Uint64
	// lazy is set when buckets may be absent from memory (a restored store,
	// or a cache budget): the writer then loads what a batch needs first.
	lazy        bool
	cache       cache
	wal         *walState // nil without a WAL
	restoredLSN uint64    // checkpoint LSN the state was loaded from

	ckptMu   sync.Mutex // serializes checkpoints
	ckptDurs [3]int64   // durations of the last checkpoints, newest first (under ckptMu)
	gcMu     sync.Mutex // serializes garbage-collection passes (gc.go)
	// gcw is the running full scan's record of bucket loads, or nil (gc.go).
	gcw   atomic.Pointer[gcWalk]
	stats counters
	bg    sync.WaitGroup
	stop  chan struct{}

	// Background maintenance and garbage collection (scheduler.go, gc.go).
	maint maintState
	gcs   gcState
}

type counters struct {
	keys, values, spilled               atomic.Uint64
	splits, merges, doublings, halvings atomic.Uint64
	promotions, demotions, compactions  atomic.Uint64
	checkpoints, recovered              atomic.Uint64
	checkpointLSN                       atomic.Uint64
	lastCkptNanos, lastCkptBytes        atomic.Int64
	ckptBucketBytes, ckptSetBytes       atomic.Int64 // encoded by committed checkpoints
	ckptBucketDeltaBytes                atomic.Int64 // what delta checkpoints would have written
	lastCkptEnd                         atomic.Int64 // Unix ns of the end of the last checkpoint
	walFullWaits                        atomic.Uint64
	walDelays                           atomic.Uint64
	walDelayNanos                       atomic.Int64
	memDelays                           atomic.Uint64
	memDelayNanos                       atomic.Int64
	ckptStart                           atomic.Int64 // Unix ns of the running checkpoint's freeze, 0 when none
	ckptEst                             atomic.Int64 // ns: expected duration of a checkpoint (walDelay)
	ckptWaitMax                         atomic.Int64 // ns: longest wait of a mutation for a checkpoint
	buckets                             atomic.Int64
	globalDepth                         atomic.Int64
}

// Open opens (or creates) a store on backend. It loads the backend's last
// committed checkpoint and, with opts.WALPath set, replays the WAL records
// written after it. The Store owns backend from then on: Close closes it.
func Open(backend port.Backend, opts Options) (*Store, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalid)
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, errors.Join(err, backend.Close())
	}
	s := &Store{opts: opts, backend: backend, log: opts.Logger, stop: make(chan struct{})}
	s.promote.Store(int32(opts.PromotionThreshold))
	s.cache.kick = make(chan struct{}, 1)
	if d, ok := backend.(port.BucketDeltas); ok && !opts.WholeBuckets && !opts.ReadOnly {
		s.deltas = d.BucketDeltas()
	}
	if !opts.ReadOnly {
		// A read-only store's backend may move on to a newer checkpoint: it
		// keeps everything it loaded at Open.
		s.cache.budget = opts.CacheBytes
		s.lazy = opts.CacheBytes > 0
	}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, backend.Close())
	}
	if s.needFull && !opts.ReadOnly {
		// A new store commits its empty state at once: its hash seed and
		// layout are in the backend from the start, and the first
		// checkpoint of its data is incremental like every later one
		// (streamed; a full checkpoint is collected in memory and holds
		// the backend's readers while it is written).
		if err := s.checkpoint(); err != nil {
			return nil, errors.Join(fmt.Errorf("create: %w", err), backend.Close())
		}
	}
	if opts.WALPath != "" {
		if err := s.openWAL(); err != nil {
			return nil, errors.Join(err, backend.Close())
		}
		s.cache.setPinLimit()
	}
	s.startBackground()
	s.startEvictor()
	return s, nil
}

// load restores the last committed checkpoint, or initializes a new store.
func (s *Store) load() error {
	meta, dirIDs, ok, err := s.backend.LoadMeta()
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	if !ok {
		seed := s.opts.HashSeed
		for seed == 0 {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("hash seed: %w", err)
			}
			seed = binary.LittleEndian.Uint64(b[:])
		}
		s.initHash(seed)
		s.capacity = s.opts.BucketCapacity
		s.maxDepth = uint8(s.opts.MaxGlobalDepth)
		s.created = time.Now().UnixNano()
		s.nextVSID = 1
		s.vsidLimit.Store(1)
		d := newDirectory(0)
		b := s.newBucket(0, 0)
		d.point(b)
		s.setDir(d)
		s.needFull = true
		return nil
	}
	if meta.FormatVersion > FormatVersion {
		return fmt.Errorf("%w: store format version %d is newer than this code's %d; upgrade cidstore", ErrInvalid, meta.FormatVersion, FormatVersion)
	}
	if meta.FormatVersion < FormatVersion {
		return fmt.Errorf("%w: store format version %d is older than this code's %d and no migration exists; export with the older release and re-import", ErrInvalid, meta.FormatVersion, FormatVersion)
	}
	return s.restore(meta, dirIDs)
}

func (s *Store) initHash(seed uint64) {
	s.seed = seed
	if s.opts.hash != nil {
		s.hash = s.opts.hash
		return
	}
	s.hash = func(k E) uint64 { return dirHash(k, seed) }
}

func (s *Store) setDir(d *directory) {
	s.dir.Store(d)
	s.stats.globalDepth.Store(int64(d.depth))
}

// markRewritten is markDirty for a change that leaves b with no
// persisted base to be a delta of (splits, merges, new buckets).
func (s *Store) markRewritten(b *bucket) {
	b.whole, b.since = true, nil
	s.markChanged(b)
}

// markMaintained queues b after maintenance changed it (writer only, b.mu
// released): demoted keys' entries changed; a sort-merge of the tail
// changed only the order in memory (the persisted bucket is sorted
// anyway) and lastCompacted, which a delta carries too.
func (s *Store) markMaintained(b *bucket, demoted []E) {
	for _, k := range demoted {
		s.markDirty(b, k)
	}
	s.markChanged(b)
}

// newBucket allocates a bucket id and registers the bucket (writer only).
func (s *Store) newBucket(depth uint8, prefix uint64) *bucket {
	var id uint32
	if n := len(s.freeIDs); n > 0 {
		id = s.freeIDs[n-1]
		s.freeIDs = s.freeIDs[:n-1]
	} else {
		id = uint32(len(s.buckets))
		s.buckets = append(s.buckets, nil)
	}
	b := &bucket{id: id, depth: depth, prefix: prefix}
	b.loaded.Store(true)
	s.cache.admit(b)
	s.buckets[id] = b
	s.depthCount[depth]++
	s.stats.buckets.Add(1)
	s.markRewritten(b)
	return b
}

// freeBucket retires b and releases its id (writer only; b.mu held).
func (s *Store) freeBucket(b *bucket) {
	b.retired = true
	b.entries, b.tags, b.since = nil, nil, nil
	s.cache.used.Add(-b.charge)
	b.charge = 0
	s.buckets[b.id] = nil
	s.freeIDs = append(s.freeIDs, b.id)
	s.freedBuckets = append(s.freedBuckets, b.id)
	s.depthCount[b.depth]--
	s.stats.buckets.Add(-1)
}

// markDirty records a change of key k's entry in b (added, changed or
// removed; writer only, after b.mu is released).
func (s *Store) markDirty(b *bucket, k E) {
	if s.deltas && !b.whole {
		b.since = append(b.since, k)
		if n := len(b.since); n > 2*foldAt(len(b.entries))+8 {
			b.compactSince()
			if len(b.since) > foldAt(len(b.entries)) {
				b.whole, b.since = true, nil // the next capture is a new base
			}
		}
	}
	s.markChanged(b)
}

// markChanged queues b for the next checkpoint.
func (s *Store) markChanged(b *bucket) {
	s.noteWrite(b)
	if !b.dirty {
		b.dirty = true
		s.dirtyBuckets = append(s.dirtyBuckets, b)
		s.cache.dirty.Add(bucketCharge(b))
	}
}

func (s *Store) markSetDirty(vs *valueSet) {
	vs.maint.written = true
	if !vs.dirty {
		vs.dirty = true
		s.dirtySets = append(s.dirtySets, vs)
		s.cache.dirty.Add(setCharge(vs))
	}
}

func (s *Store) check(keys ...E) error {
	if s.closed.Load() {
		return ErrClosed
	}
	for _, k := range keys {
		if k.IsZero() {
			return fmt.Errorf("%w: zero identifier", ErrInvalid)
		}
	}
	return nil
}

// Insert adds value to key's set. Inserting a present pair is a no-op.
func (s *Store) Insert(ctx context.Context, key, value E) error {
	if err := s.check(key, value); err != nil {
		return err
	}
	return s.mutate(ctx, []walOp{{op: OpInsert, key: key, value: value}}, false)
}

// InsertBatch adds every pair, atomically: a batch with an invalid pair is
// rejected whole and changes nothing, and after a crash either all or none
// of a batch is recovered. Duplicate pairs, within the batch or with the
// store, are no-ops. An empty batch returns nil.
func (s *Store) InsertBatch(ctx context.Context, pairs []Pair) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(pairs) == 0 {
		return nil
	}
	buf := getOps(len(pairs))
	defer putOps(buf)
	ops := *buf
	for i, p := range pairs {
		if p.Key.IsZero() || p.Value.IsZero() {
			return fmt.Errorf("%w: pair %d: zero identifier", ErrInvalid, i)
		}
		ops[i] = walOp{op: OpInsert, key: p.Key, value: p.Value}
	}
	return s.mutate(ctx, ops, true)
}

// opsPool recycles the op arrays of batches: a batch of 1 000 pairs is 40
// KiB, and fresh memory is costly on the machines measured (BENCHMARKS.md:
// ~13 µs per page fault). mutate keeps nothing of ops once it returns.
var opsPool sync.Pool // *[]walOp

// opsPoolMax bounds the arrays kept: a rare huge batch is not held on to.
const opsPoolMax = 1 << 16

func getOps(n int) *[]walOp {
	if p, ok := opsPool.Get().(*[]walOp); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	ops := make([]walOp, n, max(n, 1024))
	return &ops
}

func putOps(p *[]walOp) {
	if cap(*p) <= opsPoolMax {
		opsPool.Put(p)
	}
}

// Delete removes key and all its values. Deleting an absent key is a no-op.
func (s *Store) Delete(ctx context.Context, key E) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.mutate(ctx, []walOp{{op: OpDeleteKey, key: key}}, false)
}

// DeleteValue removes value from key's set. Deleting an absent value is a
// no-op.
func (s *Store) DeleteValue(ctx context.Context, key, value E) error {
	if err := s.check(key, value); err != nil {
		return err
	}
	return s.mutate(ctx, []walOp{{op: OpDeleteValue, key: key, value: value}}, false)
}

// DeleteBatch applies deletions in order, atomically like InsertBatch. A
// Deletion with a zero Value deletes the whole key.
func (s *Store) DeleteBatch(ctx context.Context, dels []Deletion) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(dels) == 0 {
		return nil
	}
	buf := getOps(len(dels))
	defer putOps(buf)
	ops := *buf
	for i, d := range dels {
		if d.Key.IsZero() {
			return fmt.Errorf("%w: deletion %d: zero key", ErrInvalid, i)
		}
		op := OpDeleteValue
		if d.Value.IsZero() {
			op = OpDeleteKey
		}
		ops[i] = walOp{op: op, key: d.Key, value: d.Value}
	}
	return s.mutate(ctx, ops, true)
}

// walOp is one logical mutation.
type walOp struct {
	op         Op
	key, value E
}

// mutate logs ops (as one transaction when txn is set), applies them and
// waits until they are durable under the sync policy.
func (s *Store) mutate(ctx context.Context, ops []walOp, txn bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.wmu.Lock()
	if s.closed.Load() {
		s.wmu.Unlock()
		return ErrClosed
	}
	var first, last uint64
	var fill0 int64 // the cache's fill before the batch (delayed writes)
	for {
		if c := &s.cache; c.mustWait() && s.evictForWriter() {
			// Backpressure: the cache is over budget, eviction cannot
			// bring it back (the evictor runs on its own and may not have
			// caught up with this writer's loads: try first), and what
			// changed since the last checkpoint passes what memory may
			// pin; wait for a checkpoint to make it evictable, then evict.
			s.wmu.Unlock()
			t0 := time.Now()
			err := s.checkpointForMemory()
			s.noteCheckpointWait(t0)
			if err == nil {
				err = ctx.Err()
			}
			s.wmu.Lock()
			if err != nil {
				s.wmu.Unlock()
				return fmt.Errorf("cache full, checkpoint: %w", err)
			}
			if s.closed.Load() {
				s.wmu.Unlock()
				return ErrClosed
			}
			if c.over() {
				s.evict()
			}
			continue
		}
		// Load what the batch touches before it is logged, so that applying
		// it cannot fail; again after walAppend (or the backpressure above)
		// waited without the writer lock (the evictor may have run).
		fill0 = s.cache.fill()
		if err := s.prepare(ops); err != nil {
			s.wmu.Unlock()
			return err
		}
		if s.wal == nil {
			break
		}
		var err error
		first, last, err = s.walAppend(ctx, ops, txn)
		if errors.Is(err, errWALWaited) {
			continue
		}
		if err != nil {
			s.wmu.Unlock()
			return err
		}
		break
	}
	pin0 := s.cache.pinned()
	s.applyBatch(ops)
	s.maint.writes += uint64(len(ops))
	s.publish()
	if c := &s.cache; c.budget > 0 {
		c.growth.Add(int64(len(ops)) * growthPerOp)
		if c.wantCheckpoint() {
			select { // checkpoint early, so that writers rarely wait
			case s.wal.ckpt <- struct{}{}:
			default:
			}
		}
	}
	var walHold, memHold time.Duration // delayed write (wal.go)
	if s.wal != nil {
		walHold, memHold = s.pace(s.cache.pinned()-pin0, s.cache.fill()-fill0)
	}
	s.wmu.Unlock()
	if s.cache.over() {
		s.kickEvict()
	}
	switch { // a batch held for both is counted where it waited longer
	case walHold >= memHold && walHold > 0:
		s.stats.walDelays.Add(1)
		s.stats.walDelayNanos.Add(int64(walHold))
		time.Sleep(walHold)
	case memHold > walHold:
		s.stats.memDelays.Add(1)
		s.stats.memDelayNanos.Add(int64(memHold))
		time.Sleep(memHold)
	}
	if s.wal != nil {
		if err := s.walWait(last); err != nil {
			return err
		}
	}
	if s.opts.Notify != nil {
		s.notify(ops, first, txn)
	}
	return nil
}

func (s *Store) notify(ops []walOp, first uint64, txn bool) {
	muts := make([]Mutation, len(ops))
	lsn := first
	if txn && lsn > 0 {
		lsn++ // skip TXN_START
	}
	for i, o := range ops {
		muts[i] = Mutation{Op: o.op, Key: o.key, Value: o.value, LSN: lsn}
		if lsn > 0 {
			lsn++
		}
	}
	s.opts.Notify(muts)
}

// applyBatch applies prepared ops in order, warming them a chunk at a
// time (warm.go; writer only).
func (s *Store) applyBatch(ops []walOp) {
	for rest := ops; len(rest) > 0; {
		chunk := rest[:min(len(rest), warmChunk)]
		if hints := s.warm(chunk); hints != nil {
			for i := range chunk {
				s.applyHinted(&chunk[i], &hints[i])
			}
		} else {
			for i := range chunk {
				s.apply(&chunk[i])
			}
		}
		rest = rest[len(chunk):]
	}
}

// apply performs one mutation on the in-memory state (writer only).
func (s *Store) apply(o *walOp) { s.applyHinted(o, nil) }

// applyHinted is apply with what warm saw of the op's key (nil: nothing).
func (s *Store) applyHinted(o *walOp, hint *warmHint) {
	switch o.op {
	case OpInsert:
		s.applyInsert(o.key, o.value, hint)
	case OpDeleteKey:
		s.applyDeleteKey(o.key)
	case OpDeleteValue:
		s.applyDeleteValue(o.key, o.value)
	}
}

// publish copies the writer's live counts to the stats (writer only).
func (s *Store) publish() {
	s.stats.keys.Store(s.nkeys)
	s.stats.values.Store(s.nvalues)
	s.stats.spilled.Store(s.nspilled)
}

// bucketFor returns the bucket that owns h (writer only: no validation
// needed, the writer is the only one that changes ownership).
func (s *Store) bucketFor(h uint64) *bucket {
	return s.dir.Load().lookup(h)
}

// applyBucket is bucketFor for the apply paths: prepare loaded the bucket,
// and applying to one that is not loaded would lose its committed entries,
// so that is a bug worth a crash (the WAL still holds the batch).
func (s *Store) applyBucket(h uint64) *bucket {
	b := s.bucketFor(h)
	if !b.loaded.Load() {
		panic(fmt.Sprintf("cidstore: bucket %d is not loaded at apply time", b.id))
	}
	return b
}

func (s *Store) applyInsert(k, v E, hint *warmHint) {
	h := s.hash(k)
	tag := tagOf(h)
	for {
		b := s.applyBucket(h)
		i := -1
		switch {
		case hint == nil:
			i = b.find(k, tag)
		case !hint.absent(b):
			i = b.findHinted(k, tag, hint.c0, hint.c1)
		}
		if i >= 0 {
			s.addValue(b, i, v)
			return
		}
		if len(b.entries) >= s.capacity && s.splitFor(b, h) {
			continue // ownership changed: find the bucket again
		}
		s.lockBucket(b)
		b.appendEntry(entry{key: k, s0: v}, tag, s.capacity)
		b.mu.Unlock()
		s.markDirty(b, k)
		s.nkeys++
		s.nvalues++
		return
	}
}

// addValue adds v to entry i of b, promoting it to a value set when the
// inline slots overflow.
func (s *Store) addValue(b *bucket, i int, v E) {
	e := &b.entries[i]
	if e.spilled() {
		vs := s.sets.get(e.spillID())
		s.touchSet(vs)
		b.mu.Lock()
		changed := vs.add(v)
		b.mu.Unlock()
		if changed {
			s.markSetDirty(vs)
			s.nvalues++
		}
		return
	}
	if e.s0 == v || e.s1 == v {
		return
	}
	inline := 1
	if !e.s1.IsZero() {
		inline = 2
	}
	s.lockBucket(b)
	switch {
	case inline < int(s.promote.Load()):
		if v.Less(e.s0) {
			e.s0, e.s1 = v, e.s0
		} else {
			e.s1 = v
		}
	default:
		var vals [smallInline]E // inline ≤ 2 < smallInline
		vals[0] = e.s0
		n := 1
		if inline == 2 {
			vals[1], n = e.s1, 2
		}
		vals[n] = v
		n++
		sortSmall(vals[:n])
		id := s.nextVSID
		s.nextVSID++
		s.vsidLimit.Store(s.nextVSID)
		s.failpoint("store.promote")
		vs := s.sets.alloc(id)
		vs.initSmall(vals, n)
		e.s0, e.s1 = E{}, spillPointer(id)
		s.markSetDirty(vs)
		s.nspilled++
		s.stats.promotions.Add(1)
	}
	b.mu.Unlock()
	s.markDirty(b, e.key)
	s.nvalues++
}

func sortSmall(v []E) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j].Less(v[j-1]); j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

func (s *Store) applyDeleteKey(k E) {
	h := s.hash(k)
	b := s.applyBucket(h)
	i := b.find(k, tagOf(h))
	if i < 0 {
		return
	}
	e := b.entries[i]
	s.lockBucket(b)
	b.removeEntry(i)
	b.mu.Unlock()
	// No reader can reach e's value set any more: it would need the entry.
	if e.spilled() {
		vs := s.sets.get(e.spillID())
		s.nvalues -= uint64(vs.live())
		s.dropSet(vs, k)
	} else {
		s.nvalues--
		if !e.s1.IsZero() {
			s.nvalues--
		}
	}
	s.markDirty(b, k)
	s.nkeys--
}

// dropSet forgets a value set that no entry references any more.
func (s *Store) dropSet(vs *valueSet, k E) {
	s.touchSet(vs)
	s.cache.used.Add(-vs.charge)
	s.freedSets = append(s.freedSets, vs.id)
	s.sets.free(vs) // checkpoints skip it if it is still queued
	s.deletions = append(s.deletions, port.DeletionRecord{KeyHigh: k.High, KeyLow: k.Low, ValueGroup: vs.id, UnixNano: time.Now().UnixNano()})
	s.nspilled--
}

func (s *Store) applyDeleteValue(k, v E) {
	h := s.hash(k)
	b := s.applyBucket(h)
	i := b.find(k, tagOf(h))
	if i < 0 {
		return
	}
	e := &b.entries[i]
	if e.spilled() {
		vs := s.sets.get(e.spillID())
		if !vs.has(v) {
			return
		}
		s.touchSet(vs)
		s.lockBucket(b)
		vs.remove(v)
		empty := vs.live() == 0
		if empty {
			b.removeEntry(i)
		} else if vs.tombstoneHeavy() {
			vs.compact() // reads would otherwise filter every tombstone
			s.stats.compactions.Add(1)
		}
		b.mu.Unlock()
		s.nvalues--
		if empty {
			s.dropSet(vs, k)
			s.markDirty(b, k)
			s.nkeys--
			return
		}
		s.markSetDirty(vs)
		return
	}
	switch v {
	case e.s0:
		s.lockBucket(b)
		if e.s1.IsZero() {
			b.removeEntry(i)
			s.nkeys--
		} else {
			e.s0, e.s1 = e.s1, E{}
		}
		b.mu.Unlock()
	case e.s1:
		s.lockBucket(b)
		e.s1 = E{}
		b.mu.Unlock()
	default:
		return
	}
	s.markDirty(b, k)
	s.nvalues--
}

// Get returns every live value of key, ascending by (High, Low); an empty,
// non-nil slice when the key is absent. It never waits for a whole write
// batch: only for the single mutation of key's bucket in progress.
func (s *Store) Get(ctx context.Context, key E) ([]E, error) {
	if err := s.check(key); err != nil {
		return nil, err
	}
	h := s.hash(key)
	tag := tagOf(h)
	for {
		b := s.dir.Load().lookup(h)
		b.mu.RLock()
		if !b.owns(h) {
			b.mu.RUnlock()
			continue // a split or merge moved key's range: look again
		}
		if !b.loaded.Load() {
			b.mu.RUnlock()
			if err := s.loadBucket(b); err != nil {
				return nil, err
			}
			continue
		}
		if !b.ref.Load() {
			b.ref.Store(true)
		}
		s.noteRead(b, h)
		i := b.find(key, tag)
		if i < 0 {
			b.mu.RUnlock()
			return []E{}, nil
		}
		e := &b.entries[i]
		if !e.spilled() {
			var out []E
			if e.s1.IsZero() {
				out = []E{e.s0}
			} else {
				out = []E{e.s0, e.s1}
			}
			b.mu.RUnlock()
			return out, nil
		}
		vs := s.sets.lookup(e.spillID())
		if vs == nil {
			id := e.spillID()
			b.mu.RUnlock()
			if err := s.loadSetOf(b, id); err != nil {
				return nil, err
			}
			continue
		}
		out, n := vs.appendLive(make([]E, 0, vs.live()))
		b.mu.RUnlock()
		return sortTail(out, n), nil
	}
}

// PromotionThreshold returns how many values a key keeps inline before it
// spills to a value set.
func (s *Store) PromotionThreshold() int { return int(s.promote.Load()) }

// SetPromotionThreshold changes the promotion threshold (1 or 2) for
// future promotions; existing entries keep their form until maintenance.
func (s *Store) SetPromotionThreshold(n int) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if n < 1 || n > 2 {
		return fmt.Errorf("%w: promotion threshold %d not in [1, 2]", ErrInvalid, n)
	}
	s.promote.Store(int32(n))
	return nil
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	c := &s.stats
	st := Stats{
		Keys:                   c.keys.Load(),
		Values:                 c.values.Load(),
		SpilledKeys:            c.spilled.Load(),
		Buckets:                int(c.buckets.Load()),
		GlobalDepth:            int(c.globalDepth.Load()),
		Splits:                 c.splits.Load(),
		Merges:                 c.merges.Load(),
		DirectoryDoublings:     c.doublings.Load(),
		DirectoryHalvings:      c.halvings.Load(),
		Promotions:             c.promotions.Load(),
		Demotions:              c.demotions.Load(),
		Compactions:            c.compactions.Load(),
		CheckpointLSN:          c.checkpointLSN.Load(),
		Checkpoints:            c.checkpoints.Load(),
		LastCheckpointDuration: time.Duration(c.lastCkptNanos.Load()),
		LastCheckpointBytes:    c.lastCkptBytes.Load(),
		CheckpointBucketBytes:  c.ckptBucketBytes.Load(),
		CheckpointDeltaBytes:   c.ckptBucketDeltaBytes.Load(),
		CheckpointSetBytes:     c.ckptSetBytes.Load(),
		RecoveredRecords:       c.recovered.Load(),
		CacheBytes:             s.cache.fill(),
		CacheBudget:            s.cache.budget,
		BucketLoads:            s.cache.bucketLoads.Load(),
		ValueSetLoads:          s.cache.setLoads.Load(),
		Evictions:              s.cache.evictions.Load(),
		CachePinnedBytes:       s.cache.pinned(),
		WriteStalls:            s.cache.stalls.Load(),
		WALFullWaits:           c.walFullWaits.Load(),
		WALDelays:              c.walDelays.Load(),
		WALDelayTotal:          time.Duration(c.walDelayNanos.Load()),
		MemoryDelays:           c.memDelays.Load(),
		MemoryDelayTotal:       time.Duration(c.memDelayNanos.Load()),
		CheckpointWaitMax:      time.Duration(c.ckptWaitMax.Load()),
	}
	if s.wal != nil {
		s.wal.fillStats(&st)
	}
	st.Maintenance = s.maintStats()
	return st
}

// Close performs a final checkpoint, closes the WAL and the backend. Every
// call after the first returns ErrClosed. The checkpoint is skipped for a
// volatile backend without a WAL (port.Volatile), which keeps nothing.
func (s *Store) Close() error {
	s.wmu.Lock()
	if s.closed.Load() {
		s.wmu.Unlock()
		return ErrClosed
	}
	s.closed.Store(true)
	s.wmu.Unlock()
	close(s.stop)
	s.bg.Wait()
	// A GC pass reads buckets without the checkpoint lock: wait for it to
	// see closed before the backend closes under it.
	s.gcMu.Lock()
	s.gcMu.Unlock()
	if s.opts.ReadOnly {
		return s.backend.Close()
	}
	if v, ok := s.backend.(port.Volatile); ok && v.Volatile() && s.wal == nil {
		return s.backend.Close() // a final checkpoint could never be loaded
	}
	err := s.checkpoint()
	if s.wal != nil {
		err = errors.Join(err, s.closeWAL())
	}
	return errors.Join(err, s.backend.Close())
}
