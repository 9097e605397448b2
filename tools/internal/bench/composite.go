package bench

import "encoding/binary"

// Peers store a pair as one 32-byte key, key‖value, each E big-endian (High
// then Low), with an empty value. Byte order then equals (key, value) order,
// so a prefix scan over the 16-byte key yields the values ascending.
const (
	prefixLen    = 16
	compositeLen = 32
)

// putPrefix writes k's 16 bytes to b.
func putPrefix(b []byte, k E) {
	binary.BigEndian.PutUint64(b[0:8], k.High)
	binary.BigEndian.PutUint64(b[8:16], k.Low)
}

// putComposite writes p's 32-byte composite key to b.
func putComposite(b []byte, p Pair) {
	putPrefix(b[0:16], p.Key)
	putPrefix(b[16:32], p.Value)
}

// valueOf decodes the value half of a composite key.
func valueOf(b []byte) E {
	return E{High: binary.BigEndian.Uint64(b[16:24]), Low: binary.BigEndian.Uint64(b[24:32])}
}

// prefixEnd returns the smallest 16-byte string above every key with prefix
// k, or nil when k is all ones (no upper bound).
func prefixEnd(k E) []byte {
	switch {
	case k.Low != ^uint64(0):
		k.Low++
	case k.High != ^uint64(0):
		k.High, k.Low = k.High+1, 0
	default:
		return nil
	}
	b := make([]byte, prefixLen)
	putPrefix(b, k)
	return b
}

// prefixUpper returns an exclusive upper bound for the composite keys with
// prefix k: prefixEnd, or 33 bytes of 0xFF when k is all ones.
func prefixUpper(k E) []byte {
	if b := prefixEnd(k); b != nil {
		return b
	}
	b := make([]byte, compositeLen+1)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

// compositeBatch encodes a batch into one backing array; the slices share
// it and stay valid until the next call.
type compositeBatch struct{ buf []byte }

func (c *compositeBatch) encode(pairs []Pair, f func(k []byte) error) error {
	if n := len(pairs) * compositeLen; cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	for i, p := range pairs {
		k := c.buf[i*compositeLen : (i+1)*compositeLen : (i+1)*compositeLen]
		putComposite(k, p)
		if err := f(k); err != nil {
			return err
		}
	}
	return nil
}
