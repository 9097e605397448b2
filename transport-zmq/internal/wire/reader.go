package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/shamaton/msgpack/v2/def"
)

// ErrTruncated is returned when the input ends inside a value, or when a
// length header claims more than the remaining bytes can hold.
var ErrTruncated = errors.New("msgpack: truncated input")

// Kind is the broad msgpack family of a value, as reported by Reader.Kind.
type Kind uint8

// Value kinds.
const (
	KindInvalid Kind = iota // a reserved byte (0xc1) or end of input
	KindNil
	KindBool
	KindUint  // positive fixint or uint8..uint64
	KindInt   // negative fixint or int8..int64 (the value may still be >= 0)
	KindFloat // float32 or float64
	KindStr
	KindBin
	KindArray
	KindMap
	KindExt
)

var kindNames = [...]string{"invalid", "nil", "bool", "uint", "int", "float", "str", "bin", "array", "map", "ext"}

// String returns the lowercase name of k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// TypeError reports a value of an unexpected kind.
type TypeError struct {
	Want string
	Got  Kind
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("msgpack: want %s, got %s", e.Want, e.Got)
}

// ErrNegative is returned by Uint for an integer below zero.
var ErrNegative = errors.New("msgpack: negative integer")

// Reader is a bounds-checked cursor over one msgpack buffer. It never
// panics and never retains more than the buffer it was given. The zero
// Reader is empty; use Reset.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from the start.
func (r *Reader) Reset(b []byte) { r.b, r.off = b, 0 }

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int { return r.off }

// Seek moves the cursor to an offset previously returned by Offset.
func (r *Reader) Seek(off int) { r.off = off }

// Remaining is the number of bytes not yet consumed.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Peek returns up to n of the next bytes without consuming them; fewer at
// the end of the input. The slice aliases the buffer.
func (r *Reader) Peek(n int) []byte {
	end := r.off + n
	if end > len(r.b) || end < r.off {
		end = len(r.b)
	}
	return r.b[r.off:end]
}

// Kind reports the kind of the next value without consuming it.
func (r *Reader) Kind() Kind {
	if r.off >= len(r.b) {
		return KindInvalid
	}
	return kindOf(r.b[r.off])
}

func kindOf(c byte) Kind {
	switch {
	case c <= def.PositiveFixIntMax:
		return KindUint
	case c >= 0xe0:
		return KindInt
	case c&0xf0 == def.FixMap:
		return KindMap
	case c&0xf0 == def.FixArray:
		return KindArray
	case c&0xe0 == def.FixStr:
		return KindStr
	}
	switch c {
	case def.Nil:
		return KindNil
	case def.False, def.True:
		return KindBool
	case def.Uint8, def.Uint16, def.Uint32, def.Uint64:
		return KindUint
	case def.Int8, def.Int16, def.Int32, def.Int64:
		return KindInt
	case def.Float32, def.Float64:
		return KindFloat
	case def.Str8, def.Str16, def.Str32:
		return KindStr
	case def.Bin8, def.Bin16, def.Bin32:
		return KindBin
	case def.Array16, def.Array32:
		return KindArray
	case def.Map16, def.Map32:
		return KindMap
	case def.Ext8, def.Ext16, def.Ext32, def.Fixext1, def.Fixext2, def.Fixext4, def.Fixext8, def.Fixext16:
		return KindExt
	}
	return KindInvalid
}

// need reports whether n more bytes are available.
func (r *Reader) need(n int) bool { return n >= 0 && n <= len(r.b)-r.off }

func (r *Reader) typeErr(want string) error {
	if r.off >= len(r.b) {
		return ErrTruncated
	}
	return &TypeError{Want: want, Got: r.Kind()}
}

// be reads an n-byte big-endian integer at the cursor; the caller has
// checked the length.
func (r *Reader) be(n int) uint64 {
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	default:
		return binary.BigEndian.Uint64(p)
	}
}

// length reads a container or byte-string length of n bytes following the
// tag and checks that at least per*length bytes remain.
func (r *Reader) length(n, per int) (int, error) {
	if !r.need(1 + n) {
		return 0, ErrTruncated
	}
	r.off++
	l := r.be(n)
	if l > uint64(math.MaxInt32) || int(l)*per > len(r.b)-r.off {
		r.off -= 1 + n
		return 0, ErrTruncated
	}
	return int(l), nil
}

// IsNil reports whether the next value is nil, and consumes it if so.
func (r *Reader) IsNil() bool {
	if r.off < len(r.b) && r.b[r.off] == def.Nil {
		r.off++
		return true
	}
	return false
}

// MapHeader reads a map header and returns the number of key/value pairs.
func (r *Reader) MapHeader() (int, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	switch {
	case c&0xf0 == def.FixMap:
		n := int(c & 0x0f)
		if 2*n > len(r.b)-r.off-1 {
			return 0, ErrTruncated
		}
		r.off++
		return n, nil
	case c == def.Map16:
		return r.length(2, 2)
	case c == def.Map32:
		return r.length(4, 2)
	}
	return 0, r.typeErr("map")
}

// ArrayHeader reads an array header and returns the number of elements.
func (r *Reader) ArrayHeader() (int, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	switch {
	case c&0xf0 == def.FixArray:
		n := int(c & 0x0f)
		if n > len(r.b)-r.off-1 {
			return 0, ErrTruncated
		}
		r.off++
		return n, nil
	case c == def.Array16:
		return r.length(2, 1)
	case c == def.Array32:
		return r.length(4, 1)
	}
	return 0, r.typeErr("array")
}

// StrBytes reads a str and returns its bytes, aliasing the input buffer.
func (r *Reader) StrBytes() ([]byte, error) {
	if r.off >= len(r.b) {
		return nil, ErrTruncated
	}
	c := r.b[r.off]
	var n int
	switch {
	case c&0xe0 == def.FixStr:
		n = int(c & 0x1f)
		if !r.need(1 + n) {
			return nil, ErrTruncated
		}
		r.off++
	case c == def.Str8:
		l, err := r.length(1, 1)
		if err != nil {
			return nil, err
		}
		n = l
	case c == def.Str16:
		l, err := r.length(2, 1)
		if err != nil {
			return nil, err
		}
		n = l
	case c == def.Str32:
		l, err := r.length(4, 1)
		if err != nil {
			return nil, err
		}
		n = l
	default:
		return nil, r.typeErr("str")
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s, nil
}

// BinBytes reads a bin and returns its bytes, aliasing the input buffer.
func (r *Reader) BinBytes() ([]byte, error) {
	if r.off >= len(r.b) {
		return nil, ErrTruncated
	}
	var n int
	var err error
	switch r.b[r.off] {
	case def.Bin8:
		n, err = r.length(1, 1)
	case def.Bin16:
		n, err = r.length(2, 1)
	case def.Bin32:
		n, err = r.length(4, 1)
	default:
		return nil, r.typeErr("bin")
	}
	if err != nil {
		return nil, err
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s, nil
}

// Uint reads a non-negative integer of any msgpack integer encoding. A
// negative integer is consumed and reported as ErrNegative; any other kind is
// a *TypeError and is not consumed.
func (r *Reader) Uint() (uint64, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	if c <= def.PositiveFixIntMax {
		r.off++
		return uint64(c), nil
	}
	if c >= 0xe0 {
		r.off++
		return 0, ErrNegative
	}
	var n int
	signed := false
	switch c {
	case def.Uint8:
		n = 1
	case def.Uint16:
		n = 2
	case def.Uint32:
		n = 4
	case def.Uint64:
		n = 8
	case def.Int8:
		n, signed = 1, true
	case def.Int16:
		n, signed = 2, true
	case def.Int32:
		n, signed = 4, true
	case def.Int64:
		n, signed = 8, true
	default:
		return 0, r.typeErr("integer")
	}
	if !r.need(1 + n) {
		return 0, ErrTruncated
	}
	r.off++
	v := r.be(n)
	if signed {
		// Sign-extend and reject negatives: encoders may use the int
		// family for non-negative values, which is fine.
		shift := 64 - 8*uint(n)
		if int64(v<<shift)>>shift < 0 {
			return 0, ErrNegative
		}
	}
	return v, nil
}

// Int reads an integer of any msgpack integer encoding as int64. A uint64
// above MaxInt64 is reported as ErrRange (consumed).
func (r *Reader) Int() (int64, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	if c >= 0xe0 {
		r.off++
		return int64(int8(c)), nil
	}
	switch c {
	case def.Int8, def.Int16, def.Int32, def.Int64:
		n := 1 << (c - def.Int8) // 1, 2, 4, 8
		if !r.need(1 + n) {
			return 0, ErrTruncated
		}
		r.off++
		v := r.be(n)
		shift := 64 - 8*uint(n)
		return int64(v<<shift) >> shift, nil
	}
	u, err := r.Uint()
	if err != nil {
		return 0, err
	}
	if u > math.MaxInt64 {
		return 0, ErrRange
	}
	return int64(u), nil
}

// ErrRange is returned by Int for a uint64 that does not fit an int64.
var ErrRange = errors.New("msgpack: integer out of range")

// Float reads a float32, a float64 or an integer as float64.
func (r *Reader) Float() (float64, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	switch r.b[r.off] {
	case def.Float32:
		if !r.need(5) {
			return 0, ErrTruncated
		}
		r.off++
		return float64(math.Float32frombits(uint32(r.be(4)))), nil
	case def.Float64:
		if !r.need(9) {
			return 0, ErrTruncated
		}
		r.off++
		return math.Float64frombits(r.be(8)), nil
	}
	switch r.Kind() {
	case KindUint:
		u, err := r.Uint()
		return float64(u), err
	case KindInt:
		i, err := r.Int()
		return float64(i), err
	}
	return 0, r.typeErr("float")
}

// Bool reads a bool.
func (r *Reader) Bool() (bool, error) {
	if r.off >= len(r.b) {
		return false, ErrTruncated
	}
	switch r.b[r.off] {
	case def.True:
		r.off++
		return true, nil
	case def.False:
		r.off++
		return false, nil
	}
	return false, r.typeErr("bool")
}

// Skip consumes one complete value of any kind, including nested arrays and
// maps. It is iterative: nesting depth costs no stack. On error the cursor
// is left where it was.
func (r *Reader) Skip() error {
	start := r.off
	for pending := 1; pending > 0; pending-- {
		more, err := r.skipOne()
		if err != nil {
			r.off = start
			return err
		}
		pending += more
	}
	return nil
}

// skipOne consumes one value's tag and scalar payload; for a container only
// its header, returning the number of values nested directly inside.
func (r *Reader) skipOne() (int, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	switch {
	case c <= def.PositiveFixIntMax || c >= 0xe0:
		r.off++
		return 0, nil
	case c&0xf0 == def.FixMap:
		r.off++
		return 2 * int(c&0x0f), nil
	case c&0xf0 == def.FixArray:
		r.off++
		return int(c & 0x0f), nil
	case c&0xe0 == def.FixStr:
		return 0, r.advance(1 + int(c&0x1f))
	}
	switch c {
	case def.Nil, def.False, def.True:
		return 0, r.advance(1)
	case def.Uint8, def.Int8:
		return 0, r.advance(2)
	case def.Uint16, def.Int16, def.Fixext1:
		return 0, r.advance(3)
	case def.Fixext2:
		return 0, r.advance(4)
	case def.Uint32, def.Int32, def.Float32:
		return 0, r.advance(5)
	case def.Fixext4:
		return 0, r.advance(6)
	case def.Uint64, def.Int64, def.Float64:
		return 0, r.advance(9)
	case def.Fixext8:
		return 0, r.advance(10)
	case def.Fixext16:
		return 0, r.advance(18)
	case def.Str8, def.Bin8, def.Ext8:
		return 0, r.skipBytes(1, c == def.Ext8)
	case def.Str16, def.Bin16, def.Ext16:
		return 0, r.skipBytes(2, c == def.Ext16)
	case def.Str32, def.Bin32, def.Ext32:
		return 0, r.skipBytes(4, c == def.Ext32)
	case def.Array16:
		return r.length(2, 1)
	case def.Array32:
		return r.length(4, 1)
	case def.Map16:
		n, err := r.length(2, 2)
		return 2 * n, err
	case def.Map32:
		n, err := r.length(4, 2)
		return 2 * n, err
	}
	return 0, &TypeError{Want: "msgpack value", Got: KindInvalid}
}

// skipBytes skips a str, bin or ext whose length header is hdr bytes; an ext
// has one more byte (its type) before the data.
func (r *Reader) skipBytes(hdr int, ext bool) error {
	n, err := r.length(hdr, 1)
	if err != nil {
		return err
	}
	if ext {
		n++
	}
	return r.advance(n)
}

func (r *Reader) advance(n int) error {
	if !r.need(n) {
		return ErrTruncated
	}
	r.off += n
	return nil
}
