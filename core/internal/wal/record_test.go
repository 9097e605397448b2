package wal_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/cidstore/cidstore/core/internal/wal"
)

// testRec returns a deterministic record for id; every field differs
// between ids.
func testRec(id uint64) wal.Record {
	ops := [...]wal.Op{wal.OpInsert, wal.OpDelete, wal.OpDeleteValue, wal.OpTxnStart, wal.OpTxnCommit, wal.OpCheckpoint}
	return wal.Record{
		Op:        ops[id%uint64(len(ops))],
		Version:   wal.VersionCurrent,
		Nanos:     1_700_000_000_000_000_000 + id,
		Seq:       uint32(id),
		Shard:     uint32(id % 7),
		KeyHigh:   id*0x9e3779b97f4a7c15 | 1,
		KeyLow:    ^id,
		ValueHigh: id << 32,
		ValueLow:  id + 1,
	}
}

// encodeRaw encodes r at lsn and then overwrites byte 0 (version and
// opcode) with raw, recomputing the checksum, to build records that Encode
// would write differently or a writer must never write.
func encodeRaw(r wal.Record, lsn uint64, raw byte) []byte {
	b := make([]byte, wal.RecordSize)
	r.Encode(b, lsn)
	b[0] = raw
	binary.LittleEndian.PutUint32(b[56:], specCRC(b, lsn))
	return b
}

// specCRC is the checksum as DESIGN.md §2 and record.go define it,
// computed the plain way: CRC32C of bytes 0..55 followed by the LSN.
func specCRC(b []byte, lsn uint64) uint32 {
	buf := append([]byte(nil), b[:56]...)
	buf = binary.LittleEndian.AppendUint64(buf, lsn)
	return crc32.Checksum(buf, crc32.MakeTable(crc32.Castagnoli))
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  wal.Record
		lsn  uint64
	}{
		{"insert", testRec(1), 1},
		{"delete large lsn", testRec(2), 1 << 61},
		{"version next", func() wal.Record { r := testRec(3); r.Version = wal.VersionNext; return r }(), 77},
		{"reserved opcode", wal.Record{Op: 12, Version: wal.VersionCurrent, KeyHigh: 1}, 5},
		{"max opcode, max fields", wal.Record{Op: wal.MaxOp, Version: wal.VersionCurrent, Nanos: ^uint64(0), Seq: ^uint32(0), Shard: ^uint32(0),
			KeyHigh: ^uint64(0), KeyLow: ^uint64(0), ValueHigh: ^uint64(0), ValueLow: ^uint64(0)}, ^uint64(0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, wal.RecordSize+3) // extra bytes are ignored
			tc.rec.Encode(b, tc.lsn)
			got, err := wal.DecodeRecord(b, tc.lsn)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if got != tc.rec {
				t.Fatalf("got %+v, want %+v", got, tc.rec)
			}
			if want := specCRC(b, tc.lsn); binary.LittleEndian.Uint32(b[56:]) != want {
				t.Fatalf("stored CRC %#x, spec CRC %#x", binary.LittleEndian.Uint32(b[56:]), want)
			}
			for _, i := range []int{1, 2, 3, 4, 5, 6, 7, 60, 61, 62, 63} {
				if b[i] != 0 {
					t.Fatalf("reserved/padding byte %d = %#x, want 0", i, b[i])
				}
			}
		})
	}
}

func TestRecordLayout(t *testing.T) {
	r := wal.Record{Op: wal.OpDeleteValue, Version: wal.VersionCurrent, Nanos: 0x0102030405060708, Seq: 0x11121314, Shard: 0x21222324,
		KeyHigh: 0x3132333435363738, KeyLow: 0x4142434445464748, ValueHigh: 0x5152535455565758, ValueLow: 0x6162636465666768}
	b := make([]byte, wal.RecordSize)
	r.Encode(b, 9)
	le := binary.LittleEndian
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"version_op", uint64(b[0]), 1<<6 | 6},
		{"nanos", le.Uint64(b[8:]), r.Nanos},
		{"seq", uint64(le.Uint32(b[16:])), uint64(r.Seq)},
		{"shard", uint64(le.Uint32(b[20:])), uint64(r.Shard)},
		{"key high", le.Uint64(b[24:]), r.KeyHigh},
		{"key low", le.Uint64(b[32:]), r.KeyLow},
		{"value high", le.Uint64(b[40:]), r.ValueHigh},
		{"value low", le.Uint64(b[48:]), r.ValueLow},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	const lsn = 1234
	good := make([]byte, wal.RecordSize)
	rec := testRec(5)
	rec.Encode(good, lsn)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x10
		return b
	}
	tests := []struct {
		name string
		b    []byte
		lsn  uint64
		want error
	}{
		{"empty", nil, lsn, wal.ErrShort},
		{"63 bytes", good[:63], lsn, wal.ErrShort},
		{"zero record", make([]byte, wal.RecordSize), lsn, wal.ErrChecksum},
		{"flipped version_op", flip(0), lsn, wal.ErrChecksum},
		{"flipped reserved byte", flip(3), lsn, wal.ErrChecksum},
		{"flipped key", flip(30), lsn, wal.ErrChecksum},
		{"flipped crc", flip(57), lsn, wal.ErrChecksum},
		{"next LSN", good, lsn + 1, wal.ErrChecksum},
		{"previous lap (capacity 960)", good, lsn + 960, wal.ErrChecksum},
		{"previous lap (capacity 1M)", good, lsn + 1<<20, wal.ErrChecksum},
		{"version 0 (past)", encodeRaw(rec, lsn, 0<<6|1), lsn, wal.ErrVersion},
		{"version 3 (future)", encodeRaw(rec, lsn, 3<<6|1), lsn, wal.ErrVersion},
		{"opcode 0", encodeRaw(rec, lsn, 1<<6|0), lsn, wal.ErrOpcode},
		{"version 2 (next)", encodeRaw(rec, lsn, 2<<6|1), lsn, nil},
		{"flipped padding is ignored", flip(62), lsn, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wal.DecodeRecord(tc.b, tc.lsn)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("DecodeRecord = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEveryBitFlipIsDetected(t *testing.T) {
	b := make([]byte, wal.RecordSize)
	r := testRec(9)
	r.Encode(b, 42)
	for i := range 60 * 8 {
		b[i/8] ^= 1 << (i % 8)
		if _, err := wal.DecodeRecord(b, 42); err == nil {
			t.Fatalf("flip of bit %d not detected", i)
		}
		b[i/8] ^= 1 << (i % 8)
	}
}

func TestOp(t *testing.T) {
	tests := []struct {
		op    wal.Op
		name  string
		known bool
	}{
		{0, "OP(0)", false},
		{wal.OpInsert, "INSERT", true},
		{wal.OpDelete, "DELETE", true},
		{wal.OpTxnStart, "TXN_START", true},
		{wal.OpTxnCommit, "TXN_COMMIT", true},
		{wal.OpTxnAbort, "TXN_ABORT", true},
		{wal.OpDeleteValue, "DELETE_VALUE", true},
		{wal.OpSplit, "SPLIT", true},
		{wal.OpMerge, "MERGE", true},
		{wal.OpPromote, "PROMOTE", true},
		{wal.OpDemote, "DEMOTE", true},
		{wal.OpCheckpoint, "CHECKPOINT", true},
		{12, "OP(12)", false},
		{wal.MaxOp, "OP(63)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.op.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.op.Known(); got != tc.known {
				t.Errorf("Known() = %v, want %v", got, tc.known)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	seed := func(r wal.Record, lsn uint64) []byte {
		b := make([]byte, wal.RecordSize)
		r.Encode(b, lsn)
		return b
	}
	f.Add(seed(testRec(1), 1), uint64(1))
	f.Add(seed(testRec(2), 1<<40), uint64(1<<40))
	f.Add(seed(testRec(3), 7), uint64(8))
	f.Add(encodeRaw(testRec(4), 3, 3<<6|1), uint64(3))
	f.Add(encodeRaw(testRec(4), 3, 1<<6), uint64(3))
	f.Add(make([]byte, wal.RecordSize), uint64(0))
	f.Add([]byte{0x41, 1, 2}, uint64(1))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, lsn uint64) {
		r, err := wal.DecodeRecord(b, lsn)
		if err != nil {
			if r != (wal.Record{}) {
				t.Fatalf("error %v with non-zero record %+v", err, r)
			}
			return
		}
		if r.Version != wal.VersionCurrent && r.Version != wal.VersionNext || r.Op == 0 || r.Op > wal.MaxOp {
			t.Fatalf("accepted record with version %d op %d", r.Version, r.Op)
		}
		// A decoded record re-encodes to one that decodes the same, with
		// the same bytes except reserved and padding.
		b2 := make([]byte, wal.RecordSize)
		r.Encode(b2, lsn)
		r2, err := wal.DecodeRecord(b2, lsn)
		if err != nil || r2 != r {
			t.Fatalf("re-encode: %+v, %v; want %+v", r2, err, r)
		}
		for _, i := range []int{0, 8, 16, 20, 24, 32, 40, 48} {
			if b[i] != b2[i] {
				t.Fatalf("byte %d: %#x re-encoded as %#x", i, b[i], b2[i])
			}
		}
	})
}

func BenchmarkEncodeRecord(b *testing.B) {
	buf := make([]byte, wal.RecordSize)
	r := testRec(1)
	var lsn uint64
	for b.Loop() {
		lsn++
		r.Encode(buf, lsn)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	buf := make([]byte, wal.RecordSize)
	r := testRec(1)
	r.Encode(buf, 99)
	for b.Loop() {
		if _, err := wal.DecodeRecord(buf, 99); err != nil {
			b.Fatal(err)
		}
	}
}
