package port

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// BucketDeltas is implemented by backends that accept bucket deltas
// (BucketRecord.Delta). Optional: core writes every bucket whole to a
// backend without it.
type BucketDeltas interface {
	// BucketDeltas reports whether Commit accepts delta records.
	BucketDeltas() bool
}

// ErrBadDelta is wrapped by ApplyBucketDelta's errors: rows out of order,
// of a bad size, or a base that is not sorted. A backend reports it as
// corruption of the bucket.
var ErrBadDelta = errors.New("bad bucket delta")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PutRemovalRow writes into b[:EntrySize] the delta row that removes key
// (high, low): the key, all-zero slots (which no entry has), and the
// entry checksum over them.
func PutRemovalRow(b []byte, high, low uint64) {
	_ = b[EntrySize-1]
	clear(b[:EntrySize])
	binary.LittleEndian.PutUint64(b[0:], high)
	binary.LittleEndian.PutUint64(b[8:], low)
	binary.LittleEndian.PutUint64(b[48:], uint64(crc32.Checksum(b[0:48], castagnoli)))
}

// IsRemovalRow reports whether the EntrySize-byte row b is a removal row:
// its slot bytes are all zero.
func IsRemovalRow(b []byte) bool {
	_ = b[47]
	for i := 16; i < 48; i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			return false
		}
	}
	return true
}

// compareKeys orders two encoded rows by key: high word, then low.
func compareKeys(a, b []byte) int {
	ah, bh := binary.LittleEndian.Uint64(a), binary.LittleEndian.Uint64(b)
	if ah != bh {
		if ah < bh {
			return -1
		}
		return 1
	}
	al, bl := binary.LittleEndian.Uint64(a[8:]), binary.LittleEndian.Uint64(b[8:])
	switch {
	case al < bl:
		return -1
	case al > bl:
		return 1
	}
	return 0
}

// ApplyBucketDelta returns base's rows with the delta rows applied,
// appended to dst[:0]: a delta row replaces the base row of its key or
// adds one, a removal row drops it (a removal of a key base lacks is a
// no-op: the key came and went since the base). base and delta must be
// sorted by key with no key twice, so the result is too. keys, appended to
// keysDst[:0], are the delta's keys (KeySize bytes each, sorted). Row
// contents other than keys are not checked here: the caller decodes them.
func ApplyBucketDelta(dst, keysDst, base, delta []byte) (merged, keys []byte, err error) {
	if len(base)%EntrySize != 0 || len(delta)%EntrySize != 0 {
		return nil, nil, fmt.Errorf("%w: %d base and %d delta bytes", ErrBadDelta, len(base), len(delta))
	}
	if err := checkSorted(base); err != nil {
		return nil, nil, fmt.Errorf("%w: base %w", ErrBadDelta, err)
	}
	if err := checkSorted(delta); err != nil {
		return nil, nil, fmt.Errorf("%w: delta %w", ErrBadDelta, err)
	}
	merged, keys = dst[:0], keysDst[:0]
	for len(base) > 0 || len(delta) > 0 {
		c := -1
		switch {
		case len(base) == 0:
			c = 1
		case len(delta) > 0:
			c = compareKeys(base, delta)
		}
		if c < 0 {
			merged = append(merged, base[:EntrySize]...)
			base = base[EntrySize:]
			continue
		}
		if c == 0 {
			base = base[EntrySize:]
		}
		row := delta[:EntrySize]
		delta = delta[EntrySize:]
		keys = append(keys, row[:KeySize]...)
		if !IsRemovalRow(row) {
			merged = append(merged, row...)
		}
	}
	return merged, keys, nil
}

// checkSorted reports rows whose keys are not strictly ascending.
func checkSorted(rows []byte) error {
	for i := EntrySize; i < len(rows); i += EntrySize {
		if compareKeys(rows[i-EntrySize:], rows[i:]) >= 0 {
			return fmt.Errorf("row %d is not after row %d", i/EntrySize, i/EntrySize-1)
		}
	}
	return nil
}
