package cidstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/cidstore/cidstore/core/port"
)

// entry is the in-memory form of a HashEntry.
//
// Inline mode: s0 holds the smallest value (never zero), s1 the second one
// or zero; s0 < s1 when both are set.
// Spill mode: s0 is zero and s1 is the SpillPointer of the key's value set:
// s1.High is the value set id (never zero), s1.Low is reserved zero.
type entry struct {
	key, s0, s1 E
}

func (e *entry) spilled() bool { return e.s0.IsZero() }

func (e *entry) spillID() uint64 { return e.s1.High }

func spillPointer(id uint64) E { return E{High: id} }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashEntry wire layout (port.EntrySize = 64 bytes, little-endian words):
//
//	0..15   key    (high u64, low u64)
//	16..31  slot0  (high u64, low u64)
//	32..47  slot1  (high u64, low u64)
//	48..55  checksum: CRC32C (Castagnoli) of bytes 0..47, zero-extended to u64
//	56..63  reserved, zero
//
// The checksum is verified by decodeEntry on every read from a backend.

// encodeEntry writes e into b[:64].
func encodeEntry(b []byte, e *entry) {
	_ = b[63]
	binary.LittleEndian.PutUint64(b[0:], e.key.High)
	binary.LittleEndian.PutUint64(b[8:], e.key.Low)
	binary.LittleEndian.PutUint64(b[16:], e.s0.High)
	binary.LittleEndian.PutUint64(b[24:], e.s0.Low)
	binary.LittleEndian.PutUint64(b[32:], e.s1.High)
	binary.LittleEndian.PutUint64(b[40:], e.s1.Low)
	binary.LittleEndian.PutUint64(b[48:], uint64(crc32.Checksum(b[0:48], castagnoli)))
	binary.LittleEndian.PutUint64(b[56:], 0)
}

// decodeEntry parses and verifies one 64-byte HashEntry. It rejects a bad
// checksum, non-zero reserved bytes, a zero key, and slot combinations that
// no valid entry has; every failure wraps ErrCorrupt.
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if err := decodeEntryInto(&e, b); err != nil {
		return entry{}, err
	}
	return e, nil
}

// decodeEntryInto is decodeEntry writing into *e, for loops that decode a
// whole bucket into its array: a bucket load used to decode each entry
// into a temporary and copy it, 1.3-1.5x the time of decoding in place
// (BenchmarkDecodeBucket: 35-42 -> 23-30 ns an entry, about half of it
// the checksum). *e is undefined when it fails.
func decodeEntryInto(e *entry, b []byte) error {
	if len(b) != port.EntrySize {
		return fmt.Errorf("%w: hash entry of %d bytes", ErrCorrupt, len(b))
	}
	sum := binary.LittleEndian.Uint64(b[48:])
	if want := uint64(crc32.Checksum(b[0:48], castagnoli)); sum != want {
		return fmt.Errorf("%w: hash entry checksum %08x, want %08x", ErrCorrupt, sum, want)
	}
	if binary.LittleEndian.Uint64(b[56:]) != 0 {
		return fmt.Errorf("%w: hash entry reserved bytes not zero", ErrCorrupt)
	}
	e.key = E{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
	e.s0 = E{binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])}
	e.s1 = E{binary.LittleEndian.Uint64(b[32:]), binary.LittleEndian.Uint64(b[40:])}
	return e.check()
}

// check reports a structurally impossible entry.
func (e *entry) check() error {
	switch {
	case e.key.IsZero():
		return fmt.Errorf("%w: hash entry with zero key", ErrCorrupt)
	case e.spilled():
		if e.s1.High == 0 || e.s1.Low != 0 {
			return fmt.Errorf("%w: key %v: bad spill pointer %v", ErrCorrupt, e.key, e.s1)
		}
	case !e.s1.IsZero() && !e.s0.Less(e.s1):
		return fmt.Errorf("%w: key %v: inline slots out of order", ErrCorrupt, e.key)
	}
	return nil
}

func encodeValue(b []byte, v E) {
	binary.LittleEndian.PutUint64(b[0:], v.High)
	binary.LittleEndian.PutUint64(b[8:], v.Low)
}

func decodeValue(b []byte) E {
	return E{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
}
