package zmqserver

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/internal/fakestore"
)

// TestHandle covers the handler's paths that sockets cannot reach
// deterministically: the frame limit behind ZMQ_MAXMSGSIZE, store failures,
// panics and the PULL rules.
func TestHandle(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		setup func(*fakestore.Store)
		in    []byte
		pull  bool
		code  int
		reply string // substring of the decoded reply
	}{
		{name: "frame over limit", cfg: Config{MaxFrameBytes: 1024},
			in: msg("op_code", "GET", "key", tk, "pad", strings.Repeat("x", 1100)), code: 413, reply: "exceeds the limit of 1024"},
		{name: "frame over limit echoes request_id and version", cfg: Config{MaxFrameBytes: 1024},
			in: msg("rolling_version", 2, "op_code", "GET", "request_id", "big", "key", tk, "pad", strings.Repeat("x", 1100)), code: 413,
			reply: "request_id:big rolling_version:2"},
		{name: "store internal error", setup: func(s *fakestore.Store) { s.Err = errors.New("disk on fire") },
			in: msg("op_code", "GET", "request_id", "r9", "key", tk), code: 500, reply: "error_msg:internal error request_id:r9"},
		{name: "store read-only", setup: func(s *fakestore.Store) { s.Err = fmt.Errorf("commit: %w", cidstore.ErrReadOnly) },
			in: msg("op_code", "INSERT", "key", tk, "value", tv), code: 503, reply: "read-only"},
		{name: "store closed", setup: func(s *fakestore.Store) { s.Err = cidstore.ErrClosed },
			in: msg("op_code", "DELETE_KEY", "key", tk), code: 503, reply: "shutting down"},
		{name: "store invalid", setup: func(s *fakestore.Store) { s.Err = fmt.Errorf("%w: zero", cidstore.ErrInvalid) },
			in: msg("op_code", "DELETE_KEY", "key", tk), code: 422},
		{name: "store panic", setup: func(s *fakestore.Store) { s.Panic = true },
			in: msg("op_code", "GET", "key", tk), code: 500, reply: "internal error"},
		{name: "read-only config", cfg: Config{ReadOnly: true},
			in: msg("op_code", "BATCH_DELETE", "entries", []any{}), code: 503, reply: "read-only"},
		{name: "read-only allows GET", cfg: Config{ReadOnly: true},
			in: msg("op_code", "GET", "key", tk), code: 200, reply: "results:[]"},
		{name: "not ready", cfg: Config{Ready: func() bool { return false }},
			in: msg("op_code", "GET", "key", tk), code: 503, reply: "recovering"},
		{name: "not ready serves METRICS", cfg: Config{Ready: func() bool { return false }},
			in: msg("op_code", "METRICS"), code: 200, reply: "buffer_occupancy:4096"},
		{name: "GET sorts and never nil", setup: func(s *fakestore.Store) {
			_ = s.Insert(t.Context(), tk, cidstore.E{High: 1, Low: 9})
			_ = s.Insert(t.Context(), tk, cidstore.E{High: 0, Low: 3})
			_ = s.Insert(t.Context(), tk, cidstore.E{High: 1, Low: 2})
		}, in: msg("op_code", "GET", "key", tk), code: 200, reply: "results:[[0 3] [1 2] [1 9]]"},
		{name: "pull rejects GET", pull: true, in: msg("op_code", "GET", "key", tk), code: 400},
		{name: "pull rejects METRICS", pull: true, in: msg("op_code", "METRICS"), code: 400},
		{name: "pull insert", pull: true, in: msg("op_code", "INSERT", "key", tk, "value", tv), code: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fakestore.New()
			st.StatsValue.WALUsedBytes = 4096
			if tc.setup != nil {
				tc.setup(st)
			}
			s, err := New(st, tc.cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			out := s.newHandler().handle(tc.in, tc.pull)
			if out.code != tc.code {
				t.Errorf("code %d (%v), want %d", out.code, out.err, tc.code)
			}
			if tc.pull {
				if out.reply != nil {
					t.Error("PULL outcome has a reply")
				}
				return
			}
			if got := fmtMap(decodeReply(t, out.reply)); !strings.Contains(got, tc.reply) {
				t.Errorf("reply %s, want it to contain %q", got, tc.reply)
			}
		})
	}
}
