package h5store

import "errors"

// Adapter sentinels. Failures of stored data wrap port.ErrCorrupt, unknown
// ids port.ErrNotFound and Commit on a Reader port.ErrReadOnly; these cover
// what the port has no word for.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("cidstore: h5store closed")
	// ErrLocked is returned by Open when another writer holds the store.
	ErrLocked = errors.New("cidstore: h5store is locked by another writer")
	// ErrFormatVersion is returned by Open and OpenReader for a file whose
	// format version this build cannot read.
	ErrFormatVersion = errors.New("cidstore: unsupported h5store format version")
	// ErrStale is returned by a Reader whose generation the writer has
	// already overwritten: Refresh and retry.
	ErrStale = errors.New("cidstore: h5store reader is behind the writer; refresh")
	// ErrFailed is returned by Commit after a commit failed in a way that
	// leaves the durable state unknown (an fsync or commit-record write
	// error): reopen the store.
	ErrFailed = errors.New("cidstore: h5store failed; reopen it")
)
