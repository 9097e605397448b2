package cidstore

import (
	"errors"

	"github.com/cidstore/cidstore/core/port"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrInvalid marks bad input: a zero key or value, a malformed identifier,
	// an out-of-range option. The call that returns it changed nothing.
	ErrInvalid = errors.New("cidstore: invalid argument")
	// ErrClosed is returned by every call on a closed Store, including a
	// second Close.
	ErrClosed = errors.New("cidstore: store is closed")
	// ErrCorrupt marks data that failed a checksum or structural check.
	// Anything wrapping it satisfies IsCorruption.
	ErrCorrupt = port.ErrCorrupt
	// ErrReadOnly is returned by mutations on a read-only store.
	ErrReadOnly = port.ErrReadOnly
)

// IsCorruption reports whether err is, or wraps, a corruption error.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorrupt) }
