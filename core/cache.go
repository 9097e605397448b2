package cidstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cidstore/cidstore/core/port"
)

// Buckets and value sets are loaded from the backend on first use and
// evicted again under Options.CacheBytes; the directory and the small
// per-bucket header (id, depth, prefix, flags) stay resident. So a store
// opens in O(directory) and its memory is bounded by the budget plus the
// headers and whatever is dirty (changed since the last committed
// checkpoint, which only the WAL and memory hold).
//
// Loading: a reader that finds its bucket not loaded takes the bucket's
// write lock, reads the committed record and publishes it (loaded is set
// last); a value set is loaded the same way, under the lock of the bucket
// whose entry names it. The writer loads everything a batch needs before
// logging it (prepare), so applying a logged mutation never fails.
//
// Eviction runs under the writer lock (the writer reads its buckets without
// locking) and takes each victim's lock with TryLock, never waiting. A
// bucket is evicted together with its loaded value sets, and only when all
// of them are clean: not dirty, not frozen for the checkpoint in progress,
// and not captured by a checkpoint that has not committed yet (savedSeq),
// since reloading such a bucket would read an older version. Victims are
// chosen by CLOCK: lookups set a reference bit, the hand clears it and
// evicts buckets that stayed unreferenced for a full turn.
type cache struct {
	budget int64        // Options.CacheBytes; 0 = unbounded
	used   atomic.Int64 // bytes charged by loaded buckets and value sets
	// growth estimates what mutations added since the last checkpoint
	// recomputed the charges of what they changed.
	growth atomic.Int64
	// dirty estimates the bytes of what changed since the last freeze
	// (changed by the writer only), frozen what the checkpoint in progress
	// froze (dirty and growth at its freeze; 0 once it committed or
	// failed). Together with growth they are pinned: memory no eviction can
	// free before a checkpoint commits.
	dirty, frozen atomic.Int64
	// pinLimit is the backpressure bound on pinned bytes (0 = none). Once
	// the cache nears its budget, a mutation that leaves more than
	// pinLimit/2 pinned asks for a checkpoint; once the cache is over
	// budget, a mutation that finds more than pinLimit pinned waits for
	// one (checkpointForMemory). Without it a writer faster than the
	// checkpoints grows memory past any budget; while everything fits,
	// it costs nothing (no extra checkpoints).
	pinLimit int64
	stalls   atomic.Uint64 // mutations that waited for checkpointForMemory
	// futileSeq is committedSeq when an eviction pass last left the cache
	// over budget: passes wait for the next commit (or a second) before
	// sweeping again, instead of rescanning buckets they cannot evict.
	futileSeq  uint64
	futileTime time.Time

	inMu     sync.Mutex
	incoming []*bucket // loaded since the last eviction pass

	ring []*bucket // resident buckets in CLOCK order (writer lock)
	hand int
	// passLeft is how many more buckets the eviction pass in progress
	// may look at (writer lock; 0: none in progress).
	passLeft int
	// refill asks the evictor for a pass although the cache is not over
	// its budget: the writer stopped its own eviction just under it
	// (evictForWriter).
	refill atomic.Bool

	// resident, once set, says every bucket is loaded and every value
	// set its entries name is resident, so that prepare has nothing to
	// load. The writer sets it after a full check (markResident); the
	// only way out of that state is an eviction, which clears it first
	// (evictBucket). cleanOps counts the ops prepare looked at since it
	// last found something absent or checked (writer lock).
	resident atomic.Bool
	cleanOps int

	kick chan struct{}

	bucketLoads, setLoads, evictions atomic.Uint64
}

// Bytes charged per resident bucket and value set besides their arrays.
const (
	bucketOverhead = int64(unsafe.Sizeof(bucket{}))
	setOverhead    = int64(unsafe.Sizeof(valueSet{})) + setMapBytes
	entryBytes     = int64(unsafe.Sizeof(entry{})) + 1 // entry and tag
	keyBytes       = int64(unsafe.Sizeof(E{}))         // a key of bucket.since
	mapEntryBytes  = 48                                // per map[E]struct{} element, measured order of magnitude
	growthPerOp    = entryBytes + 16
)

// minPinLimit is the least pinLimit, so that a tiny budget does not turn
// every batch into a checkpoint.
const minPinLimit = 1 << 20

// pinned estimates the bytes only a checkpoint can make evictable.
func (c *cache) pinned() int64 {
	return c.dirty.Load() + c.growth.Load() + c.frozen.Load()
}

// setPinLimit enables writer backpressure for a store with a budget and a
// WAL (a checkpointer): pinned memory is held to half the budget, so the
// other half stays for clean buckets the writer and readers load.
func (c *cache) setPinLimit() {
	if c.budget > 0 {
		c.pinLimit = max(c.budget/2, minPinLimit)
	}
}

// mustWait reports whether a mutation must wait for a checkpoint: the
// cache is over its budget and what pins it passes pinLimit. The writer
// tries an eviction first (mutate).
func (c *cache) mustWait() bool {
	return c.pinLimit > 0 && c.over() && c.pinned() > c.pinLimit
}

// wantCheckpoint reports whether a checkpoint should start early: the
// cache is within an eighth of its budget and half of pinLimit is pinned.
func (c *cache) wantCheckpoint() bool {
	return c.pinLimit > 0 && c.fill() > c.budget-c.budget/8 && c.pinned() > c.pinLimit/2
}

// memRoom is how much pinned memory and the cache's fill may still grow
// before a writer must wait for a checkpoint (mustWait: it waits once
// both are past their limits), when delayed writes pace on memory
// (wal.go): the cache is within an eighth of its budget and more than
// half of pinLimit is pinned. Either is negative once past its limit.
func (c *cache) memRoom() (pin, fill int64, ok bool) {
	f := c.fill()
	if c.pinLimit <= 0 || f <= c.budget-c.budget/8 {
		return 0, 0, false
	}
	p := c.pinned()
	if p <= c.pinLimit/2 {
		return 0, 0, false
	}
	return c.pinLimit - p, c.budget - f, true
}

// fill is the cache's estimated size: the charges of what is loaded and
// the growth of the mutations since the last checkpoint.
func (c *cache) fill() int64 { return c.used.Load() + c.growth.Load() }

// checkpointForMemory runs a checkpoint unless the one that was running
// when the caller found too much memory pinned already freed enough
// (writer lock not held).
func (s *Store) checkpointForMemory() error {
	s.cache.stalls.Add(1)
	s.ckptMu.Lock()
	wait := s.cache.mustWait()
	s.ckptMu.Unlock()
	if !wait {
		return nil
	}
	return s.checkpoint()
}

func (c *cache) over() bool {
	return c.budget > 0 && c.fill() > c.budget
}

func (c *cache) admit(b *bucket) {
	if c.budget <= 0 {
		return // nothing is ever evicted: no CLOCK to feed
	}
	c.inMu.Lock()
	c.incoming = append(c.incoming, b)
	c.inMu.Unlock()
}

// kickEvict wakes the evictor without waiting.
func (s *Store) kickEvict() {
	select {
	case s.cache.kick <- struct{}{}:
	default:
	}
}

func bucketCharge(b *bucket) int64 {
	return bucketOverhead + int64(cap(b.entries))*(entryBytes-1) + int64(cap(b.tags)) + int64(cap(b.since))*keyBytes
}

func setCharge(vs *valueSet) int64 {
	n := setOverhead + int64(cap(vs.vals))*16
	if cap(vs.vals) <= len(vs.small) {
		n -= int64(cap(vs.vals)) * 16 // the inline array is part of the overhead
	}
	return n + int64(len(vs.tail)+len(vs.dead))*mapEntryBytes
}

// rechargeBucket re-measures b (b.mu held).
func (s *Store) rechargeBucket(b *bucket) {
	n := bucketCharge(b)
	s.cache.used.Add(n - b.charge)
	b.charge = n
}

// rechargeSet re-measures vs (its bucket's lock or the capture lock held).
func (s *Store) rechargeSet(vs *valueSet) {
	n := setCharge(vs)
	s.cache.used.Add(n - vs.charge)
	vs.charge = n
}

// loadBucket reads b's committed record if b is not loaded. Safe for
// readers and the writer; b.mu must not be held.
func (s *Store) loadBucket(b *bucket) error {
	b.mu.Lock()
	if b.retired || b.loaded.Load() {
		b.mu.Unlock()
		return nil
	}
	err := s.readBucket(b)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	s.cache.bucketLoads.Add(1)
	s.cache.admit(b)
	if s.cache.over() {
		s.kickEvict()
	}
	return nil
}

// readBucket fills b from its committed record (b.mu held).
func (s *Store) readBucket(b *bucket) error {
	rec, err := s.backend.ReadBucket(b.id)
	if err != nil {
		if errors.Is(err, port.ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return fmt.Errorf("read bucket %d: %w", b.id, err)
	}
	n := rec.EntryCount()
	if rec.LocalDepth != b.depth || len(rec.Entries)%port.EntrySize != 0 || int(rec.SortedCount) > n {
		return fmt.Errorf("%w: bucket %d: local depth %d (directory says %d), %d entry bytes, sorted count %d",
			ErrCorrupt, b.id, rec.LocalDepth, b.depth, len(rec.Entries), rec.SortedCount)
	}
	entries := make([]entry, n, n+n/8)
	tags := make([]byte, n, n+n/8)
	var spilled int32
	vsidLimit := s.vsidLimit.Load()
	for k := range entries {
		e := &entries[k]
		if err := decodeEntryInto(e, rec.Entries[k*port.EntrySize:(k+1)*port.EntrySize]); err != nil {
			return fmt.Errorf("bucket %d entry %d: %w", b.id, k, err)
		}
		h := s.hash(e.key)
		if topBits(h, b.depth) != b.prefix {
			return fmt.Errorf("%w: bucket %d entry %d: key %v hashes outside the bucket", ErrCorrupt, b.id, k, e.key)
		}
		if e.spilled() {
			if e.spillID() == 0 || e.spillID() >= vsidLimit {
				return fmt.Errorf("%w: bucket %d entry %d: value set id %d out of range", ErrCorrupt, b.id, k, e.spillID())
			}
			spilled++
		}
		tags[k] = tagOf(h)
	}
	if r, ok := s.backend.(port.EntriesRecycler); ok {
		r.RecycleEntries(rec.Entries) // decoded: nothing refers to it
	}
	if len(rec.DeltaKeys)%port.KeySize != 0 {
		return fmt.Errorf("%w: bucket %d: %d delta key bytes", ErrCorrupt, b.id, len(rec.DeltaKeys))
	}
	// What b's next delta must carry on: the keys of the one committed.
	b.since = b.since[:0]
	for k := 0; s.deltas && k < len(rec.DeltaKeys); k += port.KeySize {
		b.since = append(b.since, E{binary.LittleEndian.Uint64(rec.DeltaKeys[k:]), binary.LittleEndian.Uint64(rec.DeltaKeys[k+8:])})
	}
	b.entries, b.tags, b.sorted = entries, tags, int(rec.SortedCount)
	b.adds++
	b.lastCompacted = rec.LastCompacted
	if w := s.gcw.Load(); w != nil {
		w.sawLoad(b.id, entries)
	}
	// No set of an unloaded bucket is resident (an eviction releases the
	// bucket's sets with it, and only a loaded bucket loads one): every
	// spilled entry is cold, without a probe of the set table per entry
	// (a cache miss each; Validate checks the count).
	b.cold.Store(spilled)
	b.ref.Store(true)
	s.rechargeBucket(b)
	b.loaded.Store(true)
	return nil
}

// loadSetOf loads value set id for an entry of b if it is not loaded. It
// checks under b's lock that an entry of b still names id (the writer may
// have deleted the key meanwhile). Safe for readers and the writer; b.mu
// must not be held.
func (s *Store) loadSetOf(b *bucket, id uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retired || !b.loaded.Load() || s.sets.lookup(id) != nil {
		return nil
	}
	named := false
	for i := range b.entries {
		if e := &b.entries[i]; e.spilled() && e.spillID() == id {
			named = true
			break
		}
	}
	if !named {
		return nil
	}
	if _, err := s.readSet(id); err != nil {
		return fmt.Errorf("bucket %d: %w", b.id, err)
	}
	b.cold.Add(-1)
	s.cache.setLoads.Add(1)
	if s.cache.over() {
		s.kickEvict()
	}
	return nil
}

// countCold counts b's spilled entries whose value set is not resident
// (b.mu held, or b not yet published as loaded).
func (s *Store) countCold(b *bucket) int32 {
	var n int32
	for i := range b.entries {
		if e := &b.entries[i]; e.spilled() && s.sets.lookup(e.spillID()) == nil {
			n++
		}
	}
	return n
}

// writerSet returns the value set of spilled entry e of b, loading it if
// needed (writer only; b.mu not held).
func (s *Store) writerSet(b *bucket, e *entry) (*valueSet, error) {
	if vs := s.residentSet(b, e.spillID()); vs != nil {
		return vs, nil
	}
	if err := s.loadSetOf(b, e.spillID()); err != nil {
		return nil, err
	}
	vs := s.sets.lookup(e.spillID())
	if vs == nil {
		return nil, fmt.Errorf("%w: bucket %d: value set %d did not load", ErrCorrupt, b.id, e.spillID())
	}
	return vs, nil
}

// residentSet returns value set id of b if it is loaded. A reader may be
// loading it into its slot: the writer looks under b's read lock too.
func (s *Store) residentSet(b *bucket, id uint64) *valueSet {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return s.sets.lookup(id)
}

// prepare loads every bucket and value set that applying ops will touch,
// so that apply cannot fail after the ops are logged (writer lock held).
//
// Once everything is resident (cache.resident) it returns at once: its
// loop costs a cache miss per op on the bucket's header, which warm then
// takes again in its own, overlapped way (at 1M keys, where nothing is
// ever evicted, the loop was ~7 % of the writer's time).
func (s *Store) prepare(ops []walOp) error {
	if !s.lazy || s.cache.resident.Load() {
		return nil
	}
	absent := false
	for i := range ops {
		o := &ops[i]
		h := s.hash(o.key)
		b := s.bucketFor(h)
		if !b.loaded.Load() {
			absent = true
			if err := s.loadBucket(b); err != nil {
				return err
			}
		}
		if b.cold.Load() == 0 {
			continue // every set b names is resident
		}
		absent = true
		j := b.find(o.key, tagOf(h))
		if j < 0 {
			continue
		}
		if e := &b.entries[j]; e.spilled() && s.residentSet(b, e.spillID()) == nil {
			if err := s.loadSetOf(b, e.spillID()); err != nil {
				return err
			}
		}
	}
	s.markResident(len(ops), absent)
	return nil
}

// markResident sets cache.resident when every bucket is loaded and none
// names a value set that is not resident (writer lock held). It checks
// only after prepare has looked at as many ops as there are buckets
// without finding anything absent, so that the check (a look at every
// bucket's header, stopping at the first absent one) costs at most what
// prepare's own loop already spent.
func (s *Store) markResident(ops int, absent bool) {
	c := &s.cache
	if absent {
		c.cleanOps = 0
		return
	}
	if c.cleanOps += ops; c.cleanOps < len(s.buckets) {
		return
	}
	c.cleanOps = 0
	for _, b := range s.buckets {
		if b != nil && !b.retired && (!b.loaded.Load() || b.cold.Load() != 0) {
			return
		}
	}
	c.resident.Store(true)
}

// loadAll loads every bucket and value set (writer lock held): for
// Validate and full scans.
func (s *Store) loadAll() error {
	if !s.lazy {
		return nil
	}
	for _, b := range s.buckets {
		if b == nil {
			continue
		}
		if err := s.loadBucket(b); err != nil {
			return err
		}
		for i := range b.entries {
			if e := &b.entries[i]; e.spilled() {
				if _, err := s.writerSet(b, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// evict evicts clean buckets (with their value sets) until the cache is
// under 7/8 of its budget or a full CLOCK turn found nothing more to evict
// (writer lock held). It reports whether the cache is still over budget.
func (s *Store) evict() bool {
	return s.evictTo(s.cache.budget - s.cache.budget/8)
}

// evictForWriter is the eviction a writer runs before it would wait for a
// checkpoint (mutate): it stops as soon as the cache is a sixty-fourth
// under its budget, enough for the batch at hand, and leaves the rest of
// the way to 7/8 to the evictor goroutine, which releases the writer lock
// every evictChunk buckets. Going to 7/8 itself, in one hold, cost a batch
// 160-430 ms in 9 of the 24 batches over 150 ms of a 20M-key W1 run
// (BENCHMARKS.md, session 14).
func (s *Store) evictForWriter() bool {
	over := s.evictTo(s.cache.budget - s.cache.budget/64)
	if !over && s.cache.fill() > s.cache.budget-s.cache.budget/8 {
		s.cache.refill.Store(true) // the evictor takes it on to 7/8
		s.kickEvict()
	}
	return over
}

// evictTo runs a whole eviction pass of its own down to target bytes.
func (s *Store) evictTo(target int64) bool {
	s.cache.passLeft = 0
	over, _ := s.evictSteps(math.MaxInt, target)
	return over
}

// evictChunk is how many buckets the evictor goroutine looks at per hold
// of the writer lock.
const evictChunk = 1024

// evictSteps is evictTo looking at no more than limit buckets. It also
// reports whether the pass ended (under target, nothing left in the ring,
// or two CLOCK turns done) rather than at the limit.
func (s *Store) evictSteps(limit int, target int64) (over, ended bool) {
	c := &s.cache
	if c.budget <= 0 {
		return false, true
	}
	c.inMu.Lock()
	c.ring = append(c.ring, c.incoming...)
	c.incoming = c.incoming[:0]
	c.inMu.Unlock()
	if c.passLeft <= 0 {
		c.passLeft = 2 * len(c.ring) // a new pass: at most two turns
	}
	committed := s.committedSeq.Load()
	steps := 0
	for ; steps < c.passLeft && steps < limit && len(c.ring) > 0 && c.fill() > target; steps++ {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		b := c.ring[c.hand]
		switch {
		case b.retired || !b.loaded.Load():
		case b.ref.Load():
			b.ref.Store(false)
			c.hand++
			continue
		case !s.evictBucket(b, committed):
			c.hand++
			continue
		}
		last := len(c.ring) - 1
		c.ring[c.hand] = c.ring[last]
		c.ring[last] = nil
		c.ring = c.ring[:last]
	}
	c.passLeft -= steps
	if ended = c.passLeft <= 0 || len(c.ring) == 0 || c.fill() <= target; ended {
		c.passLeft = 0
	}
	return c.fill() > c.budget, ended
}

// evictBucket drops b's entries and value sets if they are clean and b's
// lock is free (writer lock held).
func (s *Store) evictBucket(b *bucket, committed uint64) bool {
	if b.dirty || !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	if b.frozen || b.savedSeq > committed || b.retired || !b.loaded.Load() {
		return false
	}
	for i := range b.entries {
		if e := &b.entries[i]; e.spilled() {
			vs := s.sets.lookup(e.spillID())
			if vs != nil && (vs.dirty || vs.frozen.Load() || vs.savedSeq > committed) {
				return false
			}
		}
	}
	s.cache.resident.Store(false) // before any of b goes: prepare must look again
	for i := range b.entries {
		if e := &b.entries[i]; e.spilled() {
			if vs := s.sets.lookup(e.spillID()); vs != nil {
				s.cache.used.Add(-vs.charge)
				s.sets.release(vs)
			}
		}
	}
	b.loaded.Store(false)
	b.entries, b.tags, b.sorted = nil, nil, 0
	b.since = nil // the committed delta's keys: the next load reads them back
	s.cache.used.Add(-b.charge)
	b.charge = 0
	s.cache.evictions.Add(1)
	return true
}

// startEvictor runs eviction in the background when a budget is set: on a
// kick from a load or mutation that went over it, and every second.
func (s *Store) startEvictor() {
	if s.cache.budget <= 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			case <-s.cache.kick:
			}
			c := &s.cache
			refill := c.refill.Swap(false)
			if !c.over() && !refill {
				continue
			}
			// A refill follows a writer's pass that found buckets to
			// evict: the futile mark of an earlier pass is stale then.
			if !refill && c.futileSeq == s.committedSeq.Load() && time.Since(c.futileTime) < time.Second {
				continue // nothing became evictable since the last pass
			}
			// The pass runs evictChunk buckets at a time, releasing the
			// writer lock in between: a whole pass over a ring of mostly
			// pinned buckets held it for up to 1.3 s at 20M keys
			// (BENCHMARKS.md, session 13).
			still := false
			for {
				s.wmu.Lock()
				if s.closed.Load() {
					s.wmu.Unlock()
					return
				}
				over, ended := s.evictSteps(evictChunk, s.cache.budget-s.cache.budget/8)
				s.wmu.Unlock()
				if ended {
					still = over
					break
				}
			}
			if still {
				// What is left is pinned: mutate asks for the checkpoint
				// that frees it.
				c.futileSeq, c.futileTime = s.committedSeq.Load(), time.Now()
			}
		}
	}()
}
