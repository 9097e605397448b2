package h5store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// churn commits n workload checkpoints to a store with small segments, so
// that pools grow into segment files and hold much free space.
func churn(t *testing.T, n int) (*workload, string) {
	t.Helper()
	s, w, path := commitN(t, n, workloadOptions())
	mustClose(t, s)
	return w, path
}

// verifyCompacted opens the store at path and checks it against w; after
// a compaction the deletion log is empty and every bucket whole (no
// deltas), before it they are w's. The caller folds w (workload.fold)
// after a compaction.
func verifyCompacted(t *testing.T, path string, w *workload) (compacted bool) {
	t.Helper()
	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer mustClose(t, s)
	if err := s.waitScan(); err != nil { // the tables' counts, read below
		t.Fatal(err)
	}
	dels, err := s.DeletionLog()
	if err != nil {
		t.Fatal(err)
	}
	m := w.clone()
	deltas := 0
	for _, b := range w.buckets {
		if len(b.DeltaKeys) > 0 {
			deltas++
		}
	}
	if len(dels) == 0 && len(w.dels) > 0 || s.st.tabs[kindBucketDelta].live == 0 && deltas > 0 {
		m.dels, compacted = nil, true
		m.fold()
	}
	if err := verifyState(s, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	return compacted
}

func TestCompact(t *testing.T) {
	w, path := churn(t, 120)
	// Buckets with deltas are written whole (verifyCompacted checks that
	// the compacted store has no delta left).
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.st.tabs[kindBucketDelta].live; n == 0 {
		t.Fatal("the store to compact has no bucket deltas")
	} else {
		t.Logf("%d of %d buckets have a delta", n, len(w.buckets))
	}
	if err := verifyState(r, w); err != nil {
		t.Fatal(err)
	}
	mustClose(t, r)
	files, size, alloc, err := DiskUsage(path)
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("workload made %d files, want segment files too", files)
	}
	var calls int
	var last, total int64
	if err := Compact(path, workloadOptions(), func(d, n int64) { calls, last, total = calls+1, d, n }); err != nil {
		t.Fatal(err)
	}
	files2, size2, alloc2, err := DiskUsage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: %d files, %d bytes (%d allocated); after: %d files, %d bytes (%d allocated); progress %d calls, %d/%d records",
		files, size, alloc, files2, size2, alloc2, calls, last, total)
	if files2 != 1 || size2 >= size || alloc2 >= alloc {
		t.Fatalf("compact did not shrink the store")
	}
	if calls < 2 || last != total || total == 0 {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}
	for _, f := range []string{path + compactSuffix, path + compactSuffix + ".lock"} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", f, err)
		}
	}
	if !verifyCompacted(t, path, w) {
		t.Fatal("deletion log or bucket deltas survived compaction")
	}
	// The compacted store takes commits and grows again as usual.
	w.dels = nil
	w.fold()
	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if err := s.Commit(w.next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	verifyCompacted(t, path, w)
}

func TestCompactEmptyAndLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.h5")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Compact(path, Options{}, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Compact with a writer open: %v, want ErrLocked", err)
	} else {
		t.Log(err)
	}
	mustClose(t, s)
	if err := Compact(path, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if _, _, ok, err := s.LoadMeta(); ok || err != nil {
		t.Fatalf("compacted empty store: ok %v err %v", ok, err)
	}
	if err := Compact(filepath.Join(t.TempDir(), "missing.h5"), Options{}, nil); err == nil {
		t.Fatal("Compact of a missing store succeeded")
	}
	if err := Rewrite(path, path, Options{}, nil); err == nil {
		t.Fatal("Rewrite onto its source succeeded")
	}
}

// TestCompactCrash kills Compact at its failpoints and inside the commit of
// the new file: the store must open after every kill and hold the same
// state, compacted or not.
func TestCompactCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs child processes")
	}
	w, path := churn(t, 80)
	for _, fp := range []struct {
		name      string
		compacted bool
	}{
		{fpRowsWritten, false},
		{fpAfterRoot, false},
		{fpCompactWritten, false},
		{fpCompactRenamed, true},
		{fpRowsWritten, false},
	} {
		// A writer commits in between, so every round has segment files.
		s, err := Open(path, workloadOptions())
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if err := s.Commit(w.next()); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, s)
		c := startChildMode(t, "compact", path, 1, fmt.Sprintf("%s=%s:1", envFailpoint, fp.name))
		for range c.lines {
		}
		if !c.wait(t) {
			t.Fatalf("failpoint %s did not fire", fp.name)
		}
		if got := verifyCompacted(t, path, w); got != fp.compacted {
			t.Fatalf("after a kill at %s: compacted %v, want %v", fp.name, got, fp.compacted)
		}
		if fp.compacted {
			w.dels = nil
			w.fold()
		}
		segs, err := segmentFiles(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed at %s: store opens, compacted %v, %d segment files", fp.name, fp.compacted, len(segs))
	}
	if err := Compact(path, workloadOptions(), nil); err != nil {
		t.Fatal(err)
	}
	verifyCompacted(t, path, w)
	w.dels = nil
	w.fold()
	if segs, _ := segmentFiles(path); len(segs) != 0 {
		t.Fatalf("segment files left after a clean compact: %v", segs)
	}
}
