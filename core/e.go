package cidstore

import (
	"crypto/sha3"
	"encoding/binary"
	"fmt"
)

// E is a 128-bit identifier, used for both keys and values. The zero E is
// reserved: it marks empty slots and spill mode, and is rejected as a key or
// value with ErrInvalid.
type E struct{ High, Low uint64 }

// IsZero reports whether e is the reserved zero identifier.
func (e E) IsZero() bool { return e.High == 0 && e.Low == 0 }

// Compare orders identifiers by (High, Low): -1, 0 or +1.
func (e E) Compare(o E) int {
	switch {
	case e.High < o.High:
		return -1
	case e.High > o.High:
		return 1
	case e.Low < o.Low:
		return -1
	case e.Low > o.Low:
		return 1
	}
	return 0
}

// Less reports whether e sorts before o by (High, Low).
func (e E) Less(o E) bool {
	return e.High < o.High || (e.High == o.High && e.Low < o.Low)
}

// String formats e as 32 lowercase hex digits, High first.
func (e E) String() string { return fmt.Sprintf("%016x%016x", e.High, e.Low) }

// UUID formats e in the 8-4-4-4-12 UUID form.
func (e E) UUID() string {
	s := e.String()
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// Bytes returns e as 16 big-endian bytes (High then Low), the wire form of a
// 16-byte E.
func (e E) Bytes() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], e.High)
	binary.BigEndian.PutUint64(b[8:16], e.Low)
	return b
}

// EFromBytes16 decodes 16 big-endian bytes (High then Low).
func EFromBytes16(b []byte) (E, error) {
	if len(b) != 16 {
		return E{}, fmt.Errorf("%w: E needs 16 bytes, got %d", ErrInvalid, len(b))
	}
	return E{High: binary.BigEndian.Uint64(b[0:8]), Low: binary.BigEndian.Uint64(b[8:16])}, nil
}

// Derive maps arbitrary bytes to an E: the first 128 bits of SHA3-256(data),
// big-endian. The mapping is stable across versions. In the astronomically
// unlikely case that the digest starts with 16 zero bytes, the low word is set
// to 1 so that the result is never the reserved zero E.
func Derive(data []byte) E {
	sum := sha3.Sum256(data)
	e := E{High: binary.BigEndian.Uint64(sum[0:8]), Low: binary.BigEndian.Uint64(sum[8:16])}
	if e.IsZero() {
		e.Low = 1
	}
	return e
}

// DeriveString is Derive of the UTF-8 bytes of s.
func DeriveString(s string) E { return Derive([]byte(s)) }

// ParseE parses the text forms a person types: 32 hex digits
// ("0123456789abcdef0123456789abcdef", either case, optional "0x" prefix) or a
// UUID ("01234567-89ab-cdef-0123-456789abcdef"). The zero E is refused. Every
// failure wraps ErrInvalid.
func ParseE(s string) (E, error) {
	raw := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return E{}, fmt.Errorf("%w: %q is not 32 hex digits or a UUID", ErrInvalid, raw)
		}
		s = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	} else if len(s) == 34 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	if len(s) != 32 {
		return E{}, fmt.Errorf("%w: %q is not 32 hex digits or a UUID", ErrInvalid, raw)
	}
	var words [2]uint64
	for i := 0; i < 32; i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return E{}, fmt.Errorf("%w: %q has a non-hex character at %d", ErrInvalid, raw, i)
		}
		words[i/16] = words[i/16]<<4 | uint64(d)
	}
	e := E{High: words[0], Low: words[1]}
	if e.IsZero() {
		return E{}, fmt.Errorf("%w: zero identifier is reserved", ErrInvalid)
	}
	return e, nil
}

// Pair is one (key, value) association.
type Pair struct{ Key, Value E }
