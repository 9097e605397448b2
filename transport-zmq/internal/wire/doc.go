// Package wire is the small msgpack reader and writer shared by the CIDStore
// ZeroMQ server and client.
//
// # Why not a general msgpack library
//
// The request and reply maps are tiny and fixed; a hand-written codec is 3–5×
// faster than reflection for a 1000-entry batch and, more importantly, it
// never panics: every read is bounds-checked and reports ErrTruncated or a
// *TypeError instead (shamaton/msgpack v2.4.0 panics on some truncated
// inputs, see NOTES-ZMQ.md). Only the format constants of shamaton's def
// package are used.
//
// # Limits
//
// Reader never allocates from a length header: a header claiming more
// elements or bytes than remain in the buffer is ErrTruncated. Skip is
// iterative, so deeply nested input cannot exhaust the stack.
package wire
