package memstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// FuzzOpenSnapshot feeds arbitrary bytes as a snapshot file: Open must
// either load it or fail with ErrCorrupt, never panic.
func FuzzOpenSnapshot(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.snapshot")
	s, err := memstore.Open(good)
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Commit(checkpoint(3)); err != nil {
		f.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	// A snapshot with counts and a deletion log, and the same bytes claiming
	// version 1 (whose layout has neither) with a valid checksum.
	withLog := filepath.Join(dir, "log.snapshot")
	if s, err = memstore.Open(withLog); err != nil {
		f.Fatal(err)
	}
	cp := checkpoint(4)
	cp.Meta.Keys, cp.Meta.Values, cp.Meta.SpilledKeys = 7, 9, 1
	cp.Deletions = []port.DeletionRecord{{KeyHigh: 1, KeyLow: 2, ValueGroup: 4, UnixNano: 5}, {KeyHigh: 6, KeyLow: 7}}
	if err := s.Commit(cp); err != nil {
		f.Fatal(err)
	}
	s.Close()
	if data, err = os.ReadFile(withLog); err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)-4-32])
	f.Add(resum(withVersion(data, 1)))
	f.Add(resum(withVersion(data, 3)))
	f.Add(v1Snapshot())
	f.Add([]byte("CIDSNAP1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "s.snapshot")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := memstore.Open(path)
		if err != nil {
			if !errors.Is(err, port.ErrCorrupt) {
				t.Fatalf("error %v does not wrap port.ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		if _, _, _, err := s.LoadMeta(); err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("CIDSNAP1")) {
			t.Fatal("a file without the magic was accepted")
		}
	})
}

// withVersion returns a copy of a snapshot claiming another version.
func withVersion(data []byte, v uint32) []byte {
	b := bytes.Clone(data)
	binary.LittleEndian.PutUint32(b[8:], v)
	return b
}

// resum recomputes a snapshot's trailing CRC32C.
func resum(b []byte) []byte {
	body := b[:len(b)-4]
	binary.LittleEndian.PutUint32(b[len(body):], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// v1Snapshot is a version 1 snapshot (no counts, no deletion log) of one
// empty bucket at depth 0.
func v1Snapshot() []byte {
	var b []byte
	u32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	b = append(b, "CIDSNAP1"...)
	u32(1)
	u32(0)
	u32(1)                    // format_version
	b = append(b, 0, 0, 0, 0) // global_depth, pad
	u64(9)                    // hash_seed
	u32(8)                    // bucket_capacity
	u32(1)                    // num_buckets
	u64(11)                   // checkpoint_lsn
	u32(1)                    // next_bucket_id
	u32(0)
	u64(1)   // next_value_set_id
	u64(123) // created
	u64(1)   // n_slots
	u32(0)
	u64(1) // n_buckets
	u32(0)
	b = append(b, 0, 0, 0, 0)
	u32(0)
	u64(0)
	u64(0)
	u64(0) // n_sets
	return resum(append(b, 0, 0, 0, 0))
}
