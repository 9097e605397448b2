// Package wiretest builds msgpack test inputs deterministically: maps keep
// the order they are written in (a Go map would not, and shamaton encodes Go
// maps in iteration order), and raw or deliberately malformed bytes can be
// embedded anywhere. Tests only.
package wiretest

import (
	"fmt"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
)

// Map is an ordered msgpack map: alternating string keys and values.
type Map []any

// Raw is embedded as is.
type Raw []byte

// E builds the [high, low] array of an identifier.
func E(high, low uint64) []uint64 { return []uint64{high, low} }

// Encode encodes v; see Append for the supported types.
func Encode(v any) []byte { return Append(nil, v) }

// Append appends v: nil, bool, int, int64, uint64, float64, string, []byte
// (bin), Raw, Map, []any, []uint64, cidstore.E ([high, low]),
// []cidstore.Pair (entries). It panics on anything else: a test bug.
func Append(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return wire.AppendNil(b)
	case bool:
		return wire.AppendBool(b, v)
	case int:
		return wire.AppendInt(b, int64(v))
	case int64:
		return wire.AppendInt(b, v)
	case uint64:
		return wire.AppendUint(b, v)
	case float64:
		return wire.AppendFloat(b, v)
	case string:
		return wire.AppendStr(b, v)
	case []byte:
		return wire.AppendBin(b, v)
	case Raw:
		return append(b, v...)
	case cidstore.E:
		return wire.AppendE(b, v.High, v.Low)
	case []uint64:
		b = wire.AppendArrayHeader(b, len(v))
		for _, x := range v {
			b = wire.AppendUint(b, x)
		}
		return b
	case []any:
		b = wire.AppendArrayHeader(b, len(v))
		for _, x := range v {
			b = Append(b, x)
		}
		return b
	case []cidstore.Pair:
		b = wire.AppendArrayHeader(b, len(v))
		for _, p := range v {
			b = Append(b, Map{"key", p.Key, "value", p.Value})
		}
		return b
	case Map:
		if len(v)%2 != 0 {
			panic("wiretest: odd Map")
		}
		b = wire.AppendMapHeader(b, len(v)/2)
		for i := 0; i < len(v); i += 2 {
			b = Append(b, v[i])
			b = Append(b, v[i+1])
		}
		return b
	}
	panic(fmt.Sprintf("wiretest: unsupported %T", v))
}

// Pairs returns n distinct non-zero pairs derived from seed: key i+1 of
// seed, value with a high word above 2^63 to exercise the full range.
func Pairs(seed uint64, n int) []cidstore.Pair {
	out := make([]cidstore.Pair, n)
	for i := range out {
		out[i] = cidstore.Pair{
			Key:   cidstore.E{High: seed, Low: uint64(i) + 1},
			Value: cidstore.E{High: 1<<63 | seed, Low: uint64(i)*2654435761 + 7},
		}
	}
	return out
}
