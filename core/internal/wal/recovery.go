package wal

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// ring is the read-only mapping of the record area: capacity slots of
// RecordSize bytes. The record with LSN n lives in slot (n-1) % capacity.
type ring struct {
	b        []byte
	capacity uint64
}

func (r ring) at(lsn uint64) []byte {
	off := (lsn - 1) % r.capacity * RecordSize
	return r.b[off : off+RecordSize : off+RecordSize]
}

// plausible is a cheap pre-check that skips the checksum of slots that were
// never written (zero) when scanning far ahead.
func plausible(b []byte) bool {
	v := b[offVersionOp] >> 6
	return v == VersionCurrent || v == VersionNext
}

// end returns the first LSN at or after tail whose record does not
// validate (tail+capacity when the whole ring validates).
func (r ring) end(tail uint64) (end uint64, err error) {
	defer catchFault(debug.SetPanicOnFault(true), &err)
	limit := tail + r.capacity
	for end = tail; end < limit && checkRecord(r.at(end), end) == nil; end++ {
	}
	return end, nil
}

// classify decides whether the invalid record at end is the torn tail of
// the log described by h (nil) or corruption (*CorruptError):
//
//   - end <= h.synced: the header says that record was on disk, so it was
//     damaged afterwards;
//   - the log was closed cleanly and end != h.head: Close synced everything
//     up to head, so the scan must stop exactly there;
//   - otherwise (a crash), any record between end and the end of the ring
//     that validates at its own LSN was written after the bad one: a record
//     in the middle of the log is bad. Stale records from earlier laps do
//     not validate (their LSN differs by a multiple of the capacity), so
//     the look-ahead covers the whole rest of the ring. It is skipped after
//     a clean close: by induction no valid record lies past the head then
//     (Open refuses such a log, Repair zeroes that area).
//
// Caveat: after a power failure (not a process crash), pages of the last
// unsynced group may reach the disk out of order and look like a record in
// the middle gone bad; Open then refuses the log and Repair drops only
// records that were never synced.
func (r ring) classify(h header, end uint64) (err error) {
	defer catchFault(debug.SetPanicOnFault(true), &err)
	limit := h.tail + r.capacity
	if end == limit {
		return nil
	}
	cause := checkRecord(r.at(end), end)
	switch {
	case end <= h.synced:
		return &CorruptError{LSN: end, Reason: fmt.Sprintf("the header says records up to LSN %d were synced", h.synced), Err: cause}
	case h.clean && end < h.head:
		return &CorruptError{LSN: end, Reason: fmt.Sprintf("the log was closed cleanly at LSN %d", h.head), Err: cause}
	case h.clean && end > h.head:
		return &CorruptError{Reason: fmt.Sprintf("records %d..%d are valid past head %d of a cleanly closed log", h.head, end-1, h.head)}
	case h.clean:
		return nil
	}
	for k := end + 1; k < limit; k++ {
		if b := r.at(k); plausible(b) && checkRecord(b, k) == nil {
			return &CorruptError{LSN: end, Reason: fmt.Sprintf("followed by valid records, from LSN %d", k), Err: cause}
		}
	}
	return nil
}

// copyOut copies the records first, first+1, ... into dst, whose length is
// a multiple of RecordSize.
func (r ring) copyOut(dst []byte, first uint64) (err error) {
	defer catchFault(debug.SetPanicOnFault(true), &err)
	for len(dst) > 0 {
		off := (first - 1) % r.capacity * RecordSize
		n := copy(dst, r.b[off:])
		dst = dst[n:]
		first += uint64(n / RecordSize)
	}
	return nil
}

// zero clears the slots of LSNs from .. to-1 (at most one lap) in the file.
func (l *Log) zero(from, to uint64) error {
	zero := make([]byte, min((to-from)*RecordSize, 1<<20))
	for from < to {
		slot := (from - 1) % l.ring.capacity
		n := min(to-from, l.ring.capacity-slot, uint64(len(zero))/RecordSize)
		if err := writeFull(l.f, zero[:n*RecordSize], HeaderSizeBytes+int64(slot)*RecordSize); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// catchFault turns a memory fault in the mapping (SIGBUS when the file was
// truncated under the log, or a page could not be read from disk) into an
// error instead of a crash. Use: defer catchFault(debug.SetPanicOnFault(true), &err).
func catchFault(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		f, ok := r.(interface{ Addr() uintptr })
		if !ok {
			panic(r)
		}
		*err = fmt.Errorf("memory fault at %#x in the mapped log (file truncated or unreadable): %v", f.Addr(), r)
	}
}

// replayChunk is the number of records Replay copies out of the mapping at
// a time, so that fn runs outside the fault guard.
const replayChunk = 256

// Replay calls fn for each record from fromLSN (0 means TailLSN()) up to
// NextLSN()-1 at the time of the call, in LSN order, and returns the LSN of
// the last record fn accepted (0 if none). Open has already validated
// these records and found the true end of the log, so Replay sees exactly
// the log's live records. It stops at the first error from fn and returns
// it wrapped. fromLSN >= NextLSN() replays nothing. fromLSN < TailLSN()
// (other than 0) is a *CorruptError: the caller's checkpoint is older than
// records the log has already discarded. fn must not call Close or
// Truncate; Replay must not run concurrently with Truncate.
func (l *Log) Replay(fromLSN uint64, fn func(lsn uint64, r Record) error) (last uint64, err error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	tail, head := l.tail.Load(), l.head.Load()
	if fromLSN == 0 {
		fromLSN = tail
	}
	if fromLSN < tail {
		return 0, &CorruptError{Reason: fmt.Sprintf("replay from LSN %d, but the log starts at LSN %d", fromLSN, tail)}
	}
	buf := make([]byte, min(replayChunk, head-min(fromLSN, head))*RecordSize)
	for lsn := fromLSN; lsn < head; {
		n := min(replayChunk, head-lsn)
		if err := l.ring.copyOut(buf[:n*RecordSize], lsn); err != nil {
			return last, l.fail(err)
		}
		for i := range n {
			rec, err := DecodeRecord(buf[i*RecordSize:], lsn+i)
			if err != nil {
				return last, &CorruptError{LSN: lsn + i, Reason: "changed since the log was opened", Err: err}
			}
			if err := fn(lsn+i, rec); err != nil {
				return last, fmt.Errorf("replay LSN %d: %w", lsn+i, err)
			}
			last = lsn + i
		}
		lsn += n
	}
	return last, nil
}

// Repair makes the log at path open again after Open reported corruption:
// it keeps the valid records from the tail up to the first bad one,
// discards everything after it (zeroing the rest of the ring, so that no
// discarded record can validate later), and writes a clean header that
// ends the log there. It returns the number of records kept. A log whose
// headers are both invalid cannot be repaired. Repair takes the file lock;
// the log must not be open.
func Repair(path string) (salvaged uint64, err error) {
	fsys := OSFS()
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("repair %s: %w", path, err)
	}
	l := newLog(path, Options{FS: fsys}, f)
	salvaged, err = l.repair()
	if err = errors.Join(err, l.release()); err != nil {
		return salvaged, fmt.Errorf("repair %s: %w", path, err)
	}
	return salvaged, nil
}

func (l *Log) repair() (uint64, error) {
	if err := lockFile(l.f.Fd()); err != nil {
		return 0, fmt.Errorf("lock: %w", err)
	}
	h, r, err := mapLog(l.f)
	if err != nil {
		return 0, err
	}
	l.ring, l.hdr = r, h
	end, err := r.end(h.tail)
	if err != nil {
		return 0, err
	}
	if err := l.zero(end, h.tail+r.capacity); err != nil {
		return 0, err
	}
	// The zeroes must be on disk before a clean header says nothing valid
	// lies past the head.
	if err := l.datasync(); err != nil {
		return 0, err
	}
	nh := h
	nh.head, nh.synced, nh.clean = end, end-1, true
	if err := l.writeHeader(nh); err != nil {
		return 0, err
	}
	if err := l.datasync(); err != nil {
		return 0, err
	}
	return end - h.tail, nil
}
