package restapi

import (
	"errors"
	"net/http"

	"github.com/cidstore/cidstore/core/port"
	"github.com/gin-gonic/gin"
)

// ErrUnavailable is returned by a Deps method that cannot answer yet (the
// store is still opening) or any more (it is closing). It maps to 503.
var ErrUnavailable = errors.New("restapi: unavailable")

// ErrOutOfRange is returned by a Deps setter for a value it refuses. It maps
// to 422. The handler range-checks values itself first; this covers setters
// with tighter limits.
var ErrOutOfRange = errors.New("restapi: value out of range")

// statusOf is the one table mapping errors returned by Deps to HTTP status
// codes. Anything not listed is an internal error.
func statusOf(err error) int {
	switch {
	case errors.Is(err, port.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrOutOfRange):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnavailable), errors.Is(err, port.ErrReadOnly):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON shape of every error reply.
type errorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// abort ends the request with an error body.
func abort(c *gin.Context, code int, msg string) {
	c.AbortWithStatusJSON(code, errorBody{Error: msg, Code: code})
}

// abortErr ends the request with the status statusOf assigns err. Internal
// errors are logged and answered with a generic message so that internals
// do not leak to callers.
func (h *handler) abortErr(c *gin.Context, what string, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		h.log.Error("rest: "+what, "path", c.Request.URL.Path, "err", err)
		abort(c, code, "internal error")
		return
	}
	abort(c, code, what+": "+err.Error())
}
