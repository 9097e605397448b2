package client

import (
	"errors"
	"fmt"
)

// Error codes of PROTOCOL.md §1.3, as carried by *Error.
const (
	CodeBadRequest  = 400 // not msgpack, not a map, unknown op_code, missing or mistyped field, wrong frame count
	CodeTooLarge    = 413 // frame or batch over the server's limits (also raised locally before sending)
	CodeInvalid     = 422 // zero key or value, E out of range
	CodeVersion     = 426 // unsupported rolling_version
	CodeInternal    = 500 // internal server error
	CodeUnavailable = 503 // recovering, read-only replica, or overloaded: retry later or elsewhere
)

// Error is an error reply from the server (or a 413 the client raised
// before sending a request over MaxFrameBytes).
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("cidstore: server error %d: %s", e.Code, e.Msg) }

// Is makes errors.Is(err, &Error{Code: 503}) true for any *Error with that
// code; a target with a Msg must match it too.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// IsCode reports whether err is, or wraps, an *Error with the given code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

var (
	// ErrTimeout is wrapped by the error of a request that got no reply
	// within Options.Timeout or before the context's deadline. The request
	// may still have been executed.
	ErrTimeout = errors.New("cidstore: request timed out")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("cidstore: client closed")
	// ErrProtocol is wrapped by the error for a reply that does not follow
	// PROTOCOL.md.
	ErrProtocol = errors.New("cidstore: malformed reply")
)
