package wire

import (
	"encoding/binary"
	"math"

	"github.com/shamaton/msgpack/v2/def"
)

// The Append functions append the most compact msgpack encoding of a value
// to b and return the extended buffer, like strconv.AppendInt.

// AppendMapHeader appends a map header for n key/value pairs.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, def.FixMap|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, def.Map16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, def.Map32), uint32(n))
}

// AppendArrayHeader appends an array header for n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, def.FixArray|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, def.Array16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, def.Array32), uint32(n))
}

// AppendStr appends s as a msgpack str.
func AppendStr(b []byte, s string) []byte {
	b = appendStrHeader(b, len(s))
	return append(b, s...)
}

// AppendStrBytes appends s as a msgpack str.
func AppendStrBytes(b []byte, s []byte) []byte {
	b = appendStrHeader(b, len(s))
	return append(b, s...)
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, def.FixStr|byte(n))
	case n <= math.MaxUint8:
		return append(b, def.Str8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, def.Str16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, def.Str32), uint32(n))
}

// AppendBin appends p as a msgpack bin.
func AppendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, def.Bin8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, def.Bin16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, def.Bin32), uint32(n))
	}
	return append(b, p...)
}

// AppendUint appends v in the smallest unsigned encoding.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= def.PositiveFixIntMax:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, def.Uint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, def.Uint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, def.Uint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, def.Uint64), v)
}

// AppendInt appends v in the smallest encoding (unsigned when v >= 0).
func AppendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return AppendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(int8(v)))
	case v >= math.MinInt8:
		return append(b, def.Int8, byte(int8(v)))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, def.Int16), uint16(int16(v)))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, def.Int32), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, def.Int64), uint64(v))
}

// AppendFloat appends v as a float64.
func AppendFloat(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, def.Float64), math.Float64bits(v))
}

// AppendBool appends v.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, def.True)
	}
	return append(b, def.False)
}

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, def.Nil) }

// AppendE appends a 128-bit identifier as the array [high, low].
func AppendE(b []byte, high, low uint64) []byte {
	b = append(b, def.FixArray|2)
	return AppendUint(AppendUint(b, high), low)
}
