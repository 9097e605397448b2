package h5store

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestSWMRReaderProcess runs a writer process that commits the workload
// while this process reads the same file as an SWMR Reader, refreshing and
// verifying every state it sees against the model. The writer pauses after
// every tenth commit until the reader has verified that exact state, so
// some states are always checked; between pauses the reader races the
// writer and must cope with ErrStale by refreshing.
//
// With reuse=-1 the writer reuses freed space at once, so racing reads hit
// overwritten rows: they must report ErrStale, never wrong data.
func TestSWMRReaderProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("SWMR test runs a child process")
	}
	for _, reuse := range []string{"default", "-1"} {
		t.Run("reuse="+reuse, func(t *testing.T) { testSWMR(t, reuse) })
	}
}

func testSWMR(t *testing.T, reuse string) {
	const (
		seed    = 77
		commits = 150
		pace    = 10
	)
	path := filepath.Join(t.TempDir(), "swmr.h5")
	c := startChild(t, path, seed, envCommits+"=150", envPace+"=10", envReuse+"="+reuse)
	expectReady(t, c, 0)
	r, err := OpenReader(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	model := newWorkload(seed)
	seen := map[uint64]bool{}
	stale := 0
	// catchUp refreshes and verifies until the reader shows a consistent
	// state at or after min; it returns that lsn.
	catchUp := func(min uint64) uint64 {
		t.Helper()
		for range 1000 {
			if _, err := r.Refresh(); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			meta, _, ok, err := r.LoadMeta()
			if errors.Is(err, ErrStale) {
				stale++
				continue
			}
			if err != nil {
				t.Fatalf("reader load: %v", err)
			}
			lsn := uint64(0)
			if ok {
				lsn = meta.CheckpointLSN
			}
			if lsn < model.lsn {
				t.Fatalf("reader went back from lsn %d to %d", model.lsn, lsn)
			}
			if err := model.advanceTo(lsn); err != nil {
				t.Fatal(err)
			}
			err = verifyState(r, model)
			if errors.Is(err, ErrStale) {
				stale++
				continue
			}
			if err != nil {
				t.Fatalf("reader state at lsn %d is not that checkpoint: %v", lsn, err)
			}
			seen[lsn] = true
			if lsn >= min {
				return lsn
			}
		}
		t.Fatalf("reader never reached lsn %d", min)
		return 0
	}
	var lastAck uint64
	for line := range c.lines {
		word, lsn := parseLine(t, line)
		switch {
		case word == "done":
		case lsn%pace == 0:
			// The writer waits: the reader must see exactly this state.
			lastAck = lsn
			if got := catchUp(lsn); got != lsn {
				t.Fatalf("writer paused at lsn %d, reader shows %d", lsn, got)
			}
			if _, err := c.stdin.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
		default:
			lastAck = lsn
			if lsn%3 == 0 {
				catchUp(0)
			}
		}
	}
	if c.wait(t) {
		t.Fatal("writer was killed")
	}
	if lastAck != commits {
		t.Fatalf("writer acknowledged up to %d, want %d", lastAck, commits)
	}
	if got := catchUp(commits); got != commits {
		t.Fatalf("after the writer closed, reader shows lsn %d, want %d", got, commits)
	}
	if len(seen) < commits/pace {
		t.Fatalf("reader verified %d states, want at least %d", len(seen), commits/pace)
	}
	t.Logf("reader verified %d distinct committed states of %d, stale retries %d, generation %d",
		len(seen), commits, stale, r.Generation())
}
