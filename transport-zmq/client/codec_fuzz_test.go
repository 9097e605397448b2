package client

import (
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	wt "github.com/cidstore/cidstore/transport-zmq/internal/wiretest"
)

// FuzzDecodeReply checks that no reply, however malformed, panics the
// client, and that decoded results are never nil.
//
//	go test -run '^$' -fuzz FuzzDecodeReply ./client
func FuzzDecodeReply(f *testing.F) {
	e := cidstore.E{High: 1, Low: 2}
	b16 := e.Bytes()
	for _, m := range []wt.Map{
		{"rolling_version", 1, "request_id", "a-1", "ok", true, "count", 3},
		{"rolling_version", 2, "results", []any{e, b16[:]}},
		{"rolling_version", 1, "request_id", "x", "error_code", 422, "error_msg", "zero key"},
		{"latency_p99", 0.5, "throughput_ops", 3, "buffer_occupancy", 7, "flush_duration", 0.1, "lock_contention_ratio", 0.0, "error_rate", 1.0},
		{"results", []any{[]any{-1, 2}, "x", []any{1}}},
	} {
		b := wt.Encode(m)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := decodeReply(in)
		if err == nil && rep.hasRes && rep.results == nil {
			t.Fatal("results decoded as nil")
		}
	})
}
