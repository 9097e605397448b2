package cidstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cidstore/cidstore/core/internal/wal"
)

// The write-ahead log.
//
// Every mutation is appended to the WAL under the writer lock, before it is
// applied to memory; the caller is acknowledged only once its records are
// durable under the sync policy. A multi-pair call (InsertBatch,
// DeleteBatch) is one transaction: TXN_START, one record per pair,
// TXN_COMMIT. Recovery applies a transaction only when its commit record
// is present, so a crash never leaves half a batch. Single-pair calls are
// one record each, atomic by themselves.
//
// Group commit: right after appending, the writer starts one fdatasync
// for everything appended so far (on Linux an AIO request it submits
// itself; elsewhere, or when a sync is already in flight, it wakes the
// syncer goroutine to run it); the batch is applied to memory while that
// sync runs, and the caller then waits for it (SyncTo joins or collects
// the sync in flight). Concurrent callers share syncs. Readers may
// therefore see a pair shortly before it is durable; it is acknowledged
// only after.
//
// Checkpoints record the LSN of the last record applied before their
// snapshot (always a transaction boundary: the writer lock covers append
// and apply) and then truncate the WAL up to it. A full WAL makes writers
// wait for a checkpoint; a WAL past CheckpointFillRatio wakes the
// checkpointer early.

// WAL record opcodes used by core; the full table is on wal.Op.
var opToWAL = [...]wal.Op{OpInsert: wal.OpInsert, OpDeleteKey: wal.OpDelete, OpDeleteValue: wal.OpDeleteValue}

const minWALSizeBytes = wal.MinSizeBytes

// walState is the store's WAL and the writer's bookkeeping for it.
type walState struct {
	log     *wal.Log
	sync    SyncPolicy
	recs    []wal.Record  // reused append buffer (writer only)
	last    uint64        // LSN of the last record applied (writer only)
	kick    chan struct{} // wakes the syncer
	ckpt    chan struct{} // wakes the checkpointer early
	fillMax int64         // records in use that trigger a checkpoint
	// lastAppend is when the writer last appended (writer only): delayed
	// writes pace the intervals between appends.
	lastAppend time.Time
}

// openWAL opens the WAL, replays what the checkpoint does not hold, and
// starts the syncer.
func (s *Store) openWAL() error {
	o := s.opts
	mode := map[SyncPolicy]wal.SyncMode{SyncAlways: wal.SyncAlways, SyncInterval: wal.SyncInterval, SyncNone: wal.SyncNone}[o.Sync]
	l, err := wal.Open(o.WALPath, wal.Options{SizeBytes: o.WALSizeBytes, Sync: mode, SyncInterval: o.SyncInterval, Failpoint: o.Failpoint})
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			return fmt.Errorf("%w: open wal %s: %v (cidstore.RepairWAL or `cidstore wal-repair` salvages the valid records before the damage)", ErrCorrupt, o.WALPath, err)
		}
		return fmt.Errorf("open wal %s: %w", o.WALPath, err)
	}
	w := &walState{log: l, sync: o.Sync, kick: make(chan struct{}, 1), ckpt: make(chan struct{}, 1)}
	w.fillMax = int64(float64(l.CapacityRecords()) * o.CheckpointFillRatio)
	if err := s.replay(w); err != nil {
		return errors.Join(err, l.Close())
	}
	s.wal = w
	return nil
}

// replay applies the committed WAL records after the checkpoint's LSN.
func (s *Store) replay(w *walState) error {
	l := w.log
	from := s.restoredLSN + 1
	if tail := l.TailLSN(); tail > from && l.NextLSN() > tail {
		return fmt.Errorf("%w: wal %s starts at lsn %d but the checkpoint holds only up to %d: records are missing (was the backend volatile?)", ErrCorrupt, s.opts.WALPath, tail, s.restoredLSN)
	}
	var pending []walOp
	inTxn := false
	var applied uint64
	last, err := l.Replay(max(from, l.TailLSN()), func(lsn uint64, r wal.Record) error {
		if lsn < from {
			return nil
		}
		op := walOp{key: E{r.KeyHigh, r.KeyLow}, value: E{r.ValueHigh, r.ValueLow}}
		switch r.Op {
		case wal.OpTxnStart:
			pending, inTxn = pending[:0], true
			return nil
		case wal.OpTxnCommit:
			if err := s.prepare(pending); err != nil {
				return err
			}
			s.applyBatch(pending)
			applied += uint64(len(pending))
			pending, inTxn = pending[:0], false
			return nil
		case wal.OpTxnAbort:
			pending, inTxn = pending[:0], false
			return nil
		case wal.OpInsert:
			op.op = OpInsert
		case wal.OpDelete:
			op.op = OpDeleteKey
		case wal.OpDeleteValue:
			op.op = OpDeleteValue
		default:
			return nil // structural records (split, promote, ...) are redone by apply
		}
		if op.key.IsZero() || (op.op != OpDeleteKey && op.value.IsZero()) {
			return fmt.Errorf("%w: wal record %d (%v) has a zero identifier", ErrCorrupt, lsn, r.Op)
		}
		if inTxn {
			pending = append(pending, op)
			return nil
		}
		if err := s.prepare([]walOp{op}); err != nil {
			return err
		}
		s.apply(&op)
		applied++
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay wal %s: %w", s.opts.WALPath, err)
	}
	if inTxn {
		s.log.Warn("wal: dropped an uncommitted transaction at the end of the log", "records", len(pending))
	}
	s.publish()
	s.stats.recovered.Store(applied)
	w.last = max(last, s.restoredLSN)
	if l.NextLSN() <= s.restoredLSN {
		// The checkpoint is ahead of the log (it lost unsynced records):
		// move the log past it so that LSNs are never reused.
		if err := l.Truncate(s.restoredLSN); err != nil {
			return fmt.Errorf("advance wal past checkpoint %d: %w", s.restoredLSN, err)
		}
	}
	if applied > 0 {
		s.log.Info("wal: recovered", "records", applied, "from_lsn", from, "to_lsn", last)
	}
	return nil
}

// appliedLSN is the LSN of the last record applied to memory (writer only).
func (s *Store) appliedLSN() uint64 {
	if s.wal == nil {
		return s.restoredLSN
	}
	return s.wal.last
}

// walAppend logs ops. It is called with the writer lock held and returns
// with it held; while the WAL is full it releases the lock, runs a
// checkpoint and tries again.
func (s *Store) walAppend(ctx context.Context, ops []walOp, txn bool) (first, last uint64, err error) {
	w := s.wal
	now := uint64(time.Now().UnixNano())
	recs := w.recs[:0]
	if txn {
		recs = append(recs, wal.Record{Op: wal.OpTxnStart, Nanos: now})
	}
	for i, o := range ops {
		recs = append(recs, wal.Record{Op: opToWAL[o.op], Nanos: now, Seq: uint32(i + 1),
			KeyHigh: o.key.High, KeyLow: o.key.Low, ValueHigh: o.value.High, ValueLow: o.value.Low})
	}
	if txn {
		recs = append(recs, wal.Record{Op: wal.OpTxnCommit, Nanos: now, Seq: uint32(len(ops) + 1)})
	}
	w.recs = recs
	first, last, err = w.log.Append(recs)
	if errors.Is(err, wal.ErrFull) {
		// Backpressure: never overwrite un-checkpointed records. The writer
		// lock is released meanwhile, so the caller must prepare the batch
		// again (the evictor may have dropped what it loaded) and retry.
		s.wmu.Unlock()
		s.stats.walFullWaits.Add(1)
		t0 := time.Now()
		cerr := s.checkpointForSpace(int64(len(recs)))
		s.noteCheckpointWait(t0)
		if cerr == nil {
			cerr = ctx.Err()
		}
		s.wmu.Lock()
		if cerr != nil {
			return 0, 0, fmt.Errorf("wal full, checkpoint: %w", cerr)
		}
		if s.closed.Load() {
			return 0, 0, ErrClosed
		}
		return 0, 0, errWALWaited
	}
	if errors.Is(err, wal.ErrTooLarge) {
		return 0, 0, fmt.Errorf("%w: batch of %d records is larger than the WAL", ErrInvalid, len(recs))
	}
	if err != nil {
		return 0, 0, fmt.Errorf("wal append: %w", err)
	}
	w.last = last
	// Start the sync now; it runs while the batch is applied. Where the
	// file cannot start one itself (no Linux AIO), or one is in flight,
	// the syncer goroutine runs it.
	if w.sync == SyncAlways && !w.log.StartSync() {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	if w.log.UsedRecords() > w.fillMax {
		select {
		case w.ckpt <- struct{}{}:
		default:
		}
	}
	return first, last, nil
}

// pace returns how long to hold the batch just appended and applied
// (writer lock held) so that neither the WAL nor memory runs out before
// the running checkpoint is expected to end (delayed writes, below);
// pinned is how many bytes applying it pinned, filled how many preparing
// (loads) and applying it added to the cache. The holds are apart so that
// they are counted apart (Stats).
func (s *Store) pace(pinned, filled int64) (walHold, memHold time.Duration) {
	w := s.wal
	t := time.Now()
	last := w.lastAppend
	w.lastAppend = t
	start := s.stats.ckptStart.Load()
	if start == 0 || last.IsZero() {
		return 0, 0
	}
	ck := ckptClock{est: time.Duration(s.stats.ckptEst.Load()), elapsed: t.Sub(time.Unix(0, start)),
		done: s.capt.bytes.Load(), todo: s.capt.todo}
	if used, capacity := w.log.UsedRecords(), w.log.CapacityRecords(); used >= capacity/walDelayFrom {
		walHold = walDelay(int64(len(w.recs)), capacity-used, ck, t.Sub(last))
	}
	if pin, fill, ok := s.cache.memRoom(); ok {
		// A writer waits only once both run out: the one that lasts
		// longer sets the pace.
		memHold = min(walDelay(pinned, pin, ck, t.Sub(last)), walDelay(filled, fill, ck, t.Sub(last)))
	}
	return walHold, memHold
}

// Delayed writes. A checkpoint frees WAL space only when it ends, and a
// writer faster than it fills the rest of the WAL first and then waits
// for the remainder of the checkpoint at once: at 10M keys, 4-7 s
// checkpoints and stops of several seconds (DESIGN-NOTES, next steps).
// Instead, while a checkpoint runs and the WAL is at least half full,
// appends are paced so that the free space lasts until the checkpoint is
// expected to end: the same wait, spread over many batches as
// milliseconds each. The writer holds a paced batch after releasing the
// writer lock, while its sync runs; a WAL that fills anyway (a checkpoint
// slower than the estimate) still makes writers wait for space.
//
// The expected end is the later of two estimates (ckptClock.remaining):
// the longest of the last three checkpoints (durations vary by half from
// one to the next at 10M keys), and the running checkpoint's own pace, the
// bytes it has encoded against those it froze, once it is past
// 1/walProgressFrom of them. The first covers the commit's work after the
// stream (index, directory, fsync); the second a checkpoint much larger
// than the last three, which the first alone underestimated into a WAL-full
// wait of 4-6 s at 10M keys (BENCHMARKS.md, session 10).
//
// Pinned memory (cache.go) is paced the same way: a checkpoint unpins
// what it froze only when it commits, and a writer that pins the rest of
// pinLimit first waits for the remainder of the checkpoint at once (up
// to 4.3 s at 20M keys under 2 GiB, session 11). Once the cache is near
// its budget with more than half of pinLimit pinned, a batch is held so
// that what is left of pinLimit, or of the budget, whichever lasts
// longer at the rate the batch used them, lasts until the checkpoint is
// expected to end: a writer waits only once both are used up, and a
// cache whose data fits the budget (10M keys under 2 GiB) stays under it
// however much is pinned.

const (
	// walDelayFrom: appends are paced only once the WAL is at least
	// 1/walDelayFrom full (half).
	walDelayFrom = 2
	// walDelayMax bounds the hold of one batch: beyond it, waiting for
	// space takes over.
	walDelayMax = 100 * time.Millisecond
	// walProgressFrom: a checkpoint's pace is trusted once it has encoded
	// 1/walProgressFrom of what it froze.
	walProgressFrom = 16
)

// ckptClock is what walDelay knows of the running checkpoint.
type ckptClock struct {
	est     time.Duration // expected duration (the last three checkpoints); 0: none yet
	elapsed time.Duration // since it froze the state
	// done of todo bytes of entries and values encoded; todo is 0 when
	// not counted (a full checkpoint).
	done, todo int64
}

// remaining is the time the checkpoint is expected to run still, 0 when
// nothing is known. Once a checkpoint passes half its estimate it is
// expected to need half the estimate more, plus however long it is
// overdue: checkpoint durations have a long tail (at 2M keys under
// 256 MiB, 2.1 s after three of 0.3-0.4 s), and the longer one has run,
// the longer it is likely to run still. With a constant half estimate,
// the writer of such a checkpoint ran unpaced until the WAL was nearly
// full and then waited for the rest at once (a WAL-full wait of 1.1-1.6 s
// in most 2M runs, BENCHMARKS.md session 13).
func (c ckptClock) remaining() time.Duration {
	var r time.Duration
	if c.est > 0 {
		r = max(c.est-c.elapsed, c.est/2+max(c.elapsed-c.est, 0))
	}
	if c.todo > 0 && c.done > 0 && c.done >= c.todo/walProgressFrom && c.done < c.todo {
		r = max(r, time.Duration(float64(c.elapsed)*float64(c.todo-c.done)/float64(c.done)))
	}
	return r
}

// walDelay is how long to hold a batch of n records just appended, with
// free records left in the WAL, for the appends to last the remaining
// time of the checkpoint ck, when the previous append was sinceLast ago.
func walDelay(n, free int64, ck ckptClock, sinceLast time.Duration) time.Duration {
	remaining := ck.remaining()
	if remaining <= 0 {
		return 0 // nothing to estimate with
	}
	if free <= 0 {
		return walDelayMax
	}
	interval := time.Duration(float64(remaining) * float64(n) / float64(free))
	return min(max(interval-sinceLast, 0), walDelayMax)
}

// checkpointForSpace runs a checkpoint unless the one that was running when
// the caller found the WAL full has already made room for n records.
// errWALWaited is returned by walAppend after it released the writer lock
// to wait for WAL space: nothing was appended, the caller retries.
var errWALWaited = errors.New("wal: waited for space")

func (s *Store) checkpointForSpace(n int64) error {
	s.ckptMu.Lock()
	free := s.wal.log.FreeRecords()
	s.ckptMu.Unlock()
	if free >= n {
		return nil
	}
	return s.checkpoint()
}

// noteCheckpointWait records a mutation's wait for a checkpoint that began
// at t0, keeping the longest.
func (s *Store) noteCheckpointWait(t0 time.Time) {
	d := int64(time.Since(t0))
	for m := &s.stats.ckptWaitMax; ; {
		cur := m.Load()
		if d <= cur || m.CompareAndSwap(cur, d) {
			return
		}
	}
}

// walWait returns once lsn is durable under the sync policy.
func (s *Store) walWait(lsn uint64) error {
	if s.wal.sync != SyncAlways {
		return nil
	}
	if err := s.wal.log.SyncTo(lsn); err != nil {
		return fmt.Errorf("wal sync to lsn %d: %w", lsn, err)
	}
	return nil
}

func (s *Store) walTruncate(lsn uint64) error { return s.wal.log.Truncate(lsn) }

func (s *Store) closeWAL() error { return s.wal.log.Close() }

func (w *walState) fillStats(st *Stats) {
	ws := w.log.Stats()
	st.LastLSN = w.log.NextLSN() - 1
	st.WALCapacityBytes = ws.CapacityBytes
	st.WALUsedBytes = ws.UsedBytes
	st.WALSyncs = ws.Syncs
	st.WALSyncSeconds = ws.SyncSeconds
}

// startBackground starts the maintenance scheduler, the syncer and the
// periodic checkpointer.
func (s *Store) startBackground() {
	s.startMaintenance()
	if s.wal == nil {
		return
	}
	w := s.wal
	s.bg.Add(2)
	go func() { // syncer: one fdatasync per wake-up, shared by everyone
		defer s.bg.Done()
		for {
			select {
			case <-s.stop:
				return
			case <-w.kick:
				// Errors are sticky in the log: the waiting callers see them.
				_ = w.log.Sync()
			}
		}
	}()
	go func() { // checkpointer
		defer s.bg.Done()
		var tick <-chan time.Time
		if s.opts.CheckpointInterval > 0 {
			t := time.NewTicker(s.opts.CheckpointInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-s.stop:
				return
			case <-tick:
				// A checkpoint forced by the WAL's fill less than half an
				// interval ago already bounds recovery and reader lag:
				// skip this tick (the gap stays under 1.5 intervals).
				if since := time.Since(time.Unix(0, s.stats.lastCkptEnd.Load())); since < s.opts.CheckpointInterval/2 {
					continue
				}
			case <-w.ckpt:
			}
			if err := s.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("checkpoint failed", "err", err)
			}
		}
	}()
}

// RepairWAL salvages a corrupt WAL file: it keeps every valid record up to
// the first damaged one and drops the rest, so that Open succeeds. It
// returns the number of records kept. Run it only on a WAL that Open
// refused with a corruption error, with no store open on it.
func RepairWAL(path string) (salvaged uint64, err error) {
	return wal.Repair(path)
}
