package memstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

func checkpoint(lsn uint64) *port.Checkpoint {
	entries := bytes.Repeat([]byte{byte(lsn)}, 2*port.EntrySize)
	return &port.Checkpoint{
		Meta:      port.Meta{FormatVersion: 1, GlobalDepth: 1, HashSeed: 9, BucketCapacity: 8, CheckpointLSN: lsn, NumBuckets: 2, NextBucketID: 2, NextValueSetID: 5, CreatedUnixNano: 123},
		Directory: []uint32{0, 1},
		Buckets: []port.BucketRecord{
			{ID: 0, LocalDepth: 1, SortedCount: 2, LastCompacted: 77, Entries: entries},
			{ID: 1, LocalDepth: 1, Entries: nil},
		},
		ValueSets: []port.ValueSetRecord{{ID: 4, SortedCount: 1, Values: bytes.Repeat([]byte{3}, 3*port.ValueSize), Tombstones: bytes.Repeat([]byte{3}, port.ValueSize)}},
		Full:      true,
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.snapshot")
	s, err := memstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.LoadMeta(); ok || err != nil {
		t.Fatalf("new store: ok %v err %v", ok, err)
	}
	cp := checkpoint(42)
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := memstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	meta, dir, ok, err := s2.LoadMeta()
	if err != nil || !ok || meta != cp.Meta || len(dir) != 2 || dir[1] != 1 {
		t.Fatalf("LoadMeta = %+v %v %v %v", meta, dir, ok, err)
	}
	b, err := s2.ReadBucket(0)
	if err != nil || !bytes.Equal(b.Entries, cp.Buckets[0].Entries) || b.SortedCount != 2 || b.LastCompacted != 77 || b.LocalDepth != 1 {
		t.Fatalf("ReadBucket = %+v, %v", b, err)
	}
	v, err := s2.ReadValueSet(4)
	if err != nil || !bytes.Equal(v.Values, cp.ValueSets[0].Values) || !bytes.Equal(v.Tombstones, cp.ValueSets[0].Tombstones) || v.SortedCount != 1 {
		t.Fatalf("ReadValueSet = %+v, %v", v, err)
	}
	if _, err := s2.ReadBucket(9); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("missing bucket: %v", err)
	}
}

func TestIncrementalCommit(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	if err := s.Commit(checkpoint(1)); err != nil {
		t.Fatal(err)
	}
	cp := &port.Checkpoint{Meta: port.Meta{CheckpointLSN: 2, GlobalDepth: 0}, Directory: []uint32{0}, FreedBuckets: []uint32{1}, FreedValueSets: []uint64{4},
		Buckets: []port.BucketRecord{{ID: 0, Entries: make([]byte, port.EntrySize)}}}
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBucket(1); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("freed bucket still there: %v", err)
	}
	if _, err := s.ReadValueSet(4); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("freed value set still there: %v", err)
	}
	if b, err := s.ReadBucket(0); err != nil || len(b.Entries) != port.EntrySize {
		t.Fatalf("rewritten bucket: %+v %v", b, err)
	}
}

func TestCorruptSnapshotRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.snapshot")
	s, _ := memstore.Open(path)
	if err := s.Commit(checkpoint(7)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{10, len(data) / 2, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x40
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := memstore.Open(path); !errors.Is(err, port.ErrCorrupt) {
			t.Fatalf("flipped byte %d: %v, want ErrCorrupt", off, err)
		}
	}
	if err := os.WriteFile(path, data[:len(data)-9], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := memstore.Open(path); !errors.Is(err, port.ErrCorrupt) {
		t.Fatalf("truncated: %v, want ErrCorrupt", err)
	}
}

// A failed snapshot write (here: the directory is gone) is reported and
// leaves the last committed state readable.
func TestFailedCommitKeepsState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := memstore.Open(filepath.Join(dir, "s.snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(checkpoint(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(checkpoint(2)); err == nil {
		t.Fatal("commit into a removed directory succeeded")
	}
	meta, _, ok, err := s.LoadMeta()
	if err != nil || !ok || meta.CheckpointLSN != 1 {
		t.Fatalf("after failed commit: lsn %d ok %v err %v", meta.CheckpointLSN, ok, err)
	}
}

// A version 1 snapshot still opens: counts load as 0, the log as empty,
// and the next commit writes version 2.
func TestSnapshotVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.snapshot")
	if err := os.WriteFile(path, v1Snapshot(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := memstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	meta, dir, ok, err := s.LoadMeta()
	if err != nil || !ok || meta.CheckpointLSN != 11 || meta.Keys != 0 || len(dir) != 1 {
		t.Fatalf("LoadMeta = %+v %v %v %v", meta, dir, ok, err)
	}
	if _, err := s.ReadBucket(0); err != nil {
		t.Fatal(err)
	}
	meta.CheckpointLSN, meta.Keys = 12, 5
	if err := s.Commit(&port.Checkpoint{Meta: meta, Directory: dir}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != 2 {
		t.Fatalf("snapshot version after a commit = %d, want 2", v)
	}
	if s, err = memstore.Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _, _, _ := s.LoadMeta(); got != meta {
		t.Fatalf("after reopen: %+v, want %+v", got, meta)
	}
}
