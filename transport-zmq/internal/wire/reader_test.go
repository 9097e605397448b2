package wire_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
	"github.com/shamaton/msgpack/v2"
)

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUint(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint64
		err  error
	}{
		{"fixint", []byte{0x7f}, 127, nil},
		{"uint8", []byte{0xcc, 0xff}, 255, nil},
		{"uint16", []byte{0xcd, 0x01, 0x00}, 256, nil},
		{"uint32", []byte{0xce, 0, 1, 0, 0}, 65536, nil},
		{"uint64 max", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, math.MaxUint64, nil},
		{"int8 positive", []byte{0xd0, 0x05}, 5, nil},
		{"int64 positive", []byte{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, math.MaxInt64, nil},
		{"negative fixint", []byte{0xff}, 0, wire.ErrNegative},
		{"int8 negative", []byte{0xd0, 0x80}, 0, wire.ErrNegative},
		{"int16 negative", []byte{0xd1, 0xff, 0xfe}, 0, wire.ErrNegative},
		{"int32 negative", []byte{0xd2, 0x80, 0, 0, 0}, 0, wire.ErrNegative},
		{"int64 negative", []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0, wire.ErrNegative},
		{"truncated uint64", []byte{0xcf, 0x01}, 0, wire.ErrTruncated},
		{"empty", nil, 0, wire.ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wire.NewReader(tc.in).Uint()
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Uint(% x) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	for _, in := range [][]byte{{0xca, 0, 0, 0, 0}, {0xa1, 'x'}, {0xc0}, {0x90}} {
		var te *wire.TypeError
		if _, err := wire.NewReader(in).Uint(); !errors.As(err, &te) {
			t.Errorf("Uint(% x) error %v, want *TypeError", in, err)
		}
	}
}

func TestIntFloatBool(t *testing.T) {
	for _, v := range []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 32767, -32769, math.MaxInt32 + 1, math.MinInt64, math.MaxInt64} {
		got, err := wire.NewReader(wire.AppendInt(nil, v)).Int()
		if got != v || err != nil {
			t.Errorf("Int(AppendInt(%d)) = %d, %v", v, got, err)
		}
	}
	if _, err := wire.NewReader(wire.AppendUint(nil, math.MaxUint64)).Int(); !errors.Is(err, wire.ErrRange) {
		t.Errorf("Int(MaxUint64) error %v, want ErrRange", err)
	}
	for _, in := range [][]byte{mustMarshal(t, 1.5), mustMarshal(t, float32(1.5)), {0x01}} {
		want := 1.5
		if in[0] == 0x01 {
			want = 1
		}
		if got, err := wire.NewReader(in).Float(); got != want || err != nil {
			t.Errorf("Float(% x) = %v, %v", in, got, err)
		}
	}
	if got, err := wire.NewReader([]byte{0xc3}).Bool(); !got || err != nil {
		t.Errorf("Bool = %v, %v", got, err)
	}
}

func TestStrBinHeaders(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65536} {
		s := bytes.Repeat([]byte{'a'}, n)
		got, err := wire.NewReader(mustMarshal(t, string(s))).StrBytes()
		if !bytes.Equal(got, s) || err != nil {
			t.Errorf("StrBytes(len %d) = len %d, %v", n, len(got), err)
		}
		got, err = wire.NewReader(wire.AppendBin(nil, s)).BinBytes()
		if !bytes.Equal(got, s) || err != nil {
			t.Errorf("BinBytes(len %d) = len %d, %v", n, len(got), err)
		}
		r := wire.NewReader(wire.AppendArrayHeader(nil, n))
		if _, err := r.ArrayHeader(); n > 0 && !errors.Is(err, wire.ErrTruncated) {
			t.Errorf("ArrayHeader(%d) with no elements: %v, want ErrTruncated", n, err)
		}
	}
	// A header that claims more than the input holds never allocates.
	for _, in := range [][]byte{{0xdb, 0xff, 0xff, 0xff, 0xff}, {0xdd, 0x7f, 0xff, 0xff, 0xff}, {0xdf, 0, 0, 0, 1, 0x01}, {0x81, 0x01}} {
		r := wire.NewReader(in)
		var err error
		switch r.Kind() {
		case wire.KindStr:
			_, err = r.StrBytes()
		case wire.KindArray:
			_, err = r.ArrayHeader()
		default:
			_, err = r.MapHeader()
		}
		if !errors.Is(err, wire.ErrTruncated) || r.Offset() != 0 {
			t.Errorf("% x: %v at offset %d, want ErrTruncated at 0", in, err, r.Offset())
		}
	}
}

func TestSkip(t *testing.T) {
	complexValue := mustMarshal(t, map[string]any{
		"a": []any{1, -1, 1.5, "str", []byte{1, 2}, nil, true, map[string]any{"x": []any{}}},
		"b": uint64(math.MaxUint64), "c": int64(math.MinInt64), "d": float32(2),
	})
	ext := []byte{0xd4, 1, 0, 0xd5, 1, 0, 0, 0xd6, 1, 0, 0, 0, 0, 0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0,
		0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc7, 1, 1, 0, 0xc8, 0, 1, 1, 0, 0xc9, 0, 0, 0, 1, 1, 0}
	for _, in := range [][]byte{complexValue, append([]byte{0x98}, ext...)} {
		r := wire.NewReader(append(in, 0x2a))
		if err := r.Skip(); err != nil || r.Remaining() != 1 {
			t.Errorf("Skip(% x): %v, %d remaining", in, err, r.Remaining())
		}
		// Every truncation is ErrTruncated, leaves the cursor alone and
		// does not panic.
		for n := range len(in) {
			r := wire.NewReader(in[:n])
			if err := r.Skip(); !errors.Is(err, wire.ErrTruncated) || r.Offset() != 0 {
				t.Fatalf("Skip(% x) = %v at %d, want ErrTruncated at 0", in[:n], err, r.Offset())
			}
		}
	}
	// Nesting a million deep costs no stack.
	deep := append(bytes.Repeat([]byte{0x91}, 1<<20), 0x01)
	if err := wire.NewReader(deep).Skip(); err != nil {
		t.Errorf("Skip(deep) = %v", err)
	}
	if err := wire.NewReader([]byte{0xc1}).Skip(); err == nil {
		t.Error("Skip(0xc1) succeeded")
	}
}

// TestAppendRoundTrip checks the writer against shamaton's decoder.
func TestAppendRoundTrip(t *testing.T) {
	var b []byte
	b = wire.AppendMapHeader(b, 7)
	b = wire.AppendStr(b, "u")
	b = wire.AppendUint(b, math.MaxUint64)
	b = wire.AppendStr(b, "i")
	b = wire.AppendInt(b, math.MinInt64)
	b = wire.AppendStr(b, "f")
	b = wire.AppendFloat(b, 0.25)
	b = wire.AppendStr(b, "e")
	b = wire.AppendE(b, 1<<63, 5)
	b = wire.AppendStr(b, "n")
	b = wire.AppendNil(b)
	b = wire.AppendStr(b, "s")
	b = wire.AppendStrBytes(b, bytes.Repeat([]byte{'z'}, 300))
	b = wire.AppendStr(b, "a")
	b = wire.AppendArrayHeader(b, 20)
	for i := range 20 {
		b = wire.AppendBool(b, i%2 == 0)
	}
	var got struct {
		U uint64   `msgpack:"u"`
		I int64    `msgpack:"i"`
		F float64  `msgpack:"f"`
		E []uint64 `msgpack:"e"`
		N any      `msgpack:"n"`
		S string   `msgpack:"s"`
		A []bool   `msgpack:"a"`
	}
	if err := msgpack.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.U != math.MaxUint64 || got.I != math.MinInt64 || got.F != 0.25 || len(got.E) != 2 || got.E[0] != 1<<63 ||
		got.N != nil || len(got.S) != 300 || len(got.A) != 20 || !got.A[0] || got.A[1] {
		t.Errorf("round trip = %+v", got)
	}
}
