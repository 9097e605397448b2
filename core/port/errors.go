package port

import "errors"

// Port-level sentinels. Adapters translate backend failures into these at the
// boundary; core re-exports them.
var (
	// ErrCorrupt marks stored data that failed a checksum or structural check.
	ErrCorrupt = errors.New("cidstore: corrupt data")
	// ErrReadOnly is returned by Commit on a backend opened read-only.
	ErrReadOnly = errors.New("cidstore: read-only")
	// ErrNotFound is returned by readers asked for a bucket or value set
	// that the last committed checkpoint does not hold.
	ErrNotFound = errors.New("cidstore: not found")
)
