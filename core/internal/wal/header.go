package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSizeBytes is the size of the header page at the start of the file;
// the ring of records starts right after it (page-aligned, as mmap needs).
const HeaderSizeBytes = 4096

// Header layout. The header page holds two copies of a 128-byte header, at
// offsets 0 and 512 (separate disk sectors). Each write stores the next
// generation (seq) into copy seq%2, so the other copy, holding the previous
// generation, is never touched while the newer one is written; Open uses
// the valid copy with the highest seq. A torn header write therefore falls
// back to the previous header instead of losing the log.
//
// One copy, little-endian:
//
//	offset size field
//	     0    8 magic "CIDSTWAL"
//	     8    4 format version (u32) = 1
//	    12    4 record size (u32) = 64
//	    16    4 header size (u32) = 4096, the file offset of ring slot 0
//	    20    4 flags (u32): bit 0 = clean (written by Close: head is exact)
//	    24    8 file size in bytes (u64)
//	    32    8 capacity in records (u64) = (file size - 4096) / 64
//	    40    8 seq: header generation (u64)
//	    48    8 tail LSN: oldest record not yet checkpointed (u64, >= 1)
//	    56    8 head LSN: next LSN to write (u64); a hint, exact when clean
//	    64    8 synced LSN: every record <= it was on disk when this header
//	            was written (u64); a lower bound that lags the real one
//	    72   52 reserved, zero
//	   124    4 CRC32C of bytes 0..123
const (
	headerMagic      = "CIDSTWAL"
	formatVersion    = 1
	headerCopySize   = 128
	headerCopyStride = 512
	flagClean        = 1
)

// header is one decoded header copy.
type header struct {
	fileSize uint64
	capacity uint64
	seq      uint64
	tail     uint64
	head     uint64
	synced   uint64
	clean    bool
}

func (h *header) encode(b []byte) {
	_ = b[headerCopySize-1]
	le := binary.LittleEndian
	clear(b[:headerCopySize])
	copy(b[0:8], headerMagic)
	le.PutUint32(b[8:], formatVersion)
	le.PutUint32(b[12:], RecordSize)
	le.PutUint32(b[16:], HeaderSizeBytes)
	var flags uint32
	if h.clean {
		flags |= flagClean
	}
	le.PutUint32(b[20:], flags)
	le.PutUint64(b[24:], h.fileSize)
	le.PutUint64(b[32:], h.capacity)
	le.PutUint64(b[40:], h.seq)
	le.PutUint64(b[48:], h.tail)
	le.PutUint64(b[56:], h.head)
	le.PutUint64(b[64:], h.synced)
	le.PutUint32(b[124:], crc32.Checksum(b[:124], castagnoli))
}

// decodeHeader decodes and checks one copy. Errors: ErrUnsupported for a
// valid copy of a newer format, otherwise a plain description.
func decodeHeader(b []byte) (header, error) {
	le := binary.LittleEndian
	if len(b) < headerCopySize {
		return header{}, fmt.Errorf("header copy shorter than %d bytes", headerCopySize)
	}
	if string(b[0:8]) != headerMagic {
		return header{}, fmt.Errorf("bad magic %q", b[0:8])
	}
	if le.Uint32(b[124:]) != crc32.Checksum(b[:124], castagnoli) {
		return header{}, fmt.Errorf("header checksum mismatch")
	}
	if v := le.Uint32(b[8:]); v != formatVersion {
		return header{}, fmt.Errorf("%w: format version %d (this code reads %d)", ErrUnsupported, v, formatVersion)
	}
	h := header{
		fileSize: le.Uint64(b[24:]),
		capacity: le.Uint64(b[32:]),
		seq:      le.Uint64(b[40:]),
		tail:     le.Uint64(b[48:]),
		head:     le.Uint64(b[56:]),
		synced:   le.Uint64(b[64:]),
		clean:    le.Uint32(b[20:])&flagClean != 0,
	}
	switch {
	case le.Uint32(b[12:]) != RecordSize:
		return header{}, fmt.Errorf("record size %d, want %d", le.Uint32(b[12:]), RecordSize)
	case le.Uint32(b[16:]) != HeaderSizeBytes:
		return header{}, fmt.Errorf("header size %d, want %d", le.Uint32(b[16:]), HeaderSizeBytes)
	case h.fileSize < uint64(MinSizeBytes) || h.fileSize > uint64(MaxSizeBytes):
		return header{}, fmt.Errorf("file size %d out of range", h.fileSize)
	case h.capacity != (h.fileSize-HeaderSizeBytes)/RecordSize:
		return header{}, fmt.Errorf("capacity %d does not match file size %d", h.capacity, h.fileSize)
	case h.tail < 1 || h.head < h.tail || h.head-h.tail > h.capacity:
		return header{}, fmt.Errorf("tail %d and head %d inconsistent (capacity %d)", h.tail, h.head, h.capacity)
	case h.synced >= h.head:
		return header{}, fmt.Errorf("synced LSN %d not below head %d", h.synced, h.head)
	}
	return h, nil
}

// pickHeader returns the valid copy with the highest seq from the first
// 2*headerCopyStride bytes of the file.
func pickHeader(page []byte) (header, error) {
	var (
		best  header
		found bool
		errs  [2]error
	)
	for i := range 2 {
		off := i * headerCopyStride
		if len(page) < off+headerCopySize {
			errs[i] = fmt.Errorf("file too short for header copy %d", i)
			continue
		}
		h, err := decodeHeader(page[off : off+headerCopySize])
		if err != nil {
			errs[i] = err
			continue
		}
		if !found || h.seq > best.seq {
			best, found = h, true
		}
	}
	if found {
		return best, nil
	}
	for _, err := range errs {
		if err != nil && errors.Is(err, ErrUnsupported) {
			return header{}, err
		}
	}
	return header{}, &CorruptError{Reason: fmt.Sprintf("no valid header (copy 0: %v; copy 1: %v)", errs[0], errs[1])}
}
