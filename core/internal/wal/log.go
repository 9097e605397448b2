package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// syncedHeaderInterval is how often, at most, a sync round also rewrites the
// header's synced LSN. Rewriting it costs one more dirty page per fdatasync
// (~30 µs of ~400 µs measured here), so it is rate-limited: the synced LSN
// on disk lags the real one by up to this interval plus one sync round,
// and only damage below it is provably corruption (see recovery.go).
const syncedHeaderInterval = 10 * time.Millisecond

// maxLSN bounds LSNs so that tail+capacity never overflows.
const maxLSN = math.MaxUint64 >> 2

// Log is an open write-ahead log file. All methods are safe for concurrent
// use, except that Replay must not run concurrently with Truncate.
type Log struct {
	path string
	opts Options
	f    File
	ring ring

	closeMu sync.RWMutex // shared by every call, exclusive in Close
	closed  bool

	mu   sync.Mutex    // serializes Append and Truncate
	buf  []byte        // Append's encoding buffer, guarded by mu
	head atomic.Uint64 // next LSN to assign; records < head are in the ring
	tail atomic.Uint64 // oldest live LSN; raised only once the header holding it is durable

	sm      sync.Mutex // guards syncing, waiters, inflight and reaping
	cond    sync.Cond  // on sm; broadcast at the end of every sync round
	syncing bool       // a leader is in a sync round
	waiters int        // callers blocked on cond (observed by tests)
	durable atomic.Uint64

	// An asynchronous sync round (StartSync): the leader that started it
	// returned, leaving syncing set and the round in flight; the first
	// caller that would wait for it collects it instead (reap).
	async    AsyncSyncer // nil when the file cannot start syncs
	asyncOff atomic.Bool // set once StartDatasync reported ErrUnsupported
	inflight bool        // a started round awaits collection
	reaping  bool        // a caller is collecting it

	// Owned by the sync leader (syncing == true), or by Open and Close.
	hdr         header // last header written
	hdrWritten  time.Time
	hdrInterval time.Duration
	flight      uint64 // the LSN the round in flight makes durable

	failed atomic.Pointer[error] // sticky; see ErrFailed

	stop chan struct{} // closed by Close to stop the SyncInterval goroutine
	done chan struct{} // closed by that goroutine when it exits

	appends   atomic.Uint64
	appended  atomic.Uint64
	syncs     atomic.Uint64
	syncNanos atomic.Int64
}

// Open opens the log at path, creating it with opts.SizeBytes if it does
// not exist. Creation is atomic: the file is allocated, zero-filled (so
// later fdatasyncs never have to commit block allocations) and given a
// header under a temporary name, synced, then renamed into place.
//
// Opening an existing log scans it from the tail to find the true head
// (the header's head is only a hint) and fails with a *CorruptError
// (errors.Is ErrCorrupt) when the damage cannot be a torn tail; Repair then
// salvages the valid prefix. Everything found is synced before Open
// returns, so DurableLSN() == NextLSN()-1. The next Append continues after
// the last valid record.
//
// Other errors: ErrInvalid (options), ErrLocked (the file is open
// elsewhere), ErrUnsupported (newer format), and file system errors such as
// ENOSPC while creating.
func Open(path string, opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	l, err := open(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if opts.Sync == SyncInterval {
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.syncLoop(opts.SyncInterval)
	}
	return l, nil
}

func newLog(path string, opts Options, f File) *Log {
	l := &Log{path: path, opts: opts, f: f, hdrInterval: syncedHeaderInterval}
	l.cond.L = &l.sm
	l.async, _ = f.(AsyncSyncer)
	return l
}

func open(path string, opts Options) (*Log, error) {
	f, err := opts.FS.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = create(opts.FS, path, opts.SizeBytes)
	}
	if err != nil {
		return nil, err
	}
	l := newLog(path, opts, f)
	if err := l.load(); err != nil {
		return nil, errors.Join(err, l.release())
	}
	return l, nil
}

// create makes a new log file at path; see Open.
func create(fsys FS, path string, size int64) (_ File, err error) {
	tmp := path + ".tmp"
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create: %w", err)
	}
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("create: %w", err), f.Close(), fsys.Remove(tmp))
		}
	}()
	if err := f.Allocate(size); err != nil {
		return nil, fmt.Errorf("allocate %d bytes: %w", size, err)
	}
	zero := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zero)) {
		if err := writeFull(f, zero[:min(int64(len(zero)), size-off)], off); err != nil {
			return nil, err
		}
	}
	h := header{
		fileSize: uint64(size),
		capacity: uint64(size-HeaderSizeBytes) / RecordSize,
		seq:      1,
		tail:     1,
		head:     1,
		clean:    true,
	}
	page := make([]byte, 2*headerCopyStride)
	h.encode(page[0:])
	h.encode(page[headerCopyStride:])
	if err := writeFull(f, page, 0); err != nil {
		return nil, err
	}
	if err := f.Datasync(); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return nil, err
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("sync directory: %w", err)
	}
	return f, nil
}

// load locks and maps l.f, scans it and starts a new (unclean) session.
func (l *Log) load() error {
	if err := lockFile(l.f.Fd()); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	h, r, err := mapLog(l.f)
	if err != nil {
		return err
	}
	l.ring, l.hdr = r, h
	end, err := r.end(h.tail)
	if err != nil {
		return err
	}
	if err := r.classify(h, end); err != nil {
		return err
	}
	// A process that crashed left its last records in the page cache; make
	// them durable before the header says so.
	if err := l.datasync(); err != nil {
		return err
	}
	nh := h
	nh.head, nh.synced, nh.clean = end, end-1, false
	if err := l.writeHeader(nh); err != nil {
		return err
	}
	if err := l.datasync(); err != nil {
		return err
	}
	l.tail.Store(h.tail)
	l.head.Store(end)
	l.durable.Store(end - 1)
	return nil
}

// mapLog reads and checks the header of f and maps its ring.
func mapLog(f File) (header, ring, error) {
	size, err := f.Size()
	if err != nil {
		return header{}, ring{}, fmt.Errorf("stat: %w", err)
	}
	if size < HeaderSizeBytes {
		return header{}, ring{}, &CorruptError{Reason: fmt.Sprintf("file is %d bytes, too short for a header", size)}
	}
	page := make([]byte, 2*headerCopyStride)
	if _, err := f.ReadAt(page, 0); err != nil {
		return header{}, ring{}, fmt.Errorf("read header: %w", err)
	}
	h, err := pickHeader(page)
	if err != nil {
		return header{}, ring{}, err
	}
	if uint64(size) != h.fileSize {
		return header{}, ring{}, &CorruptError{Reason: fmt.Sprintf("file is %d bytes, header says %d", size, h.fileSize)}
	}
	b, err := mmapFile(f.Fd(), HeaderSizeBytes, int(size-HeaderSizeBytes))
	if err != nil {
		return header{}, ring{}, fmt.Errorf("mmap: %w", err)
	}
	return h, ring{b: b, capacity: h.capacity}, nil
}

// release unmaps the ring and closes the file.
func (l *Log) release() error {
	var errs []error
	if l.ring.b != nil {
		if err := munmap(l.ring.b); err != nil {
			errs = append(errs, fmt.Errorf("munmap: %w", err))
		}
		l.ring.b = nil
	}
	if err := l.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	return errors.Join(errs...)
}

// Append writes recs into the ring as one group with consecutive LSNs and
// returns the first and last. The records are in the page cache when it
// returns (they survive a crash of the process); they are durable
// once SyncTo(last) returns. Each record is written with VersionCurrent;
// its Op must be one of the known opcodes (1..11), else ErrInvalid and
// nothing is written. Append never overwrites records that are not
// truncated: when they do not fit it returns ErrFull at once (see
// FreeRecords), and ErrTooLarge when len(recs) exceeds CapacityRecords.
// An empty recs returns (0, 0, nil). After an I/O error it returns the
// sticky ErrFailed. Append does not retain recs.
func (l *Log) Append(recs []Record) (first, last uint64, err error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return 0, 0, ErrClosed
	}
	n := uint64(len(recs))
	if n == 0 {
		return 0, 0, nil
	}
	for i := range recs {
		if !recs[i].Op.Known() {
			return 0, 0, fmt.Errorf("%w: append: record %d has opcode %d", ErrInvalid, i, recs[i].Op)
		}
	}
	if n > l.ring.capacity {
		return 0, 0, fmt.Errorf("%w: %d records, capacity %d", ErrTooLarge, n, l.ring.capacity)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failure(); err != nil {
		return 0, 0, err
	}
	head := l.head.Load()
	if head+n > maxLSN {
		return 0, 0, fmt.Errorf("%w: LSN %d out of range", ErrInvalid, head+n)
	}
	if free := l.ring.capacity - (head - l.tail.Load()); n > free {
		return 0, 0, fmt.Errorf("%w: %d records, %d free of %d", ErrFull, n, free, l.ring.capacity)
	}
	l.failpoint("wal.append.before-copy")
	if err := l.write(head, recs); err != nil {
		// Part of the batch may be in the file at LSNs that the next batch
		// would reuse for other records, then valid past its end: refuse
		// further appends instead.
		return 0, 0, l.fail(err)
	}
	l.failpoint("wal.append.after-copy")
	l.head.Store(head + n)
	l.appends.Add(1)
	l.appended.Add(n)
	return head, head + n - 1, nil
}

// writeChunkRecords bounds Append's buffer (256 KiB) and the size of each
// write.
const writeChunkRecords = 4096

// write encodes recs at LSNs first, first+1, ... and writes them into their
// slots with pwrite, in order, one write per contiguous run of slots.
//
// Why pwrite and not stores into a writable mapping: after each fdatasync
// the kernel write-protects the mapped pages, so the next store to each
// page takes a page_mkwrite fault, and on ext4 those faults also tie the
// data to a journal commit. Measured here for a 1000-record (64 KiB)
// batch: ~150-250 µs of faults per batch through the mapping, ~15-30 µs
// with pwrite, and fdatasync no slower (often faster) after pwrite.
func (l *Log) write(first uint64, recs []Record) error {
	for len(recs) > 0 {
		slot := (first - 1) % l.ring.capacity
		n := min(uint64(len(recs)), writeChunkRecords, l.ring.capacity-slot)
		if need := int(n) * RecordSize; len(l.buf) < need {
			l.buf = make([]byte, min(writeChunkRecords, l.ring.capacity)*RecordSize)
		}
		b := l.buf[:n*RecordSize]
		for i := range n {
			r := recs[i]
			r.Version = VersionCurrent
			r.Encode(b[i*RecordSize:], first+i)
		}
		if err := writeFull(l.f, b, HeaderSizeBytes+int64(slot)*RecordSize); err != nil {
			return fmt.Errorf("append LSN %d..%d: %w", first, first+n-1, err)
		}
		recs, first = recs[n:], first+n
	}
	return nil
}

// SyncTo returns once every record with an LSN <= lsn is durable. It is
// the group commit: when a sync is in flight, the caller waits for it and
// returns if it covered lsn; otherwise one of the waiters issues a single
// fdatasync that covers every record appended so far, for all of them.
// It returns the sticky ErrFailed when this or an earlier sync failed, and
// ErrInvalid when lsn was not appended yet. Sync modes do not change it.
func (l *Log) SyncTo(lsn uint64) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if head := l.head.Load(); lsn >= head {
		return fmt.Errorf("%w: sync to LSN %d, last appended %d", ErrInvalid, lsn, head-1)
	}
	return l.syncTo(lsn)
}

// Sync is SyncTo(NextLSN()-1): everything appended so far becomes durable.
func (l *Log) Sync() error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncTo(l.head.Load() - 1)
}

func (l *Log) syncTo(lsn uint64) error {
	for {
		l.sm.Lock()
		if err := l.failure(); err != nil {
			l.sm.Unlock()
			return err
		}
		if l.durable.Load() >= lsn {
			l.sm.Unlock()
			return nil
		}
		if l.syncing {
			if l.collect() {
				if err := l.reap(); err != nil {
					return err
				}
				continue
			}
			l.waiters++
			l.cond.Wait()
			l.waiters--
			l.sm.Unlock()
			continue
		}
		l.syncing = true
		l.sm.Unlock()
		if err := l.syncRound(); err != nil {
			return err
		}
	}
}

// StartSync starts a sync round covering every record appended so far
// and returns without waiting for it, when the file can sync
// asynchronously (Linux AIO); SyncTo, Sync or Truncate later collects it.
// It reports whether the records are covered without another goroutine's
// help: true when it started the round or when nothing needs syncing,
// false when the file cannot, a round is already in flight, or the log
// failed or is closed (the caller then syncs another way, or SyncTo
// reports the failure).
func (l *Log) StartSync() bool {
	if l.async == nil || l.asyncOff.Load() {
		return false
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return false
	}
	l.sm.Lock()
	if l.syncing || l.failure() != nil {
		l.sm.Unlock()
		return false
	}
	target := l.head.Load() - 1
	if l.durable.Load() >= target {
		l.sm.Unlock()
		return true
	}
	l.syncing = true
	l.sm.Unlock()
	l.failpoint("wal.sync.before")
	if err := l.writeSyncedHeader(target); err != nil {
		l.fail(err)
		l.unlead()
		return false
	}
	if err := l.async.StartDatasync(); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			l.asyncOff.Store(true) // nothing failed: sync the usual way from now on
		} else {
			l.fail(fmt.Errorf("sync: %w", err))
		}
		l.unlead()
		return false
	}
	l.flight = target
	l.sm.Lock()
	l.inflight = true
	// Callers that came while the round was being started found nothing
	// to collect and wait on cond: one of them must collect it now.
	l.cond.Broadcast()
	l.sm.Unlock()
	return true
}

// collect, with sm held, reports whether the caller is to collect the
// round in flight (then it holds sm no more: it must call reap).
func (l *Log) collect() bool {
	if !l.inflight || l.reaping {
		return false
	}
	l.reaping = true
	l.sm.Unlock()
	return true
}

// reap waits for the started round, records its result and ends it.
func (l *Log) reap() error {
	err := l.timed(l.async.WaitDatasync)
	if err != nil {
		err = l.fail(err)
	} else {
		l.raiseDurable(l.flight)
		l.failpoint("wal.sync.after")
	}
	l.sm.Lock()
	l.inflight, l.reaping = false, false
	l.sm.Unlock()
	l.unlead()
	return err
}

// syncRound is one fdatasync by the leader, covering everything appended
// when it starts.
func (l *Log) syncRound() error {
	defer l.unlead()
	target := l.head.Load() - 1
	l.failpoint("wal.sync.before")
	if err := l.writeSyncedHeader(target); err != nil {
		return l.fail(err)
	}
	if err := l.datasync(); err != nil {
		return l.fail(err)
	}
	l.raiseDurable(target)
	l.failpoint("wal.sync.after")
	return nil
}

// writeSyncedHeader writes the header with the durable LSN when it is
// due, before a round that syncs up to target. The header's synced LSN may
// only name records synced by an earlier, completed round: header and
// records reach the disk in no particular order within one fdatasync.
func (l *Log) writeSyncedHeader(target uint64) error {
	if synced := l.durable.Load(); synced > l.hdr.synced && time.Since(l.hdrWritten) >= l.hdrInterval {
		h := l.hdr
		h.synced, h.head = synced, target+1
		return l.writeHeader(h)
	}
	return nil
}

// lead waits until no sync round is in flight and starts one. A failed
// round in flight leaves the error sticky, which the caller checks.
func (l *Log) lead() {
	l.sm.Lock()
	for l.syncing {
		if l.collect() {
			_ = l.reap()
			l.sm.Lock()
			continue
		}
		l.waiters++
		l.cond.Wait()
		l.waiters--
	}
	l.syncing = true
	l.sm.Unlock()
}

// unlead ends the caller's sync round and wakes the waiters.
func (l *Log) unlead() {
	l.sm.Lock()
	l.syncing = false
	l.cond.Broadcast()
	l.sm.Unlock()
}

// raiseDurable records that every LSN <= lsn is durable. Only sync leaders
// call it, so a plain load and store suffice.
func (l *Log) raiseDurable(lsn uint64) {
	if lsn > l.durable.Load() {
		l.durable.Store(lsn)
	}
}

func (l *Log) datasync() error { return l.timed(l.f.Datasync) }

// timed runs sync (an fdatasync, or the wait for a started one), counts
// it and adds the time it took to the stats.
func (l *Log) timed(sync func() error) error {
	start := time.Now()
	err := sync()
	l.syncNanos.Add(int64(time.Since(start)))
	l.syncs.Add(1)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// writeHeader writes h as the next header generation into the copy that
// does not hold the current one. It does not sync.
func (l *Log) writeHeader(h header) error {
	h.seq = l.hdr.seq + 1
	var b [headerCopySize]byte
	h.encode(b[:])
	if err := writeFull(l.f, b[:], int64(h.seq%2)*headerCopyStride); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	l.hdr, l.hdrWritten = h, time.Now()
	return nil
}

// syncLoop is the SyncInterval goroutine. A failed sync is sticky and is
// reported by the next Append, SyncTo or Truncate, so the loop just ends.
func (l *Log) syncLoop(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if last := l.head.Load() - 1; last > l.durable.Load() {
			if l.syncTo(last) != nil {
				return
			}
		}
	}
}

// Truncate discards the records with LSN <= upto, which a checkpoint has
// made durable elsewhere, freeing their space. The new tail is written to
// the header and synced before any of that space can be reused, so a crash
// never leaves the header pointing at overwritten records; that sync also
// makes every appended record durable. If upto < TailLSN() it does
// nothing. If upto >= NextLSN() (the checkpoint is ahead of the log, e.g.
// it was taken without a WAL or the log lost unsynced records), the log
// becomes empty and continues at LSN upto+1, so LSNs are never reused.
// It returns the sticky ErrFailed after an I/O error, and ErrInvalid when
// upto is beyond the LSN range (2^62).
func (l *Log) Truncate(upto uint64) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if upto >= maxLSN {
		return fmt.Errorf("%w: truncate to LSN %d out of range", ErrInvalid, upto)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failure(); err != nil {
		return err
	}
	if upto < l.tail.Load() {
		return nil
	}
	newTail := upto + 1
	newHead := max(l.head.Load(), newTail)
	l.lead()
	defer l.unlead()
	if err := l.failure(); err != nil {
		return err
	}
	l.failpoint("wal.truncate.before-header")
	h := l.hdr
	h.tail, h.head, h.synced = newTail, newHead, l.durable.Load()
	if err := l.writeHeader(h); err != nil {
		return l.fail(err)
	}
	if err := l.datasync(); err != nil {
		return l.fail(err)
	}
	l.failpoint("wal.truncate.after-header")
	l.head.Store(newHead)
	l.raiseDurable(newHead - 1)
	l.tail.Store(newTail)
	return nil
}

// Close syncs every appended record, marks the header clean (its head is
// then exact, which lets the next Open skip the corruption look-ahead),
// syncs again, and releases the file. A log that failed is not synced;
// Close then returns the sticky error joined with any release error.
// Close waits for calls in flight; every call after it returns ErrClosed.
func (l *Log) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	l.sm.Lock()
	if l.collect() { // a round started and never waited for
		_ = l.reap() // its error, if any, is sticky
	} else {
		l.sm.Unlock()
	}
	var errs []error
	if err := l.failure(); err != nil {
		errs = append(errs, err)
	} else if err := l.closeClean(); err != nil {
		errs = append(errs, l.fail(err))
	}
	errs = append(errs, l.release())
	return errors.Join(errs...)
}

// closeClean runs with closeMu held exclusively and the sync loop stopped,
// so it is the only sync leader.
func (l *Log) closeClean() error {
	head := l.head.Load()
	if err := l.datasync(); err != nil {
		return err
	}
	l.raiseDurable(head - 1)
	h := l.hdr
	h.head, h.synced, h.clean = head, head-1, true
	if err := l.writeHeader(h); err != nil {
		return err
	}
	return l.datasync()
}

// fail makes err the sticky failure (unless one is set) and returns the
// sticky error.
func (l *Log) fail(err error) error {
	e := fmt.Errorf("%w: %w", ErrFailed, err)
	l.failed.CompareAndSwap(nil, &e)
	return *l.failed.Load()
}

func (l *Log) failure() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Log) failpoint(name string) {
	if l.opts.Failpoint != nil {
		l.opts.Failpoint(name)
	}
}

// NextLSN returns the LSN the next appended record will get.
func (l *Log) NextLSN() uint64 { return l.head.Load() }

// TailLSN returns the oldest LSN not yet truncated. The log holds the
// records TailLSN() .. NextLSN()-1.
func (l *Log) TailLSN() uint64 { return l.tail.Load() }

// DurableLSN returns the highest LSN known to be durable: every record
// with an LSN <= it is on disk.
func (l *Log) DurableLSN() uint64 { return l.durable.Load() }

// CapacityRecords returns the number of record slots in the ring.
func (l *Log) CapacityRecords() int64 { return int64(l.ring.capacity) }

// UsedRecords returns the number of records not yet truncated, a snapshot.
func (l *Log) UsedRecords() int64 {
	tail := l.tail.Load() // before head: both only grow, so head >= tail
	used := l.head.Load() - tail
	return int64(min(used, l.ring.capacity)) // Truncate's jump raises head before tail
}

// FreeRecords returns the number of records Append can take now, a
// snapshot: CapacityRecords() - UsedRecords().
func (l *Log) FreeRecords() int64 { return l.CapacityRecords() - l.UsedRecords() }

// Stats is a snapshot of a Log's counters.
type Stats struct {
	Appends         uint64  // Append calls that wrote records
	AppendedRecords uint64  // records written by Append
	Syncs           uint64  // fdatasync calls (SyncTo, Truncate, Open, Close, StartSync)
	SyncSeconds     float64 // time spent waiting in fdatasync (for a started one: from its collection)
	UsedBytes       int64   // bytes of records not yet truncated
	CapacityBytes   int64   // bytes of the ring (file size minus header)
	TailLSN         uint64
	NextLSN         uint64
	DurableLSN      uint64
}

// Stats returns a snapshot of the counters. It is valid after Close.
func (l *Log) Stats() Stats {
	return Stats{
		Appends:         l.appends.Load(),
		AppendedRecords: l.appended.Load(),
		Syncs:           l.syncs.Load(),
		SyncSeconds:     time.Duration(l.syncNanos.Load()).Seconds(),
		UsedBytes:       l.UsedRecords() * RecordSize,
		CapacityBytes:   l.CapacityRecords() * RecordSize,
		TailLSN:         l.TailLSN(),
		NextLSN:         l.NextLSN(),
		DurableLSN:      l.DurableLSN(),
	}
}
