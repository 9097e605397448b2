package wal

import (
	"errors"
	"fmt"
	"strings"
)

// Record-level sentinels, returned bare (without wrapping or allocation) by
// DecodeRecord so that scanning a log costs nothing per invalid record.
var (
	// ErrShort: the buffer holds fewer than RecordSize bytes.
	ErrShort = errors.New("wal: record shorter than 64 bytes")
	// ErrChecksum: the CRC32C does not match the record at this LSN.
	ErrChecksum = errors.New("wal: record checksum mismatch")
	// ErrVersion: the rolling version is 0 (past) or 3 (future).
	ErrVersion = errors.New("wal: record version not accepted (want 1 or 2)")
	// ErrOpcode: the opcode is 0.
	ErrOpcode = errors.New("wal: record opcode 0")
)

// Log-level sentinels. Callers test them with errors.Is.
var (
	// ErrCorrupt marks a log that cannot be trusted as it is: a bad record
	// followed by valid ones, a bad record at or below the LSN the header
	// says was synced, or no valid header. Every *CorruptError satisfies
	// errors.Is(err, ErrCorrupt). Repair salvages the valid prefix.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrFull: the records do not fit in the free part of the ring. Nothing
	// was written; the caller checkpoints, Truncates and retries.
	ErrFull = errors.New("wal: log full")
	// ErrTooLarge: the batch holds more records than the whole ring; it can
	// never be appended.
	ErrTooLarge = errors.New("wal: batch larger than the log")
	// ErrFailed marks the sticky error of a log that hit an I/O error
	// (failed fdatasync, header write, memory fault): every later Append,
	// Sync and Truncate returns it, because after a failed fsync the kernel
	// may have dropped the dirty pages and nothing appended since the last
	// good sync can be trusted. Close and reopen (which replays what is on
	// disk) to continue.
	ErrFailed = errors.New("wal: log failed after an I/O error, reopen required")
	// ErrClosed is returned by every call on a closed Log, including a
	// second Close.
	ErrClosed = errors.New("wal: log is closed")
	// ErrInvalid marks a bad argument or option; nothing was changed.
	ErrInvalid = errors.New("wal: invalid argument")
	// ErrLocked: another Log (in this or another process) has the file open.
	ErrLocked = errors.New("wal: log file is locked by another user")
	// ErrUnsupported: the file's format version is newer than this code, or
	// the platform cannot memory-map files.
	ErrUnsupported = errors.New("wal: unsupported")
)

// CorruptError describes damage found in a log. It satisfies
// errors.Is(err, ErrCorrupt), and unwraps to the record-level cause
// (ErrChecksum, ErrVersion, ErrOpcode) when there is one.
type CorruptError struct {
	// LSN is the first bad record; 0 when the damage is not in a record
	// (the header, or the file's size).
	LSN uint64
	// Reason says why the damage is corruption rather than a torn tail,
	// e.g. "followed by valid records".
	Reason string
	// Err is the record-level cause, or nil.
	Err error
}

// Error returns e.g. "wal: corrupt record at LSN 7 (followed by valid
// records): record checksum mismatch".
func (e *CorruptError) Error() string {
	var b strings.Builder
	if e.LSN == 0 {
		b.WriteString("wal: corrupt log: " + e.Reason)
	} else {
		fmt.Fprintf(&b, "wal: corrupt record at LSN %d (%s)", e.LSN, e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": " + strings.TrimPrefix(e.Err.Error(), "wal: "))
	}
	return b.String()
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the record-level cause.
func (e *CorruptError) Unwrap() error { return e.Err }
