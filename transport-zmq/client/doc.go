// Package client is a Go client for the CIDStore ZeroMQ data plane
// (PROTOCOL.md §1): request/reply over a DEALER socket connected to the
// server's ROUTER.
//
// # Usage
//
//	c, err := client.Dial("tcp://127.0.0.1:5558", client.Options{})
//	err = c.Insert(ctx, key, value)
//	vals, err := c.Get(ctx, key)       // ascending; empty if absent
//	err = c.InsertBatch(ctx, pairs)    // split and pipelined
//	if client.IsCode(err, client.CodeUnavailable) { /* retry later */ }
//
// # Errors
//
// An error reply is an *Error carrying the PROTOCOL.md §1.3 code; test it
// with IsCode or errors.Is(err, &client.Error{Code: 503}). A request without
// a reply in time wraps ErrTimeout: it may or may not have been executed
// (mutations are idempotent, so retrying is safe). A reply that is not valid
// wraps ErrProtocol.
//
// # Concurrency
//
// A Client is safe for concurrent use, but its calls are serialized on its
// one socket; open one Client per goroutine to issue requests in parallel.
// Each request carries a fresh request_id (a random per-client prefix and a
// counter), which is how pipelined replies are matched and how late replies
// to timed-out requests are recognised and discarded.
//
// # Pipelining and ordering
//
// InsertBatch keeps up to Options.Window BATCH_INSERT messages in flight.
// The server executes one connection's requests in the order sent, so a
// later call observes the effects of every earlier acknowledged call.
package client
