package h5store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// commitN opens a store at a new path and commits n workload checkpoints.
func commitN(t *testing.T, n int, opts Options) (*Store, *workload, string) {
	t.Helper()
	return commitWorkload(t, n, opts, newWorkload(5))
}

// commitWorkload opens a store at a new path and commits n checkpoints of w.
func commitWorkload(t *testing.T, n int, opts Options, w *workload) (*Store, *workload, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.h5")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := s.Commit(w.next()); err != nil {
			t.Fatal(err)
		}
	}
	return s, w, path
}

func mustClose(t *testing.T, c interface{ Close() error }) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// flip inverts one byte of the file.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	mustClose(t, f)
}

func TestCorruptRowNamesBucket(t *testing.T) {
	s, w, path := commitN(t, 30, workloadOptions())
	var victim uint32
	var l loc
	for _, id := range w.liveBuckets() {
		if l, _, _ = s.st.tabs[kindBucket].get(uint64(id)); l.count > 2 {
			victim = id
			break
		}
	}
	f, off, err := s.st.pools[poolRows].locate(l.ref, l.count)
	if err != nil {
		t.Fatal(err)
	}
	file := f.Name()
	mustClose(t, s)
	flip(t, file, off+port.EntrySize+17) // inside the second entry

	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatalf("open with a corrupt row: %v", err)
	}
	defer mustClose(t, s)
	_, err = s.ReadBucket(victim)
	if !errors.Is(err, port.ErrCorrupt) {
		t.Fatalf("ReadBucket(%d) of a flipped row: err = %v, want ErrCorrupt", victim, err)
	}
	if want := "bucket " + strconv.FormatUint(uint64(victim), 10); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
	t.Logf("corrupt row: %v", err)
	cerr := s.Check()
	if !errors.Is(cerr, port.ErrCorrupt) || !strings.Contains(cerr.Error(), "bucket "+strconv.FormatUint(uint64(victim), 10)) {
		t.Fatalf("Check: %v", cerr)
	}
	for _, id := range w.liveBuckets() {
		if _, err := s.ReadBucket(id); id != victim && err != nil {
			t.Fatalf("bucket %d next to the corrupt one: %v", id, err)
		}
	}
}

func TestCorruptIndexRefusesOpen(t *testing.T) {
	s, _, path := commitN(t, 12, workloadOptions())
	snap := s.st.root.snap[kindBucket]
	f, off, err := s.st.pools[poolBucketMeta].locate(snap.ref, snap.count)
	if err != nil {
		t.Fatal(err)
	}
	file := f.Name()
	mustClose(t, s)
	flip(t, file, off+5)
	_, err = Open(path, workloadOptions())
	if !errors.Is(err, port.ErrCorrupt) {
		t.Fatalf("open with a corrupt index snapshot: err = %v, want ErrCorrupt", err)
	}
	t.Logf("corrupt index: %v", err)
}

// TestCorruptIndexDeltaRefusesOpen flips a byte of the newest delta of the
// value sets' index: Open checks the extents side by side (openSrc), and
// the delta's failure must refuse it like the snapshot's does.
func TestCorruptIndexDeltaRefusesOpen(t *testing.T) {
	s, _, path := commitN(t, 30, workloadOptions())
	deltas := s.st.root.deltas[kindValueSet]
	if len(deltas) == 0 || !s.st.root.hasSnap[kindValueSet] {
		t.Fatalf("the workload left %d value-set index deltas and snapshot %v; want both", len(deltas), s.st.root.hasSnap[kindValueSet])
	}
	d := deltas[len(deltas)-1]
	f, off, err := s.st.pools[poolValueMeta].locate(d.ref, d.count)
	if err != nil {
		t.Fatal(err)
	}
	file := f.Name()
	mustClose(t, s)
	flip(t, file, off+int64(d.count)*int64(recValueSetMeta.Size)-3)
	_, err = Open(path, workloadOptions())
	if !errors.Is(err, port.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("value set index delta %d", len(deltas)-1)) {
		t.Fatalf("open with a corrupt index delta: err = %v, want ErrCorrupt naming value set index delta %d", err, len(deltas)-1)
	}
	t.Logf("corrupt index delta: %v", err)
}

// A torn or corrupt newest commit record falls back to the other slot,
// which holds the previous checkpoint.
func TestCorruptCommitRecordFallsBack(t *testing.T) {
	s, w, path := commitN(t, 9, workloadOptions())
	slot := s.st.root.slot
	commitOff := s.commitOff
	mustClose(t, s)
	flip(t, path, commitOff+int64(slot)*commitSize+coLSN)
	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	meta, _, _, err := s.LoadMeta()
	if err != nil {
		t.Fatal(err)
	}
	if meta.CheckpointLSN != w.lsn-1 {
		t.Fatalf("loaded lsn %d, want the previous checkpoint %d", meta.CheckpointLSN, w.lsn-1)
	}
	prev := newWorkload(5)
	if err := prev.advanceTo(w.lsn - 1); err != nil {
		t.Fatal(err)
	}
	if err := verifyState(s, prev); err != nil {
		t.Fatal(err)
	}
}

// setFormat rewrites the format version of both commit records, with a
// valid checksum.
func setFormat(t *testing.T, path string, commitOff int64, v uint32) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, f)
	for slot := range 2 {
		b := make([]byte, commitSize)
		off := commitOff + int64(slot)*commitSize
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if le.Uint64(b) != commitMagic {
			continue
		}
		le.PutUint32(b[coFormat:], v)
		le.PutUint32(b[coChecksum:], crc32.Checksum(b[:coChecksum], castagnoli))
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	for _, c := range []struct {
		name    string
		version uint32
		want    string
	}{
		{"newer", FormatVersion + 1, "newer than this build"},
		{"older", minFormatVersion - 1, "older than this build"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, path := commitN(t, 2, workloadOptions())
			off := s.commitOff
			mustClose(t, s)
			setFormat(t, path, off, c.version)
			_, err := Open(path, workloadOptions())
			if !errors.Is(err, ErrFormatVersion) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: err = %v, want ErrFormatVersion %q", err, c.want)
			}
			_, err = OpenReader(path, ReaderOptions{})
			if !errors.Is(err, ErrFormatVersion) {
				t.Fatalf("OpenReader: err = %v, want ErrFormatVersion", err)
			}
			t.Logf("%v", err)
		})
	}
}

// A version 1 file (no counts, no deletion_start, no bucket deltas in its
// commit records) opens with counts 0 and becomes the current version at
// its next commit.
func TestFormatVersion1Upgrades(t *testing.T) {
	w := newWorkload(5)
	w.noDeltas = true
	s, w, path := commitWorkload(t, 3, workloadOptions(), w)
	off := s.commitOff
	mustClose(t, s)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for slot := range 2 {
		b := make([]byte, commitSize)
		o := off + int64(slot)*commitSize
		if _, err := f.ReadAt(b, o); err != nil {
			t.Fatal(err)
		}
		le.PutUint32(b[coFormat:], 1)
		clear(b[coNumKeys : coBucketDeltaDeltas+maxDeltas*recExtent.Size])
		le.PutUint32(b[coChecksum:], crc32.Checksum(b[:coChecksum], castagnoli))
		if _, err := f.WriteAt(b, o); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, f)
	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := w.meta
	want.Keys, want.Values, want.SpilledKeys = 0, 0, 0
	if meta, _, _, err := s.LoadMeta(); err != nil || meta != want {
		t.Fatalf("LoadMeta of a version 1 file = %+v, %v; want %+v", meta, err, want)
	}
	if err := s.Commit(w.next()); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, r)
	if r.st.root.format != FormatVersion {
		t.Fatalf("format after a commit = %d, want %d", r.st.root.format, FormatVersion)
	}
	if err := verifyState(r, w); err != nil {
		t.Fatal(err)
	}
}

// The deletion log restarts at record 0 once garbage collection has
// trimmed all of it, but never overwrites records the committed state
// names.
func TestDeletionLogReusesSpace(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "d.h5"), workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	w := newWorkload(9)
	lsn := uint64(0)
	commit := func(trim uint64, add int) {
		t.Helper()
		cp := w.next()
		cp.TrimDeletions = trim
		cp.Deletions = nil
		for i := range add {
			cp.Deletions = append(cp.Deletions, port.DeletionRecord{KeyHigh: lsn, KeyLow: uint64(i) + 1})
		}
		lsn++
		if err := s.Commit(cp); err != nil {
			t.Fatal(err)
		}
	}
	span := func() (uint64, uint64) { return s.st.root.delStart, s.st.root.deletions }
	commit(0, 10)
	commit(0, 10)
	if a, b := span(); a != 0 || b != 20 {
		t.Fatalf("log [%d, %d), want [0, 20)", a, b)
	}
	commit(15, 0)
	if a, b := span(); a != 15 || b != 20 {
		t.Fatalf("log [%d, %d), want [15, 20)", a, b)
	}
	// Trimming the rest while appending more than fits below 15 must
	// append after the committed records.
	commit(5, 16)
	if a, b := span(); a != 20 || b != 36 {
		t.Fatalf("log [%d, %d), want [20, 36)", a, b)
	}
	// Now 16 fit below 20: the log restarts at 0.
	commit(16, 16)
	if a, b := span(); a != 0 || b != 16 {
		t.Fatalf("log [%d, %d), want [0, 16)", a, b)
	}
	dels, err := s.DeletionLog()
	if err != nil || len(dels) != 16 || dels[0].KeyHigh != 4 || dels[15].KeyLow != 16 {
		t.Fatalf("DeletionLog = %d records %v, %v", len(dels), dels[:1], err)
	}
	commit(16, 0)
	if a, b := span(); a != 0 || b != 0 {
		t.Fatalf("log [%d, %d), want [0, 0)", a, b)
	}
}

// A Reader left behind while the writer reuses its space reports ErrStale,
// never other data, and Refresh brings it back.
func TestReaderStale(t *testing.T) {
	s, w, path := commitN(t, 3, Options{SegmentBytes: minSegmentBytes, ReuseDelayCommits: -1})
	defer mustClose(t, s)
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, r)
	at := newWorkload(5)
	if err := at.advanceTo(w.lsn); err != nil {
		t.Fatal(err)
	}
	if err := verifyState(r, at); err != nil {
		t.Fatal(err)
	}
	// Rewrite every bucket a few times: with no reuse delay the third
	// rewrite lands on the space the Reader's generation points at.
	for range 4 {
		cp := w.next()
		for _, id := range w.liveBuckets() {
			b := w.bucket(rand.New(rand.NewPCG(9, uint64(id))), id, 64)
			cp.Buckets = append(cp.Buckets, b)
			w.setWhole(b, false)
		}
		if err := s.Commit(cp); err != nil {
			t.Fatal(err)
		}
	}
	stale := 0
	for _, id := range at.liveBuckets() {
		got, err := r.ReadBucket(id)
		switch {
		case errors.Is(err, ErrStale):
			stale++
		case err != nil:
			t.Fatalf("ReadBucket(%d) from a stale generation: %v", id, err)
		default:
			if want := at.buckets[id]; string(got.Entries) != string(want.Entries) {
				t.Fatalf("ReadBucket(%d) returned rows that are not its generation's", id)
			}
		}
	}
	if stale == 0 {
		t.Fatal("no read noticed that the writer reused the space")
	}
	if changed, err := r.Refresh(); err != nil || !changed {
		t.Fatalf("Refresh = %v, %v", changed, err)
	}
	if err := verifyState(r, w); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	t.Logf("%d of %d reads were stale before Refresh", stale, len(at.buckets))
}

func TestOpenLocked(t *testing.T) {
	s, _, path := commitN(t, 1, workloadOptions())
	defer mustClose(t, s)
	if _, err := Open(path, workloadOptions()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatalf("reader next to a writer: %v", err)
	}
	defer mustClose(t, r)
	if err := r.Commit(&port.Checkpoint{}); !errors.Is(err, port.ErrReadOnly) {
		t.Fatalf("Reader.Commit: err = %v, want ErrReadOnly", err)
	}
}

// A rejected checkpoint leaves the store as it was and usable.
func TestCommitRollback(t *testing.T) {
	s, w, _ := commitN(t, 5, workloadOptions())
	defer mustClose(t, s)
	before := newWorkload(5)
	if err := before.advanceTo(w.lsn); err != nil {
		t.Fatal(err)
	}
	cp := w.next()
	bad := *cp
	bad.Directory = append([]uint32(nil), cp.Directory...)
	bad.Directory[0] = 1 << 30 // names no bucket
	if err := s.Commit(&bad); err == nil {
		t.Fatal("commit with a dangling directory slot succeeded")
	} else {
		t.Logf("rejected: %v", err)
	}
	if err := verifyState(s, before); err != nil {
		t.Fatalf("after a rejected commit: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(cp); err != nil {
		t.Fatalf("commit after a rejected one: %v", err)
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
}

// Reads running concurrently with commits see whole bucket versions: rows
// that verify, or ErrNotFound for a bucket freed meanwhile.
func TestConcurrentReadsDuringCommits(t *testing.T) {
	s, w, _ := commitN(t, 5, workloadOptions())
	defer mustClose(t, s)
	done := make(chan struct{})
	errc := make(chan error, 4)
	for g := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				ids, err := s.BucketIDs()
				if err != nil {
					errc <- err
					return
				}
				id := ids[r.IntN(len(ids))]
				if _, err := s.ReadBucket(id); err != nil && !errors.Is(err, port.ErrNotFound) {
					errc <- err
					return
				}
			}
		}()
	}
	for range 40 {
		if err := s.Commit(w.next()); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
}

// A read does not wait for a commit in progress: Commit holds the tables'
// lock only to change them, not while it writes rows, syncs or writes the
// commit record. The read runs from each failpoint of Commit and must
// finish before the commit does.
func TestReadDuringCommit(t *testing.T) {
	for _, fp := range []string{fpRowsWritten, fpSyncing, fpBeforeRoot, fpAfterRoot} {
		t.Run(fp, func(t *testing.T) { testReadDuringCommit(t, fp) })
	}
}

func testReadDuringCommit(t *testing.T, fp string) {
	s, err := Open(filepath.Join(t.TempDir(), "s.h5"), workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	bucket := func(id uint32, fill byte) port.BucketRecord {
		return port.BucketRecord{ID: id, LocalDepth: 1, SortedCount: 4, Entries: bytes.Repeat([]byte{fill}, 4*port.EntrySize)}
	}
	meta := port.Meta{FormatVersion: 2, GlobalDepth: 1, HashSeed: 1, BucketCapacity: 4, NumBuckets: 2, NextBucketID: 2, NextValueSetID: 1}
	first := &port.Checkpoint{Meta: meta, Directory: []uint32{0, 1}, Buckets: []port.BucketRecord{bucket(0, 'a'), bucket(1, 'b')}, Full: true}
	if err := s.Commit(first); err != nil {
		t.Fatal(err)
	}
	meta.CheckpointLSN = 1
	cp := &port.Checkpoint{Meta: meta, Directory: []uint32{0, 1}, Buckets: []port.BucketRecord{bucket(1, 'c')}}
	const probe = 0 // the second checkpoint does not write it
	want := bucket(probe, 'a')
	var during error
	windows := 0
	s.failpoint = func(name string) {
		if name != fp || windows > 0 {
			return
		}
		windows++
		got := make(chan error, 1)
		go func() {
			r, err := s.ReadBucket(probe)
			if err == nil && !bytes.Equal(r.Entries, want.Entries) {
				err = fmt.Errorf("read bucket %d during commit: entries differ", probe)
			}
			got <- err
		}()
		select {
		case during = <-got:
		case <-time.After(10 * time.Second):
			during = fmt.Errorf("a read waited for the commit at %s", fp)
		}
	}
	if err := s.Commit(cp); err != nil {
		t.Fatal(err)
	}
	if windows == 0 {
		t.Fatalf("the commit never reached %s", fp)
	}
	if during != nil {
		t.Fatal(during)
	}
}

// TestDirectoryRefs checks that the directory's hdf5_ref of every slot is
// its bucket's committed rows ref although a commit looks up only the
// buckets it changed (Store.bucketRefs), over splits, frees, doubling and
// reopens, with a paged index; and that Check sees a stale ref.
func TestDirectoryRefs(t *testing.T) {
	for _, budget := range []int64{4 << 10, 64 << 20} {
		t.Run(strconv.FormatInt(budget, 10), func(t *testing.T) {
			opts := Options{IndexCacheBytes: budget, NoSync: true, ReuseDelayCommits: -1}
			s, w, path := commitN(t, 1, opts)
			for i := range 40 {
				if err := s.Commit(w.next()); err != nil {
					t.Fatal(err)
				}
				if err := s.Check(); err != nil {
					t.Fatalf("commit %d: %v", i, err)
				}
				if i == 20 {
					mustClose(t, s)
					var err error
					if s, err = Open(path, opts); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(s.bucketRefs) == 0 {
				t.Fatal("no bucket refs learnt")
			}
			// Poison what the store knows: the buckets the next commit
			// does not change keep a wrong ref, which Check must report.
			for id, r := range s.bucketRefs {
				if r != noRef {
					s.bucketRefs[id] = r + 1
				}
			}
			if err := s.Commit(w.next()); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); !errors.Is(err, port.ErrCorrupt) || !strings.Contains(err.Error(), "hdf5_ref") {
				t.Fatalf("stale directory refs: Check gives %v", err)
			}
			mustClose(t, s)
		})
	}
}
