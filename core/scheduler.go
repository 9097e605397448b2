package cidstore

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// Background maintenance (DESIGN.md §8).
//
// # What it does
//
// A scheduler goroutine (started by Open unless Options.MaintenanceInterval
// is negative, stopped by Close) wakes every MaintenanceInterval and works
// on the buckets that need it most. Per bucket, one step (maintainBucket)
// sort-merges the unsorted tail, compacts the bucket's value sets (drops
// tombstones, sorts) and demotes small spilled keys back to inline slots.
// Store-wide tasks run in slices too: buddy-bucket merges with directory
// halving while the store is sparse (maintainMerges), and garbage
// collection every GCInterval (gc.go).
//
// # Danger score and priority
//
// Each bucket's danger score, in [0, 1], is
//
//	0.4·pending + 0.3·tail + 0.3·age
//
// where pending is the number of mutations applied to the bucket since its
// last maintenance pass or the last checkpoint (WAL records a recovery
// would replay), divided by the bucket capacity; tail is the unsorted tail
// length divided by min(bucketTailMax, capacity); age is the time since the
// last maintenance pass (or last full sort, or Open), divided by
// Options.MaintenanceAgeSaturation; each term is clamped to [0, 1]. The scheduler scores
// buckets incrementally (a cursor over bucket ids, a bounded slice per
// tick) and works on the highest priority
//
//	(1 + read rate) · danger / estimated cost
//
// first, where the read rate is a sampled count of Gets (one Get in
// readSampleMask+1 increments a per-bucket atomic counter, chosen by hash
// bits and a per-tick salt, so Get stays nearly free of shared writes and
// of random-number generation) smoothed over scoring passes, and the cost is the
// entries a merge moves plus an n·log n term for sorting the tail. Buckets
// below dangerMinWork are left alone. The counters cost the writer one
// increment per mutated bucket (noteWrite) and no atomic operation.
//
// # Throttling and append-only protection
//
// When ingest runs at full speed (more than MaintenanceIngestLimit
// mutations per second since the previous tick, or the writer lock is held
// when the tick starts), a tick works on at most one ordinary bucket and
// skips the store-wide tasks. Buckets whose danger passes dangerProtect
// (0.9) are protected: they are merged at the top of every tick, throttled
// or not, and the writer wakes the scheduler early (and names the bucket)
// as soon as a bucket's pending count saturates, so a bucket that takes
// appends at full speed never waits a whole interval or a full scoring
// pass. Appends themselves never wait for maintenance: the write path stays
// append-only, and protection only bounds how long the tail and the
// replay debt of one bucket can grow.
//
// # Concurrency and crashes
//
// Every step takes the writer lock for one small slice (one bucket, or a
// bounded batch of scores or buddy merges, about a millisecond at most) and
// then releases it, so writers interleave with maintenance. Readers are
// blocked only by the write lock of the one bucket being changed, exactly
// as by a mutation. Changes are copy-on-write with respect to a checkpoint
// in progress: buckets are locked with lockBucket and value sets touched
// with touchSet, which capture the frozen version first.
//
// Maintenance changes only the in-memory representation: sort order,
// tombstones, inline versus spilled form, bucket layout — all logically
// no-ops for every key's value set, so no WAL record is needed (replaying
// the WAL over any layout gives the same sets). The changes are persisted
// by the next checkpoint like any dirty bucket. A crash in the middle of a
// task simply loses the reorganization not yet checkpointed; the store
// recovers to a consistent state (the last checkpoint plus the WAL) and the
// task is redone by a later pass. Every task is idempotent: a second pass
// over a maintained bucket changes nothing.

// Scheduler tuning. The weights are DESIGN.md §8's.
const (
	dangerWeightPending = 0.4
	dangerWeightTail    = 0.3
	dangerWeightAge     = 0.3

	// dangerProtect is the danger above which a bucket is protected.
	dangerProtect = 0.9
	// dangerBacklog is the danger above which a bucket counts as backlog.
	dangerBacklog = 0.5
	// dangerMinWork is the danger below which a bucket is not worth a pass.
	dangerMinWork = 0.05

	// DangerHistogramBuckets is the number of bins of
	// MaintenanceStats.DangerHistogram.
	DangerHistogramBuckets = 10

	// readSampleMask: one Get in readSampleMask+1 is counted (noteRead).
	readSampleMask = 15

	maintSliceBudget    = time.Millisecond // longest writer-lock hold
	maintTickBudget     = 5 * time.Millisecond
	maintScoreMax       = 16384 // buckets scored per tick at most
	maintTopK           = 16    // candidates kept per tick
	maintStepsPerTick   = 16    // ordinary bucket passes per tick
	maintProtectPerTick = 64    // protected bucket passes per tick
	maintUrgentMax      = 256   // buckets the writer may name between ticks
	maintMergeBatch     = 256   // buckets tried for buddy merges per slice

	// maintSetMaxValues: larger value sets are not compacted by the
	// scheduler (one compaction is one indivisible step and would hold the
	// writer lock for longer than a slice); the delete path compacts them
	// when tombstones dominate, and Compact does the rest.
	maintSetMaxValues = 1 << 16

	// demoteQuietPasses is the demotion hysteresis: a spilled key with at
	// most PromotionThreshold live values is demoted only after this many
	// consecutive maintenance passes found it that small and unwritten.
	demoteQuietPasses = 3
)

// Defaults of the maintenance Options.
const (
	DefaultMaintenanceInterval    = 100 * time.Millisecond
	DefaultMaintenanceIngestLimit = 100_000
	// DefaultMaintenanceAgeSaturation: the age term of a bucket's danger
	// reaches 1 this long after its last maintenance pass.
	DefaultMaintenanceAgeSaturation = 30 * time.Second
	DefaultGCInterval               = time.Minute
)

// bucketMaint is a bucket's scheduler state.
type bucketMaint struct {
	reads     atomic.Uint32 // sampled Gets since the last scoring (readers)
	pending   uint32        // mutations since the last pass, in checkpoint generation gen (writer)
	gen       uint64
	lastMerge int64   // Unix ns of the last maintenance pass, 0 if never (writer)
	readRate  float32 // smoothed sampled reads per scoring pass (writer)
}

// setMaint is a value set's scheduler state (writer only).
type setMaint struct {
	written bool  // changed since the last maintenance pass (markSetDirty)
	quiet   uint8 // consecutive passes that found the set small and unwritten
}

// maintState is the Store's scheduler state. Fields without a comment
// are owned by the writer (wmu).
type maintState struct {
	writes      uint64 // mutations applied
	gen         uint64 // checkpoint generation of the pending counters
	cursor      int    // next bucket id to score
	mergeCursor int    // next bucket id to try a buddy merge on
	passHist    [DangerHistogramBuckets]uint64
	passBacklog int64
	urgent      []*bucket // named by the writer when pending saturates
	lastWrites  uint64
	lastTick    int64
	lastGC      int64
	gcRuns      uint64
	opened      int64

	now  func() time.Time // set at Open; tests replace it
	kick chan struct{}    // wakes the scheduler for urgent buckets
	salt atomic.Uint32    // selects the keys whose Gets are sampled (noteRead)

	stats maintCounters
}

type taskCounters struct {
	runs, nanos, bytes atomic.Uint64
}

func (c *taskCounters) add(start time.Time, bytes int) {
	c.runs.Add(1)
	c.nanos.Add(uint64(time.Since(start)))
	c.bytes.Add(uint64(bytes))
}

func (c *taskCounters) load() TaskStats {
	return TaskStats{Runs: c.runs.Load(), Duration: time.Duration(c.nanos.Load()), ReclaimedBytes: c.bytes.Load()}
}

type maintCounters struct {
	tail, compact, demote, merge, gc taskCounters
	hist                             [DangerHistogramBuckets]atomic.Uint64
	backlog                          atomic.Int64
	ticks, throttled, protected      atomic.Uint64
	gcScans                          atomic.Uint64
	gcScanNs, gcHoldMaxNs            atomic.Int64 // last full scan; longest checkpoint-lock hold by a pass
}

// TaskStats counts the work of one maintenance task.
type TaskStats struct {
	Runs           uint64        // times the task changed something
	Duration       time.Duration // total time spent in those runs
	ReclaimedBytes uint64        // persisted bytes no longer needed (estimated)
}

// MaintenanceStats are the background maintenance counters.
type MaintenanceStats struct {
	TailMerges     TaskStats // bucket tails sort-merged
	SetCompactions TaskStats // value sets compacted by the scheduler
	Demotions      TaskStats // spilled keys demoted by the scheduler
	BucketMerges   TaskStats // buddy merges and directory halvings
	GC             TaskStats // garbage-collection passes that freed something

	// Backlog is the number of buckets with a danger score above 0.5, and
	// DangerHistogram[i] the number with a score in [i/10, (i+1)/10)
	// (the last bin includes 1), both as of the last complete scoring pass.
	Backlog         int64
	DangerHistogram [DangerHistogramBuckets]uint64

	Ticks           uint64 // scheduler ticks
	ThrottledTicks  uint64 // ticks that found ingest at full speed
	ProtectedMerges uint64 // passes over buckets above danger 0.9

	// GCScans counts GC passes with a full scan, GCLastScan is the last
	// one's duration, and GCMaxLockHold the longest time a GC pass held the
	// checkpoint lock (checkpoints, and writers waiting for one, wait that
	// long).
	GCScans       uint64
	GCLastScan    time.Duration
	GCMaxLockHold time.Duration
}

func (s *Store) maintStats() MaintenanceStats {
	c := &s.maint.stats
	st := MaintenanceStats{
		TailMerges:      c.tail.load(),
		SetCompactions:  c.compact.load(),
		Demotions:       c.demote.load(),
		BucketMerges:    c.merge.load(),
		GC:              c.gc.load(),
		Backlog:         c.backlog.Load(),
		Ticks:           c.ticks.Load(),
		ThrottledTicks:  c.throttled.Load(),
		ProtectedMerges: c.protected.Load(),
		GCScans:         c.gcScans.Load(),
		GCLastScan:      time.Duration(c.gcScanNs.Load()),
		GCMaxLockHold:   time.Duration(c.gcHoldMaxNs.Load()),
	}
	for i := range st.DangerHistogram {
		st.DangerHistogram[i] = c.hist[i].Load()
	}
	return st
}

// noteWrite counts a mutation of b (writer only; called by markDirty). It
// names b to the scheduler when its pending term saturates.
func (s *Store) noteWrite(b *bucket) {
	m := &b.maint
	if m.gen != s.maint.gen {
		m.gen, m.pending = s.maint.gen, 0
	}
	m.pending++
	if int(m.pending) == s.capacity && len(s.maint.urgent) < maintUrgentMax {
		s.maint.urgent = append(s.maint.urgent, b)
		select {
		case s.maint.kick <- struct{}{}:
		default: // nil before Open finishes, or a wake-up is already queued
		}
	}
}

// noteRead samples a Get of b for the hash h (readers). The sample is the
// keys whose hash bits match the salt, which the scheduler changes every
// tick: over 16 ticks every key is sampled in turn, so a hot key is not
// missed or over-counted for long, and the Get path pays a load, a
// compare and, one time in 16, an atomic add on the bucket.
func (s *Store) noteRead(b *bucket, h uint64) {
	if (uint32(h>>8)^s.maint.salt.Load())&readSampleMask == 0 {
		b.maint.reads.Add(1)
	}
}

// danger is b's danger score at now (Unix ns; writer only).
func (s *Store) danger(b *bucket, now int64) float64 {
	m := &b.maint
	var p float64
	if m.gen == s.maint.gen {
		p = min(1, float64(m.pending)/float64(s.capacity))
	}
	// A reader may be loading an evicted bucket (under its lock, not the
	// writer's): its contents count only once loaded, which is set last.
	var t float64
	last := max(m.lastMerge, s.maint.opened)
	if b.loaded.Load() {
		t = min(1, float64(len(b.entries)-b.sorted)/float64(min(bucketTailMax, s.capacity)))
		last = max(last, b.lastCompacted)
	}
	a := min(1, max(0, float64(now-last)/float64(s.opts.MaintenanceAgeSaturation)))
	return dangerWeightPending*p + dangerWeightTail*t + dangerWeightAge*a
}

// mergeCost estimates the work of one pass over b, in entries moved.
func mergeCost(b *bucket) float64 {
	if !b.loaded.Load() {
		return 1 // see danger
	}
	tail := float64(len(b.entries) - b.sorted)
	return 1 + float64(len(b.entries)) + tail*math.Log2(tail+1)
}

// bucketDanger returns what BucketInfo shows (writer lock held).
func (s *Store) bucketDanger(b *bucket) (float64, time.Time) {
	var last time.Time
	if b.maint.lastMerge != 0 {
		last = time.Unix(0, b.maint.lastMerge)
	}
	return s.danger(b, s.maintNow().UnixNano()), last
}

func (s *Store) maintNow() time.Time {
	if s.maint.now != nil {
		return s.maint.now()
	}
	return time.Now()
}

// startMaintenance prepares the scheduler state and starts the scheduler
// goroutine unless it is disabled. Called once by Open.
func (s *Store) startMaintenance() {
	if s.maint.now == nil {
		s.maint.now = time.Now
	}
	s.maint.opened = s.maint.now().UnixNano()
	// The first GC pass comes a GCInterval after Open, like the others: its
	// full scan reads every evicted bucket back (all of them, just after
	// Open), which should not compete with the first lookups of a restart.
	s.maint.lastGC = s.maint.opened
	s.maint.kick = make(chan struct{}, 1)
	if s.opts.ReadOnly || s.opts.MaintenanceInterval < 0 {
		return
	}
	s.bg.Add(1)
	go s.maintainLoop()
}

func (s *Store) maintainLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.MaintenanceInterval)
	defer t.Stop()
	ctx := context.Background()
	var last time.Time
	for {
		urgentOnly := false
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.maint.kick:
			// Under full-speed ingest the writer may kick often: at most
			// eight urgent ticks per interval; the named buckets wait for
			// the next tick otherwise.
			if time.Since(last) < s.opts.MaintenanceInterval/8 {
				continue
			}
			urgentOnly = true
		}
		last = time.Now()
		if _, err := s.maintainStep(ctx, urgentOnly); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			s.log.Error("maintenance failed", "err", err)
		}
	}
}

// stepReport says what one scheduler tick did (for tests).
type stepReport struct {
	scored, passes, protected, merges int
	throttled, gc                     bool
}

type candidate struct {
	b    *bucket
	prio float64
}

// maintainStep runs one scheduler tick: score a slice of buckets, pass over
// the protected ones and the best candidates, then (unless throttled or
// urgentOnly) a slice of buddy merges and, when due, garbage collection.
// Tests call it directly to drive the scheduler deterministically.
func (s *Store) maintainStep(ctx context.Context, urgentOnly bool) (stepReport, error) {
	var rep stepReport
	busy := !s.wmu.TryLock()
	if busy {
		s.wmu.Lock()
	}
	if s.closed.Load() {
		s.wmu.Unlock()
		return rep, ErrClosed
	}
	now := s.maintNow()
	nowNs := now.UnixNano()
	m := &s.maint
	m.gen = s.stats.checkpoints.Load()
	if m.lastTick != 0 && nowNs > m.lastTick {
		rate := float64(m.writes-m.lastWrites) / (float64(nowNs-m.lastTick) / 1e9)
		rep.throttled = busy || rate > float64(s.opts.MaintenanceIngestLimit)
	}
	m.lastTick, m.lastWrites = nowNs, m.writes
	m.salt.Add(1)
	s.maint.stats.ticks.Add(1)
	if rep.throttled {
		s.maint.stats.throttled.Add(1)
	}
	var protect []*bucket
	for _, b := range m.urgent {
		if s.bucketLive(b) && s.danger(b, nowNs) >= dangerProtect && !slices.Contains(protect, b) {
			protect = append(protect, b)
		}
	}
	m.urgent = m.urgent[:0]
	var top []candidate
	if !urgentOnly {
		top, protect = s.scoreSlice(nowNs, protect, &rep)
	}
	fullGC := false
	if rep.gc = !urgentOnly && !rep.throttled && s.opts.GCInterval > 0 && nowNs-m.lastGC >= int64(s.opts.GCInterval); rep.gc {
		m.lastGC = nowNs
		fullGC = m.gcRuns%gcScanEvery == 0
		m.gcRuns++
	}
	s.wmu.Unlock()

	tickEnd := time.Now().Add(maintTickBudget)
	for i, b := range protect {
		if i == maintProtectPerTick {
			break
		}
		if s.passOver(b, true) {
			rep.protected++
		}
	}
	steps := maintStepsPerTick
	if rep.throttled {
		steps = 1
	}
	for _, c := range top {
		if steps == 0 || time.Now().After(tickEnd) {
			break
		}
		if s.passOver(c.b, false) {
			rep.passes++
			steps--
		}
	}
	if urgentOnly || rep.throttled {
		return rep, nil
	}
	n, err := s.maintainMerges()
	rep.merges = n
	if err != nil {
		return rep, err
	}
	if rep.gc {
		if _, err := s.gc(ctx, fullGC); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// scoreSlice scores buckets from the cursor for at most one slice (writer
// lock held). It returns the best candidates, highest priority first, and
// protect extended with the buckets above dangerProtect.
func (s *Store) scoreSlice(now int64, protect []*bucket, rep *stepReport) ([]candidate, []*bucket) {
	m := &s.maint
	start := time.Now()
	var top []candidate
	for n := 0; n < maintScoreMax; n++ {
		if n&63 == 63 && time.Since(start) > maintSliceBudget/2 {
			break
		}
		if m.cursor >= len(s.buckets) {
			// A pass is complete: publish its histogram and backlog.
			for i := range m.passHist {
				m.stats.hist[i].Store(m.passHist[i])
			}
			m.stats.backlog.Store(m.passBacklog)
			m.passHist, m.passBacklog = [DangerHistogramBuckets]uint64{}, 0
			m.cursor = 0
			if n >= len(s.buckets) {
				break // the whole table was scored in this slice
			}
		}
		b := s.buckets[m.cursor]
		m.cursor++
		if b == nil {
			continue
		}
		rep.scored++
		d := s.danger(b, now)
		m.passHist[min(DangerHistogramBuckets-1, int(d*DangerHistogramBuckets))]++
		if d > dangerBacklog {
			m.passBacklog++
		}
		r := b.maint.reads.Swap(0)
		b.maint.readRate = b.maint.readRate/2 + float32(r*(readSampleMask+1))/2
		switch {
		case d >= dangerProtect:
			if len(protect) < maintProtectPerTick && !slices.Contains(protect, b) {
				protect = append(protect, b)
			}
		case d >= dangerMinWork:
			top = pushCandidate(top, candidate{b, (1 + float64(b.maint.readRate)) * d / mergeCost(b)})
		}
	}
	return top, protect
}

// pushCandidate inserts c into top, kept sorted by descending priority and
// at most maintTopK long.
func pushCandidate(top []candidate, c candidate) []candidate {
	i := len(top)
	for i > 0 && top[i-1].prio < c.prio {
		i--
	}
	if i >= maintTopK {
		return top
	}
	if len(top) < maintTopK {
		top = append(top, candidate{})
	}
	copy(top[i+1:], top[i:])
	top[i] = c
	return top
}

// bucketLive reports whether b is still a live bucket (writer lock held).
func (s *Store) bucketLive(b *bucket) bool {
	return !b.retired && int(b.id) < len(s.buckets) && s.buckets[b.id] == b
}

// passOver takes the writer lock for one maintenance pass over b. It
// reports whether b was still live.
func (s *Store) passOver(b *bucket, protected bool) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() || !s.bucketLive(b) {
		return false
	}
	if protected {
		s.maint.stats.protected.Add(1)
	}
	s.maintainBucket(b, s.maintNow().UnixNano())
	s.publish()
	return true
}

// maintainBucket is one maintenance pass over b (writer lock held): merge
// its tail, compact its value sets and demote small spilled keys. It is
// the one place the scheduler touches a bucket's contents.
func (s *Store) maintainBucket(b *bucket, now int64) {
	if !b.loaded.Load() {
		// Evicted, so clean: persisted sorted, and its value sets are
		// maintained once something reads it back.
		b.maint.pending, b.maint.gen, b.maint.lastMerge = 0, s.maint.gen, now
		return
	}
	locked, changed := false, false
	var demoted []E // keys whose entries changed (a delta carries them)
	lock := func() {
		if !locked {
			s.lockBucket(b) // captures b first if a checkpoint froze it
			locked = true
		}
	}
	if b.sorted != len(b.entries) {
		start := time.Now()
		lock()
		s.failpoint("maint.merge")
		b.mergeTail()
		changed = true
		s.maint.stats.tail.add(start, 0)
	}
	threshold := int(s.promote.Load())
	for i := range b.entries {
		e := &b.entries[i]
		if !e.spilled() {
			continue
		}
		lock() // readers load value sets under b's lock
		vs := s.sets.lookup(e.spillID())
		if vs == nil {
			continue // not loaded: maintained once it is
		}
		quiet := !vs.maint.written
		vs.maint.written = false
		if vs.live() <= threshold {
			if !quiet {
				vs.maint.quiet = 0
				continue
			}
			if vs.maint.quiet++; vs.maint.quiet < demoteQuietPasses {
				continue
			}
			start := time.Now()
			lock()
			s.failpoint("maint.demote")
			vals := vs.liveSorted()
			bytes := port.ValueSize * (len(vs.vals) + len(vs.dead))
			e.s0, e.s1 = vals[0], E{}
			if len(vals) == 2 {
				e.s1 = vals[1]
			}
			s.dropSet(vs, e.key)
			demoted = append(demoted, e.key)
			s.stats.demotions.Add(1)
			s.maint.stats.demote.add(start, bytes)
			changed = true
			continue
		}
		vs.maint.quiet = 0
		if len(vs.vals) > maintSetMaxValues || (len(vs.dead) == 0 && vs.sorted == len(vs.vals)) {
			continue
		}
		start := time.Now()
		lock()
		s.touchSet(vs)
		s.failpoint("maint.compact")
		dead := len(vs.dead)
		vs.compact()
		s.markSetDirty(vs)
		vs.maint.written = false
		s.stats.compactions.Add(1)
		s.maint.stats.compact.add(start, port.ValueSize*dead)
	}
	if changed {
		b.lastCompacted = now
	}
	if locked {
		b.mu.Unlock()
	}
	if changed {
		s.markMaintained(b, demoted)
	}
	b.maint.pending, b.maint.gen, b.maint.lastMerge = 0, s.maint.gen, now
}

// maintainMerges runs one slice of buddy merges while the store is sparse
// (average fill under the merge low-water mark), and halves the directory
// when no bucket is as deep as it. It returns the merges done.
func (s *Store) maintainMerges() (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	live := s.stats.buckets.Load()
	if live <= 1 || s.nkeys*mergeLowWaterDiv >= uint64(live)*uint64(s.capacity) {
		return 0, nil
	}
	m := &s.maint
	start := time.Now()
	merges := 0
	for n := 0; n < maintMergeBatch && time.Since(start) < maintSliceBudget; n++ {
		if m.mergeCursor >= len(s.buckets) {
			m.mergeCursor = 0
			if s.halveDirectory() {
				s.maint.stats.merge.add(start, 0)
			}
			break
		}
		b := s.buckets[m.mergeCursor]
		m.mergeCursor++
		if b != nil && s.mergeBuddy(b) {
			merges++
			s.failpoint("maint.buddy")
			// The buddy's persisted bucket is freed by the next checkpoint.
			s.maint.stats.merge.add(start, port.EntrySize*s.capacity)
			start = time.Now()
		}
	}
	return merges, nil
}

// mergeBuddy merges b with its buddy if they qualify (writer lock held).
func (s *Store) mergeBuddy(b *bucket) bool {
	merged, err := s.tryMerge(b)
	if err != nil {
		s.log.Error("maintenance: buddy merge", "bucket", b.id, "err", err)
	}
	return merged
}

// halveDirectory halves the directory once if no bucket is as deep as it
// (writer lock held). It copies the directory (one pointer per slot), the
// one step whose writer-lock hold grows with the store; it is rare, and
// at most one runs per sweep of the merge cursor.
func (s *Store) halveDirectory() bool {
	d := s.dir.Load()
	if d.depth == 0 || s.depthCount[d.depth] > 0 {
		return false
	}
	s.setDir(d.halved())
	s.stats.halvings.Add(1)
	return true
}
