package zmqserver

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cidstore/cidstore/transport-zmq/internal/fakestore"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
	wt "github.com/cidstore/cidstore/transport-zmq/internal/wiretest"
)

// FuzzDecode checks that no input panics the request decoder (it runs
// without the recover guard here), that every failure is an error reply
// with a code of PROTOCOL.md §1.3, that the fast and general decoding paths
// agree, and that the full handler always produces a well-formed reply.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 30s
func FuzzDecode(f *testing.F) {
	batch := msg("rolling_version", 1, "op_code", "BATCH_INSERT", "request_id", "b", "entries", wt.Pairs(7, 20))
	seeds := [][]byte{
		nil, {0xc1}, {0x80}, {0x90},
		msg("op_code", "INSERT", "key", tk, "value", tv),
		msg("rolling_version", 2, "op_code", "GET", "request_id", "x", "key", bin16(tk)),
		msg("op_code", "LOOKUP", "key", []any{-1, 2}),
		msg("op_code", "DELETE", "key", tk, "value", nil),
		msg("op_code", "DELETE_VALUE_FROM_KEY", "key", tk, "value", tv),
		msg("op_code", "DELETE_KEY", "key", tk),
		msg("op_code", "METRICS", "rolling_version", 3),
		msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"key", tk}, wt.Map{"value", tv, "key", tk}}),
		msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "value", tv}, wt.Map{"key", tk}}),
		msg("op_code", "BATCH_INSERT", "entries", wt.Raw{0xdd, 0xff, 0xff, 0xff, 0xff}),
		batch,
	}
	// Truncations of a batch, including right after a map key (the inputs
	// that panicked shamaton/msgpack v2.4.0).
	for _, n := range []int{1, 2, 10, 20, 33, 34, 35, 40, 47, 60, len(batch) / 2, len(batch) - 1} {
		seeds = append(seeds, batch[:n])
	}
	for _, s := range seeds {
		f.Add(s)
	}
	const limit = 16
	fast, slow := newDecoder(limit), newDecoder(limit)
	slow.slow = true
	st := fakestore.New()
	s, err := New(st, Config{MaxBatchEntries: limit}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := s.newHandler()
	f.Fuzz(func(t *testing.T, in []byte) {
		var r1, r2 request
		e1 := fast.decode(in, &r1)
		e2 := slow.decode(in, &r2)
		if fmt.Sprint(e1) != fmt.Sprint(e2) {
			t.Fatalf("fast path error %v, general path error %v", e1, e2)
		}
		if e1 != nil {
			if !slices.Contains([]int{400, 413, 422, 426}, e1.code) {
				t.Fatalf("decode error code %d", e1.code)
			}
		} else {
			if r1.op == opUnknown || r1.op == opDelete {
				t.Fatalf("decoded op %v", r1.op)
			}
			if !requestsEqual(&r1, &r2) {
				t.Fatalf("fast path %+v, general path %+v", r1, r2)
			}
			if err := checkValid(&r1, limit); err != nil {
				t.Fatal(err)
			}
		}

		out := h.handle(in, false)
		var rd wire.Reader
		rd.Reset(out.reply)
		n, err := rd.MapHeader()
		if err != nil {
			t.Fatalf("reply is not a map: %v", err)
		}
		fields := map[string]bool{}
		for range n {
			name, err := rd.StrBytes()
			if err != nil {
				t.Fatalf("reply key: %v", err)
			}
			fields[string(name)] = true
			if string(name) == "error_code" {
				code, err := rd.Uint()
				if err != nil || !slices.Contains([]uint64{400, 413, 422, 426, 500, 503}, code) || int(code) != out.code {
					t.Fatalf("error_code %d (%v), outcome code %d", code, err, out.code)
				}
				continue
			}
			if err := rd.Skip(); err != nil {
				t.Fatalf("reply value: %v", err)
			}
		}
		if rd.Remaining() != 0 || !fields["rolling_version"] || fields["error_code"] != fields["error_msg"] ||
			fields["error_code"] == (out.code == codeOK) {
			t.Fatalf("reply fields %v for outcome %d", fields, out.code)
		}
	})
}

func requestsEqual(a, b *request) bool {
	return a.version == b.version && a.op == b.op && string(a.id) == string(b.id) && a.hasID == b.hasID &&
		a.key == b.key && a.value == b.value && slices.Equal(a.pairs, b.pairs) && slices.Equal(a.dels, b.dels)
}

// checkValid states what a successful decode guarantees to the handler.
func checkValid(r *request, limit int) error {
	if r.version != 1 && r.version != 2 {
		return fmt.Errorf("version %d", r.version)
	}
	switch r.op {
	case opInsert, opDeleteValue:
		if r.key.IsZero() || r.value.IsZero() {
			return errors.New("zero key or value accepted")
		}
	case opGet, opDeleteKey:
		if r.key.IsZero() {
			return errors.New("zero key accepted")
		}
	case opBatchInsert:
		if len(r.pairs) > limit {
			return fmt.Errorf("%d entries over limit", len(r.pairs))
		}
		for _, p := range r.pairs {
			if p.Key.IsZero() || p.Value.IsZero() {
				return errors.New("zero pair accepted")
			}
		}
	case opBatchDelete:
		if len(r.dels) > limit {
			return fmt.Errorf("%d entries over limit", len(r.dels))
		}
		for _, d := range r.dels {
			if d.Key.IsZero() {
				return errors.New("zero key accepted")
			}
		}
	}
	return nil
}
