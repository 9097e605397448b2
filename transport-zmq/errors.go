package zmqserver

import (
	"context"
	"errors"
	"fmt"

	cidstore "github.com/cidstore/cidstore/core"
)

// Wire error codes, PROTOCOL.md §1.3. codeOK is used only for metrics.
const (
	codeOK          = 200
	codeBadRequest  = 400 // not msgpack, not a map, unknown op_code, missing or mistyped field, wrong frame count
	codeTooLarge    = 413 // frame or batch over the configured limits
	codeInvalid     = 422 // zero key or value, E out of range
	codeVersion     = 426 // unsupported rolling_version
	codeInternal    = 500 // internal error (logged with the request id)
	codeUnavailable = 503 // recovering, read-only, overloaded
)

// wireError is an error reply: a PROTOCOL.md §1.3 code and a message for
// the client.
type wireError struct {
	code int
	msg  string
}

func (e *wireError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func errorf(code int, format string, args ...any) *wireError {
	return &wireError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Frequent error replies, allocated once.
var (
	errNotReady   = &wireError{codeUnavailable, "not ready: recovering"}
	errReadOnly   = &wireError{codeUnavailable, "read-only replica: mutations are not accepted"}
	errOverloaded = &wireError{codeUnavailable, "overloaded: request queue is full"}
	errShutdown   = &wireError{codeUnavailable, "shutting down"}
)

// storeError maps an error returned by the Store to its wire code. This is
// the transport's one table from core sentinels to codes; anything not listed
// is a 500, logged by the caller with the request id.
//
//	cidstore.ErrInvalid                 422  (the server validates first, so rare)
//	cidstore.ErrReadOnly                503
//	cidstore.ErrClosed                  503  (store closing under the server)
//	context.Canceled, DeadlineExceeded  503  (server shutting down)
//	anything else                       500
func storeError(err error) *wireError {
	switch {
	case errors.Is(err, cidstore.ErrInvalid):
		return &wireError{codeInvalid, err.Error()}
	case errors.Is(err, cidstore.ErrReadOnly):
		return errReadOnly
	case errors.Is(err, cidstore.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errShutdown
	}
	return &wireError{codeInternal, "internal error"}
}
