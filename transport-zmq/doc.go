// Package zmqserver serves a CIDStore over ZeroMQ: the data plane of
// PROTOCOL.md §1 (ROUTER request/reply, PULL fire-and-forget, PUB change
// notifications). The Go client is in the client sub-package.
//
//	srv, err := zmqserver.New(store, zmqserver.DefaultConfig(), obs, log)
//	err = srv.Start() // binds and returns
//	...
//	err = srv.Close() // drains, closes, never hangs
//
// To publish changes on PUB, the store's cidstore.Options.Notify must reach
// Server.Notify; as the store is opened before the server exists, close over
// an atomic.Pointer[Server] (Notify on a nil *Server is a no-op): see
// Example.
//
// # Model
//
// Every socket has exactly one owner goroutine (ZeroMQ sockets are not
// goroutine-safe). Owners park in Go's netpoller on the socket's ZMQ_FD and
// receive with DONTWAIT, rather than in blocking cgo calls.
//
//   - ROUTER: the owner receives, checks the envelope and hands the request to
//     one of Config.Workers workers, chosen by the peer's routing id; the
//     worker decodes, calls the Store, encodes the reply and hands it back;
//     the owner sends it (ROUTER_MANDATORY + DONTWAIT). Per-peer routing keeps
//     each client's requests in order; several workers let concurrent clients'
//     mutations share one WAL sync (group commit) and keep one slow store call
//     from stalling every client. A small GET or METRICS whose client has
//     nothing pending at its worker is answered by the owner itself: reads
//     need no group commit, a store read costs about a microsecond, and the
//     client's order is kept. Workers = -1 selects inline mode, where the
//     owner does decode → store → encode → send itself (NOTES-ZMQ measured
//     that as fastest when the store call is short).
//   - PULL: the owner decodes and executes inline; no reply. Rejections are
//     counted (Observer.ObserveRejected) and logged, rate-limited.
//   - PUB: the owner publishes the mutations Server.Notify queued.
//
// # Durability
//
// A mutation's reply is built only after the Store call returned, and the
// Store returns only once the mutation is durable under its sync policy.
// Notifications are published from cidstore's Notify hook, which runs after
// durability.
//
// # Limits and overload
//
//   - Config.MaxFrameBytes: a frame over it is answered 413 without being
//     decoded. ZMQ_MAXMSGSIZE on ROUTER and PULL is twice the limit: libzmq
//     enforces that while reading, so a peer sending a frame beyond twice
//     the limit is disconnected and the frame discarded before the server
//     sees it (a REQ client must use a receive timeout; the Go client
//     refuses an oversized request locally with a 413). A huge frame is thus
//     never buffered whole.
//   - Config.MaxBatchEntries: a BATCH_* with more entries is a 413, decided
//     from the array header before any entry is decoded.
//   - Config.QueueDepth and MaxQueuedBytes: requests (and their bytes)
//     received and not yet answered. Beyond either the owner answers 503
//     "overloaded" at once (it reads only request_id). QueueDepth is also the
//     receive high-water mark, per peer: libzmq may buffer up to QueueDepth ×
//     MaxFrameBytes per peer before TCP pushes back; lower MaxFrameBytes to
//     tighten that worst case.
//   - A reply that cannot be sent without blocking (peer gone, or its pipe
//     full because it does not read) is dropped and counted
//     (Observer.ObserveDropped("router", 1)).
//
// # Errors
//
// The error replies and their precedence are documented in codec.go; the
// one table from store errors to wire codes is storeError in errors.go.
// Input never panics the decoder (it is fuzzed); a recover guard turns any
// panic into a 400 (decoding) or a 500 (store), so bad input never crashes
// the server.
//
// # Choices PROTOCOL.md leaves open
//
//   - E components encoded as negative integers are 422 ("E out of range");
//     floats, strings, arrays of another length and bins of another length
//     are 400 (mistyped).
//   - A nil value counts as absent for request_id, rolling_version and value
//     (so {op_code: DELETE, key, value: nil} deletes the whole key). A field
//     given twice is a 400. Unknown fields are ignored.
//   - rolling_version that is not an integer is a 400; any integer other than
//     1 or 2 is a 426. Replies carry the request's version (1 when rejected).
//   - GET/METRICS sent to PULL are rejected (there is no reply to carry the
//     result). METRICS is served while Ready reports false.
//   - METRICS: see metrics.go. buffer_occupancy is the store's WALUsedBytes
//     (WAL bytes not yet checkpointed); queued requests are reported to the
//     Observer instead.
//
// # Shutdown
//
// Close stops receiving, waits up to ShutdownTimeout for the requests
// already received to be answered, then closes each socket from its owner
// (linger 0, raised to at most 250 ms just before closing so the final
// replies reach the wire) and terminates the context under a watchdog.
package zmqserver
