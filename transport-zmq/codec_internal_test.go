package zmqserver

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	wt "github.com/cidstore/cidstore/transport-zmq/internal/wiretest"
	"github.com/shamaton/msgpack/v2"
)

var (
	tk = cidstore.E{High: 1, Low: 2}
	tv = cidstore.E{High: 3, Low: 4}
)

func bin16(e cidstore.E) []byte { b := e.Bytes(); return b[:] }

// int64E encodes an E whose elements use the int64 format (0xd3).
func int64E(h, l int64) wt.Raw {
	b := []byte{0x92, 0xd3}
	b = binary.BigEndian.AppendUint64(b, uint64(h))
	b = append(b, 0xd3)
	return binary.BigEndian.AppendUint64(b, uint64(l))
}

func msg(kv ...any) []byte { return wt.Encode(wt.Map(kv)) }

func TestDecode(t *testing.T) {
	const limit = 4
	top := cidstore.E{High: math.MaxUint64, Low: math.MaxUint64}
	tests := []struct {
		name    string
		in      []byte
		code    int    // 0: success
		msg     string // substring of the error message
		op      op
		version int
		id      string
		check   func(t *testing.T, r *request)
	}{
		// Successes.
		{name: "insert", in: msg("op_code", "INSERT", "key", tk, "value", tv), op: opInsert,
			check: func(t *testing.T, r *request) { wantKV(t, r, tk, tv) }},
		{name: "insert v2 with id", in: msg("rolling_version", 2, "op_code", "INSERT", "request_id", "r1", "key", tk, "value", tv),
			op: opInsert, version: 2, id: "r1"},
		{name: "field order free", in: msg("value", tv, "key", tk, "request_id", "r", "op_code", "INSERT", "rolling_version", 1),
			op: opInsert, id: "r", check: func(t *testing.T, r *request) { wantKV(t, r, tk, tv) }},
		{name: "bin E", in: msg("op_code", "INSERT", "key", bin16(tk), "value", bin16(top)), op: opInsert,
			check: func(t *testing.T, r *request) { wantKV(t, r, tk, top) }},
		{name: "full uint64 range", in: msg("op_code", "INSERT", "key", top, "value", cidstore.E{High: 1 << 63}), op: opInsert,
			check: func(t *testing.T, r *request) { wantKV(t, r, top, cidstore.E{High: 1 << 63}) }},
		{name: "int64-encoded non-negative E", in: msg("op_code", "INSERT", "key", int64E(5, 1), "value", tv), op: opInsert,
			check: func(t *testing.T, r *request) { wantKV(t, r, cidstore.E{High: 5, Low: 1}, tv) }},
		{name: "unknown fields ignored", in: msg("op_code", "GET", "extra", wt.Map{"a", []any{1, 2.5, nil}}, "key", tk), op: opGet},
		{name: "nil version and id", in: msg("rolling_version", nil, "request_id", nil, "op_code", "GET", "key", tk), op: opGet},
		{name: "delete key", in: msg("op_code", "DELETE_KEY", "key", tk), op: opDeleteKey},
		{name: "delete value", in: msg("op_code", "DELETE_VALUE_FROM_KEY", "key", tk, "value", tv), op: opDeleteValue},
		{name: "DELETE alias without value", in: msg("op_code", "DELETE", "key", tk), op: opDeleteKey},
		{name: "DELETE alias with value", in: msg("op_code", "DELETE", "key", tk, "value", tv), op: opDeleteValue,
			check: func(t *testing.T, r *request) { wantKV(t, r, tk, tv) }},
		{name: "DELETE alias with nil value", in: msg("op_code", "DELETE", "key", tk, "value", nil), op: opDeleteKey},
		{name: "GET", in: msg("op_code", "GET", "key", tk), op: opGet},
		{name: "LOOKUP alias", in: msg("op_code", "LOOKUP", "key", tk), op: opGet},
		{name: "METRICS", in: msg("op_code", "METRICS"), op: opMetrics},
		{name: "batch insert", in: msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(9, 3)), op: opBatchInsert,
			check: func(t *testing.T, r *request) {
				if got := r.pairs; len(got) != 3 || got[2] != wt.Pairs(9, 3)[2] {
					t.Errorf("pairs = %v", got)
				}
			}},
		{name: "batch insert at limit", in: msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(9, limit)), op: opBatchInsert},
		{name: "batch insert empty", in: msg("op_code", "BATCH_INSERT", "entries", []any{}), op: opBatchInsert},
		{name: "batch delete", op: opBatchDelete,
			in: msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"key", tk}, wt.Map{"value", tv, "key", tk, "x", 1}, wt.Map{"key", tv, "value", nil}}),
			check: func(t *testing.T, r *request) {
				want := []cidstore.Deletion{{Key: tk}, {Key: tk, Value: tv}, {Key: tv}}
				if len(r.dels) != 3 || r.dels[0] != want[0] || r.dels[1] != want[1] || r.dels[2] != want[2] {
					t.Errorf("dels = %v, want %v", r.dels, want)
				}
			}},
		{name: "entries before op_code", in: msg("entries", wt.Pairs(1, 2), "op_code", "BATCH_INSERT"), op: opBatchInsert},

		// 400: framing and structure.
		{name: "empty frame", in: nil, code: 400, msg: "empty frame"},
		{name: "reserved byte", in: []byte{0xc1}, code: 400, msg: "not a msgpack map"},
		{name: "array", in: wt.Encode([]any{1, 2}), code: 400, msg: "not a msgpack map (got array)"},
		{name: "str", in: wt.Encode("INSERT"), code: 400, msg: "not a msgpack map"},
		{name: "truncated map header", in: []byte{0xde, 0x00}, code: 400, msg: "truncated"},
		{name: "map claims more pairs", in: []byte{0x83, 0xa1, 'a', 0x01}, code: 400, msg: "truncated"},
		{name: "truncated in value", in: msg("op_code", "GET", "key", tk)[:12], code: 400, msg: "truncated"},
		{name: "non-str map key", in: wt.Encode(wt.Map{1, 2}), code: 400, msg: "map key 0"},
		{name: "duplicate field", in: msg("op_code", "GET", "key", tk, "key", tv), code: 400, msg: "duplicate"},
		{name: "trailing bytes", in: append(msg("op_code", "METRICS"), 0x01), code: 400, msg: "after the request map"},
		{name: "request_id not str", in: msg("request_id", 7, "op_code", "METRICS"), code: 400, msg: "request_id"},
		{name: "version not int", in: msg("rolling_version", "1", "op_code", "METRICS"), code: 400, msg: "rolling_version"},
		{name: "missing op_code", in: msg("key", tk), code: 400, msg: "missing op_code"},
		{name: "op_code not str", in: msg("op_code", 1), code: 400, msg: "op_code must be a str"},
		{name: "op_code case-sensitive", in: msg("op_code", "insert", "key", tk, "value", tv), code: 400, msg: "unknown op_code"},
		{name: "unknown op_code", in: msg("op_code", strings.Repeat("X", 500)), code: 400, msg: "..."},
		{name: "missing key", in: msg("op_code", "GET"), code: 400, msg: "missing key"},
		{name: "missing value", in: msg("op_code", "INSERT", "key", tk), code: 400, msg: "missing value"},
		{name: "nil key", in: msg("op_code", "GET", "key", nil), code: 400, msg: "missing key"},
		{name: "E one element", in: msg("op_code", "GET", "key", []uint64{1}), code: 400, msg: "1 elements"},
		{name: "E three elements", in: msg("op_code", "GET", "key", []uint64{1, 2, 3}), code: 400, msg: "3 elements"},
		{name: "E float element", in: msg("op_code", "GET", "key", []any{1.0, 2}), code: 400, msg: "unsigned integers"},
		{name: "E str", in: msg("op_code", "GET", "key", "0102"), code: 400, msg: "got str"},
		{name: "E bin 15", in: msg("op_code", "GET", "key", make([]byte, 15)), code: 400, msg: "16 bytes, got 15"},
		{name: "E map", in: msg("op_code", "GET", "key", wt.Map{"high", 1}), code: 400, msg: "got map"},
		{name: "mistyped value with DELETE", in: msg("op_code", "DELETE", "key", tk, "value", "x"), code: 400, msg: "value"},
		{name: "missing entries", in: msg("op_code", "BATCH_INSERT"), code: 400, msg: "missing entries"},
		{name: "nil entries", in: msg("op_code", "BATCH_DELETE", "entries", nil), code: 400, msg: "missing entries"},
		{name: "entries not array", in: msg("op_code", "BATCH_INSERT", "entries", wt.Map{"key", tk}), code: 400, msg: "array"},
		{name: "entry not map", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "value", tv}, tk}), code: 400, msg: "entries[1]: not"},
		{name: "entry missing key", in: msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"value", tv}}), code: 400, msg: "entries[0]: missing key"},
		{name: "entry missing value", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "value", tv}, wt.Map{"key", tk}}), code: 400, msg: "entries[1]: missing value"},
		{name: "entry duplicate key", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "key", tk}}), code: 400, msg: "entries[0]: duplicate"},
		{name: "entry mistyped", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "value", tv}, wt.Map{"key", tk, "value", 3.5}}), code: 400, msg: "entries[1]: value"},
		{name: "entries claim more than bytes", in: msg("op_code", "BATCH_INSERT", "entries", wt.Raw{0xdd, 0, 0, 0, 3, 0x80}), code: 400, msg: "truncated"},

		// 413.
		{name: "batch over limit", in: msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(9, limit+1)), code: 413, msg: "5 entries exceeds the limit of 4"},
		{name: "batch over limit, header only", in: msg("op_code", "BATCH_DELETE", "entries", wt.Raw{0xdc, 0xff, 0xff}), code: 400, msg: "truncated"},

		// 422.
		{name: "zero key", in: msg("op_code", "INSERT", "key", cidstore.E{}, "value", tv), code: 422, msg: "zero key"},
		{name: "zero value", in: msg("op_code", "INSERT", "key", tk, "value", cidstore.E{}), code: 422, msg: "zero value"},
		{name: "zero key GET", in: msg("op_code", "GET", "key", cidstore.E{}), code: 422, msg: "zero key"},
		{name: "zero bin key", in: msg("op_code", "DELETE_KEY", "key", make([]byte, 16)), code: 422},
		{name: "negative fixint", in: msg("op_code", "GET", "key", []any{-1, 1}), code: 422, msg: "out of range"},
		{name: "negative int64", in: msg("op_code", "GET", "key", int64E(1, math.MinInt64)), code: 422, msg: "out of range"},
		{name: "entry zero key", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk, "value", tv}, wt.Map{"key", cidstore.E{}, "value", tv}}), code: 422, msg: "entries[1]: zero key"},
		{name: "entry zero value", in: msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"key", tk, "value", cidstore.E{}}}), code: 422, msg: "entries[0]: zero value"},
		{name: "entry negative", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", []any{1, -5}, "value", tv}}), code: 422, msg: "entries[0]: key: out of range"},

		// 426.
		{name: "version 3", in: msg("rolling_version", 3, "op_code", "METRICS"), code: 426, msg: "3"},
		{name: "version 0", in: msg("rolling_version", 0, "op_code", "METRICS"), code: 426},
		{name: "version -1", in: msg("rolling_version", -1, "op_code", "METRICS"), code: 426},
		{name: "version huge", in: msg("rolling_version", uint64(math.MaxUint64), "op_code", "METRICS"), code: 426},

		// Precedence and echo.
		{name: "426 before missing op_code", in: msg("request_id", "p1", "rolling_version", 9), code: 426, id: "p1"},
		{name: "id after bad key still echoed", in: msg("op_code", "GET", "key", "bad", "request_id", "p2"), code: 400, id: "p2", msg: "key"},
		{name: "id after truncation not echoed", in: msg("op_code", "GET", "key", tk, "request_id", "p3")[:10], code: 400},
		{name: "bad id beats version", in: msg("rolling_version", 9, "request_id", 1), code: 400, msg: "request_id"},
		{name: "first bad entry wins", in: msg("op_code", "BATCH_INSERT", "entries", []any{wt.Map{"key", tk}, wt.Map{"key", cidstore.E{}, "value", tv}}), code: 400, msg: "entries[0]: missing value"},
		{name: "key error before value error", in: msg("op_code", "INSERT", "value", cidstore.E{}, "key", "x"), code: 400, msg: "key"},
		{name: "version echoed on error", in: msg("rolling_version", 2, "op_code", "GET", "key", cidstore.E{}), code: 422, version: 2},
	}
	d := newDecoder(limit)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			werr := d.decode(tc.in, &r)
			if tc.code == 0 {
				if werr != nil {
					t.Fatalf("error %v, want success", werr)
				}
				if r.op != tc.op {
					t.Errorf("op = %v, want %v", r.op, tc.op)
				}
			} else {
				if werr == nil {
					t.Fatalf("success (op %v), want %d", r.op, tc.code)
				}
				if werr.code != tc.code || !strings.Contains(werr.msg, tc.msg) {
					t.Errorf("error %d %q, want %d containing %q", werr.code, werr.msg, tc.code, tc.msg)
				}
			}
			if want := max(tc.version, 1); r.version != want {
				t.Errorf("version = %d, want %d", r.version, want)
			}
			if string(r.id) != tc.id || r.hasID != (tc.id != "") {
				t.Errorf("id = %q (%v), want %q", r.id, r.hasID, tc.id)
			}
			if tc.check != nil {
				tc.check(t, &r)
			}
		})
	}
}

func wantKV(t *testing.T, r *request, k, v cidstore.E) {
	t.Helper()
	if r.key != k || r.value != v {
		t.Errorf("key, value = %v, %v; want %v, %v", r.key, r.value, k, v)
	}
}

// decodeReply decodes a reply with shamaton, an implementation independent
// of ours (safe here: our encoder's output is never truncated).
func decodeReply(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply is not a msgpack map: %v (% x)", err, b)
	}
	return m
}

func TestReplyEncoding(t *testing.T) {
	req := &request{version: 2, op: opGet, id: []byte("abc"), hasID: true}
	tests := []struct {
		name string
		b    []byte
		want string // fmt of the decoded map
	}{
		{"ok", appendOK(nil, &request{version: 1, op: opInsert}), "map[ok:true rolling_version:1]"},
		{"count", appendOK(nil, &request{version: 1, op: opBatchInsert, pairs: make([]cidstore.Pair, 3)}), "map[count:3 ok:true rolling_version:1]"},
		{"results with id", appendResults(nil, req, []cidstore.E{{High: 1, Low: math.MaxUint64}}),
			"map[request_id:abc results:[[1 18446744073709551615]] rolling_version:2]"},
		{"nil results are []", appendResults(nil, req, nil), "map[request_id:abc results:[] rolling_version:2]"},
		{"error", appendError(nil, 1, nil, false, errorf(422, "zero key")), "map[error_code:422 error_msg:zero key rolling_version:1]"},
		{"metrics", appendMetrics(nil, &request{version: 1}, metricsReply{0.5, 10, 7, 0.25, 0.125, 1}),
			"map[buffer_occupancy:7 error_rate:1 flush_duration:0.25 latency_p99:0.5 lock_contention_ratio:0.125 rolling_version:1 throughput_ops:10]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := decodeReply(t, tc.b)
			if got := fmtMap(m); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	// results must be an array, never nil, for Python clients.
	if m := decodeReply(t, appendResults(nil, req, nil)); m["results"] == nil {
		t.Error("results decoded as nil")
	}
}

func fmtMap(m map[string]any) string { return fmt.Sprint(m) }

func TestPeekHeader(t *testing.T) {
	v, id, hasID, o := peekHeader(msg("entries", wt.Pairs(1, 50), "rolling_version", 2, "op_code", "BATCH_INSERT", "request_id", "q"))
	if v != 2 || string(id) != "q" || !hasID || o != opBatchInsert {
		t.Errorf("peekHeader = %d %q %v %v", v, id, hasID, o)
	}
	v, _, hasID, o = peekHeader([]byte{0x81, 0xa1})
	if v != 1 || hasID || o != opUnknown {
		t.Errorf("peekHeader(truncated) = %d %v %v", v, hasID, o)
	}
}

func BenchmarkDecodeBatchInsert1000(b *testing.B) {
	for _, tc := range []struct {
		name string
		enc  func(cidstore.E) any
	}{
		{"array", func(e cidstore.E) any { return e }},
		{"bin16", func(e cidstore.E) any { return bin16(e) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			entries := make([]any, 1000)
			for i, p := range wt.Pairs(0xfeedface12345678, 1000) {
				entries[i] = wt.Map{"key", tc.enc(p.Key), "value", tc.enc(p.Value)}
			}
			in := msg("rolling_version", 1, "op_code", "BATCH_INSERT", "request_id", "bench", "entries", entries)
			d := newDecoder(DefaultMaxBatchEntries)
			var r request
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if werr := d.decode(in, &r); werr != nil {
					b.Fatal(werr)
				}
			}
		})
	}
}
