package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// RecordSize is the size in bytes of one encoded record. Every record in the
// ring occupies exactly one RecordSize slot.
const RecordSize = 64

// Record layout (DESIGN.md §2), little-endian, RecordSize bytes:
//
//	offset size field
//	     0    1 version_op: rolling version in bits 7..6, opcode in bits 5..0
//	     1    1 reserved, written 0
//	     2    6 reserved, written 0
//	     8    8 HybridTime nanos (u64)
//	    16    4 HybridTime seq (u32)
//	    20    4 HybridTime shard_id (u32)
//	    24   16 key: high u64, low u64
//	    40   16 value: high u64, low u64
//	    56    4 CRC32C (Castagnoli) of bytes 0..55 followed by the LSN (u64 LE)
//	    60    4 padding, written 0
//
// The LSN is not stored: it is implied by the record's position in the ring
// (see doc.go) and mixed into the checksum, so a record only validates at
// the LSN it was written with. A stale record left in a slot by an earlier
// lap of the ring has an LSN that differs by a multiple of the capacity and
// fails the checksum at the slot's current LSN.
//
// Reserved bytes and padding are written as zero and ignored on read; the
// reserved bytes are covered by the checksum, the padding is not.
const (
	offVersionOp = 0
	offNanos     = 8
	offSeq       = 16
	offShard     = 20
	offKeyHigh   = 24
	offKeyLow    = 32
	offValueHigh = 40
	offValueLow  = 48
	offCRC       = 56
	crcCovered   = 56 // bytes 0..55 are checksummed (plus the LSN)
)

// Op is a record's opcode, the low 6 bits of byte 0. The WAL layer checks
// only that it is not zero; what each opcode means, and which of the key,
// value and HybridTime fields it uses, is defined by the core (core/wal.go).
//
//	code  name          meaning
//	   1  INSERT        add value to key's set
//	   2  DELETE        delete key with all its values
//	   3  TXN_START     first record of a batch (transaction)
//	   4  TXN_COMMIT    last record of a committed batch; replay applies a
//	                    batch only when its commit is present
//	   5  TXN_ABORT     the batch since TXN_START is discarded
//	   6  DELETE_VALUE  remove one value from key's set
//	   7  SPLIT         bucket split
//	   8  MERGE         bucket merge
//	   9  PROMOTE       inline entry promoted to a value set
//	  10  DEMOTE        value set demoted to inline
//	  11  CHECKPOINT    checkpoint marker
//	12-63             reserved: Append refuses them; DecodeRecord returns
//	                    them so that a reader can report records written by
//	                    a newer ("next" version) writer
//	   0                invalid: DecodeRecord returns ErrOpcode
type Op uint8

// Opcodes; see the table on Op.
const (
	OpInsert      Op = 1
	OpDelete      Op = 2
	OpTxnStart    Op = 3
	OpTxnCommit   Op = 4
	OpTxnAbort    Op = 5
	OpDeleteValue Op = 6
	OpSplit       Op = 7
	OpMerge       Op = 8
	OpPromote     Op = 9
	OpDemote      Op = 10
	OpCheckpoint  Op = 11

	// MaxOp is the largest opcode the 6-bit field can hold.
	MaxOp Op = 63
)

var opNames = [...]string{
	OpInsert:      "INSERT",
	OpDelete:      "DELETE",
	OpTxnStart:    "TXN_START",
	OpTxnCommit:   "TXN_COMMIT",
	OpTxnAbort:    "TXN_ABORT",
	OpDeleteValue: "DELETE_VALUE",
	OpSplit:       "SPLIT",
	OpMerge:       "MERGE",
	OpPromote:     "PROMOTE",
	OpDemote:      "DEMOTE",
	OpCheckpoint:  "CHECKPOINT",
}

// Known reports whether o is one of the opcodes in the table (1..11).
func (o Op) Known() bool { return o >= OpInsert && o <= OpCheckpoint }

// String returns the opcode's name from the table, or "OP(n)".
func (o Op) String() string {
	if o.Known() {
		return opNames[o]
	}
	return fmt.Sprintf("OP(%d)", uint8(o))
}

// Rolling versions, the top 2 bits of byte 0. The version rolls forward
// through the four values so that a format change can be deployed in two
// steps (readers learn "next" before writers start writing it). Readers
// accept VersionCurrent and VersionNext; VersionPast and VersionFuture are
// refused with ErrVersion. Append always writes VersionCurrent.
const (
	VersionPast    uint8 = 0
	VersionCurrent uint8 = 1
	VersionNext    uint8 = 2
	VersionFuture  uint8 = 3
)

// Record is one decoded WAL record. It carries no LSN: the LSN is the
// record's position in the log, passed to Encode and DecodeRecord.
type Record struct {
	Op        Op
	Version   uint8  // rolling version; Append overwrites it with VersionCurrent
	Nanos     uint64 // HybridTime physical part, Unix ns
	Seq       uint32 // HybridTime logical counter
	Shard     uint32 // HybridTime shard id
	KeyHigh   uint64
	KeyLow    uint64
	ValueHigh uint64
	ValueLow  uint64
}

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	lsnTables  = slicing8(castagnoli)
)

// slicing8 returns the slicing-by-8 tables of t: s[k][i] is the CRC
// register after feeding byte i followed by k zero bytes.
func slicing8(t *crc32.Table) *[8][256]uint32 {
	var s [8][256]uint32
	s[0] = *t
	for i := range 256 {
		for k := 1; k < 8; k++ {
			c := s[k-1][i]
			s[k][i] = t[byte(c)] ^ c>>8
		}
	}
	return &s
}

// recordCRC is CRC32C over b[0:56] followed by lsn as 8 little-endian bytes.
// The LSN is folded into the register with one slicing-by-8 step (eight
// independent lookups) instead of calling crc32.Update again: a local byte
// array passed to crc32.Update escapes to the heap, and the plain
// byte-at-a-time loop costs ~20 ns per record.
func recordCRC(b []byte, lsn uint64) uint32 {
	t := lsnTables
	crc := ^crc32.Update(0, castagnoli, b[:crcCovered]) ^ uint32(lsn)
	hi := uint32(lsn >> 32)
	crc = t[0][hi>>24] ^ t[1][byte(hi>>16)] ^ t[2][byte(hi>>8)] ^ t[3][byte(hi)] ^
		t[4][crc>>24] ^ t[5][byte(crc>>16)] ^ t[6][byte(crc>>8)] ^ t[7][byte(crc)]
	return ^crc
}

// Encode writes r as the record with the given LSN into dst[:RecordSize].
// The version written is r.Version exactly (Append sets VersionCurrent; a
// zero Version encodes a "past" record that readers refuse); only the low
// 6 bits of r.Op are used. Encode panics if len(dst) < RecordSize, like
// encoding/binary's Put functions.
func (r *Record) Encode(dst []byte, lsn uint64) {
	_ = dst[RecordSize-1] // one bounds check for the whole record
	le := binary.LittleEndian
	dst[offVersionOp] = r.Version<<6 | uint8(r.Op)&0x3f
	clear(dst[1:offNanos])
	le.PutUint64(dst[offNanos:], r.Nanos)
	le.PutUint32(dst[offSeq:], r.Seq)
	le.PutUint32(dst[offShard:], r.Shard)
	le.PutUint64(dst[offKeyHigh:], r.KeyHigh)
	le.PutUint64(dst[offKeyLow:], r.KeyLow)
	le.PutUint64(dst[offValueHigh:], r.ValueHigh)
	le.PutUint64(dst[offValueLow:], r.ValueLow)
	le.PutUint32(dst[offCRC:], recordCRC(dst, lsn))
	clear(dst[offCRC+4 : RecordSize])
}

// checkRecord validates the record in b[:RecordSize] at lsn, in the same
// order as DecodeRecord: length, checksum, version, opcode.
func checkRecord(b []byte, lsn uint64) error {
	if len(b) < RecordSize {
		return ErrShort
	}
	if binary.LittleEndian.Uint32(b[offCRC:]) != recordCRC(b, lsn) {
		return ErrChecksum
	}
	if v := b[offVersionOp] >> 6; v != VersionCurrent && v != VersionNext {
		return ErrVersion
	}
	if b[offVersionOp]&0x3f == 0 {
		return ErrOpcode
	}
	return nil
}

// DecodeRecord decodes the record in b[:RecordSize] (extra bytes are
// ignored), checking it as the record with the given LSN. It returns
// ErrShort when len(b) < RecordSize, ErrChecksum when the checksum does not
// match (a torn or damaged record, or one written at another LSN, such as a
// stale record from an earlier lap), ErrVersion for rolling versions 0 and
// 3, and ErrOpcode for opcode 0. Reserved opcodes (12..63) are returned
// without error. It never panics and does not retain b.
func DecodeRecord(b []byte, lsn uint64) (Record, error) {
	if err := checkRecord(b, lsn); err != nil {
		return Record{}, err
	}
	le := binary.LittleEndian
	return Record{
		Op:        Op(b[offVersionOp] & 0x3f),
		Version:   b[offVersionOp] >> 6,
		Nanos:     le.Uint64(b[offNanos:]),
		Seq:       le.Uint32(b[offSeq:]),
		Shard:     le.Uint32(b[offShard:]),
		KeyHigh:   le.Uint64(b[offKeyHigh:]),
		KeyLow:    le.Uint64(b[offKeyLow:]),
		ValueHigh: le.Uint64(b[offValueHigh:]),
		ValueLow:  le.Uint64(b[offValueLow:]),
	}, nil
}
