// Package wal is CIDStore's write-ahead log file: a pre-allocated,
// memory-mapped ring of fixed 64-byte records (DESIGN.md §2 and §5). It
// knows records, LSNs and durability; what the records mean (transactions,
// replay of committed groups, checkpoints) is the core's business.
//
// # Model
//
// The file is a 4 KiB header page (header.go: two alternating copies with
// magic, format version, record size, capacity, tail LSN, head LSN hint,
// synced LSN, clean flag and CRC32C) followed by a ring of capacity =
// (size-4096)/64 record slots. Records are written with pwrite and read
// (by Open's scan and by Replay) through a read-only MAP_SHARED mapping of
// the ring, which the page cache keeps coherent with the writes. (Writing
// through the mapping was measured to be several times slower: every
// page is write-protected again after each fdatasync; see Log.write.)
//
// LSNs are uint64, start at 1, grow by one per record and are never
// reused. They are not stored in records: the record with LSN n lives in
// slot (n-1) % capacity, so LSN and position determine each other once the
// lap is known, and the header's tail LSN fixes the lap. The LSN is mixed
// into each record's CRC32C (record.go), so a record validates only at the
// LSN it was written with, and a stale record from an earlier lap never
// validates at its slot's current LSN. The live records are TailLSN() ..
// NextLSN()-1; Append never overwrites them (ErrFull instead) and Truncate
// frees the oldest once a checkpoint holds them.
//
// # Durability
//
//   - Append only writes records into the page cache: they survive a
//     process crash (kill -9) but not a power failure.
//   - SyncTo(lsn) makes records <= lsn durable with fdatasync, shared by
//     concurrent callers (group commit). Appends may continue while a sync
//     is in flight; each sync covers what was appended when it started.
//   - Truncate writes and syncs the header with the new tail before the
//     freed space can be reused.
//   - The header's head is rewritten only occasionally (at most every 10 ms
//     by a sync, and by Truncate, Open and Close), so Open finds the true
//     head by scanning from the tail until a record fails to validate.
//   - Close syncs everything and marks the header clean.
//
// # Recovery
//
// Open scans the log (recovery.go). An invalid record that is the last
// thing in the log is a torn tail and silently ends the log. An invalid
// record followed by a valid one, or at or below the synced LSN recorded
// in the header, is corruption: Open fails with a *CorruptError
// (errors.Is(err, ErrCorrupt)) naming the LSN, and Repair keeps the valid
// prefix. Replay then hands the live records to the caller in LSN order.
//
// # Failures
//
// Every I/O error surfaces from the call that hit it. After a failed
// fdatasync, record write or header write the log is failed for good
// (ErrFailed, sticky): Linux may drop the dirty pages of a failed
// write-back, so continuing could acknowledge records that are not on
// disk, and a half-written batch could later pass for records that
// follow a new one. Memory faults in the
// mapping (file truncated underneath, unreadable page) become errors, not
// crashes. File operations go through FS, so tests inject faults there;
// Options.Failpoint marks the steps where crash tests kill the process.
//
// # Concurrency
//
// All methods are safe for concurrent use, except that Replay must not run
// concurrently with Truncate. Appends are serialized; at most one
// fdatasync is in flight. The file is locked (flock), so a second Open of
// the same file, in any process, fails with ErrLocked.
package wal
