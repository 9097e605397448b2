package h5store_test

import (
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestLayout checks, with the HDF5 command-line tools, that a store file
// has the documented objects, attribute types and record member names, and
// that a row written through the store reads back through HDF5.
func TestLayout(t *testing.T) {
	for _, tool := range []string{"h5ls", "h5dump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install hdf5-tools)", tool)
		}
	}
	path := filepath.Join(t.TempDir(), "layout.h5")
	s, err := h5store.Open(path, h5store.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	entry := make([]byte, port.EntrySize)
	for i, v := range []uint64{0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0} {
		binary.LittleEndian.PutUint64(entry[i*8:], v)
	}
	cp := &port.Checkpoint{
		Meta: port.Meta{FormatVersion: 1, GlobalDepth: 1, HashSeed: 99, BucketCapacity: 256, CheckpointLSN: 42,
			NumBuckets: 2, NextBucketID: 2, NextValueSetID: 2, CreatedUnixNano: 1_700_000_000_000_000_000,
			Keys: 1, Values: 4, SpilledKeys: 1},
		Directory: []uint32{0, 1},
		Buckets:   []port.BucketRecord{{ID: 0, LocalDepth: 1, SortedCount: 1, Entries: entry}, {ID: 1, LocalDepth: 1}},
		ValueSets: []port.ValueSetRecord{{ID: 1, SortedCount: 3, Values: make([]byte, 3*port.ValueSize)}},
		Deletions: []port.DeletionRecord{{KeyHigh: 1, KeyLow: 2, ValueGroup: 1, UnixNano: 3}},
	}
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	// A delta of bucket 0 adds a key after its one entry: the commit
	// record then names a bucket delta index.
	drow := make([]byte, port.EntrySize)
	for i, v := range []uint64{0x1111, 0x2223, 1, 2, 3, 4, 5, 0} {
		binary.LittleEndian.PutUint64(drow[i*8:], v)
	}
	cp.Meta.CheckpointLSN = 43
	cp.Buckets = []port.BucketRecord{{ID: 0, LocalDepth: 1, SortedCount: 1, Entries: drow, Delta: true}}
	cp.ValueSets, cp.Deletions = nil, nil
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ReadBucket(0); err != nil || b.EntryCount() != 2 || len(b.DeltaKeys) != port.KeySize {
		t.Fatalf("bucket 0 with a delta: %d entries, %d delta key bytes, %v", b.EntryCount(), len(b.DeltaKeys), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ls := run(t, "h5ls", "-r", path)
	t.Logf("h5ls -r:\n%s", ls)
	for _, obj := range []string{
		`/buckets\s+Group`, `/buckets/meta\s+Dataset \{\d+\}`, `/buckets/rows\s+Dataset \{\d+\}`,
		`/commit\s+Dataset \{2\}`, `/config\s+Group`, `/deletion_log\s+Dataset \{\d+\}`,
		`/directory\s+Dataset \{\d+\}`, `/values\s+Group`, `/values/data\s+Dataset \{\d+\}`,
		`/values/meta\s+Dataset \{\d+\}`, `/wal\s+Group`,
	} {
		if !regexp.MustCompile(`(?m)^` + obj + `$`).MatchString(ls) {
			t.Errorf("h5ls -r: no line matching %q", obj)
		}
	}

	attrs := run(t, "h5dump", "-A", path)
	for name, typ := range map[string]string{
		"format_version": "H5T_STD_U32LE", "version_string": "H5T_STRING", "created_timestamp": "H5T_IEEE_F64LE",
		"global_depth": "H5T_STD_U8LE", "num_buckets": "H5T_STD_U32LE", "hash_seed": "H5T_STD_U64LE",
		"bucket_capacity": "H5T_STD_U32LE", "checkpoint_lsn": "H5T_STD_U64LE",
		"num_keys": "H5T_STD_U64LE", "num_values": "H5T_STD_U64LE", "num_spilled_keys": "H5T_STD_U64LE",
	} {
		re := regexp.MustCompile(`ATTRIBUTE "` + name + `" \{\s*DATATYPE\s+(\S+)`)
		m := re.FindStringSubmatch(attrs)
		if m == nil || m[1] != typ {
			t.Errorf("/config attribute %s: type %v, want %s", name, m, typ)
		}
	}
	for name, want := range map[string]string{"checkpoint_lsn": "43", "num_keys": "1", "num_values": "4", "num_spilled_keys": "1",
		"format_version": strconv.Itoa(h5store.FormatVersion)} {
		got := regexp.MustCompile(`ATTRIBUTE "` + name + `" \{[^}]*DATA \{\s*\(0\): (\d+)`).FindStringSubmatch(attrs)
		if got == nil || got[1] != want {
			t.Errorf("/config %s = %v, want %s", name, got, want)
		}
	}

	if !strings.Contains(attrs, `"cidstore h5store layout `+strconv.Itoa(h5store.FormatVersion)+`"`) {
		t.Errorf("/config version_string is not layout %d", h5store.FormatVersion)
	}

	header := run(t, "h5dump", "-H", path)
	for _, member := range []string{
		"key_high", "key_low", "slot0_high", "slot0_low", "slot1_high", "slot1_low", "checksum", "reserved", // HashEntry
		"bucket_id", "hdf5_ref", // BucketPointer
		"local_depth", "sorted_count", "entry_count", "last_compacted", "rows_ref", // BucketMeta
		"high", "low", "value_set_id", "tombstone_count", // values
		"value_group", "timestamp", // DeletionRecord
		"generation", "segments", "bucket_meta_snapshot", // CommitRecord
		"num_keys", "num_values", "num_spilled_keys", "deletion_start", "deletion_count",
		"bucket_delta_meta_delta_count", "bucket_delta_meta_snapshot", "bucket_delta_meta_deltas", // version 3
	} {
		if !strings.Contains(header, `"`+member+`";`) {
			t.Errorf("h5dump -H: no member %q", member)
		}
	}
	if strings.Contains(header, `hdf5:"`) {
		t.Error("h5dump -H: a member name still carries its struct tag")
	}

	row := run(t, "h5dump", "-d", "/buckets/rows", "-s", "0", "-c", "1", path)
	for _, v := range []string{"4369", "8738", "13107", "17476", "21845", "26214", "30583"} { // 0x1111..0x7777
		if !strings.Contains(row, v) {
			t.Errorf("h5dump of /buckets/rows[0] lacks %s:\n%s", v, row)
		}
	}
}

// TestLayoutSegmentFile checks that a pool that outgrew its first dataset
// continues in a sidecar HDF5 file that the tools can read on its own.
func TestLayoutSegmentFile(t *testing.T) {
	if _, err := exec.LookPath("h5ls"); err != nil {
		t.Skip("h5ls not installed (apt-get install hdf5-tools)")
	}
	path := filepath.Join(t.TempDir(), "grow.h5")
	s, err := h5store.Open(path, h5store.Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	cp := buckets1000(8, 256) // 128 KiB of rows: twice the first segment
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().SegmentsCreated; got == 0 {
		t.Fatal("no segment was created")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ls := run(t, "h5ls", "-r", path+".buckets-rows_0001.h5")
	t.Logf("h5ls -r %s:\n%s", filepath.Base(path)+".buckets-rows_0001.h5", ls)
	if !regexp.MustCompile(`(?m)^/buckets/rows_0001\s+Dataset \{\d+\}$`).MatchString(ls) {
		t.Fatalf("segment file lacks /buckets/rows_0001")
	}
	s, err = h5store.Open(path, h5store.Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range cp.Buckets {
		if _, err := s.ReadBucket(b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
