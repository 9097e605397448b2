package h5store

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// TestCrashRecovery kills a writer process at random moments (SIGKILL
// after a seeded number of acknowledged commits plus a seeded delay) and at
// named failpoints inside Commit and growth, then reopens the store and
// checks that it holds exactly the last acknowledged checkpoint or the one
// in flight when the commit record made it, never less and never a mix. Reopening
// alternates between the writer (which recovers the HDF5 status flags) and
// an SWMR Reader (which leaves the crashed file for the next child to
// recover). Replay with H5STORE_CRASH_SEED; H5STORE_CRASH_KILLS sets the
// number of random kills.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs child processes")
	}
	seed := uint64(envInt("H5STORE_CRASH_SEED", 20240601))
	kills := envInt("H5STORE_CRASH_KILLS", 24)
	t.Logf("seed %d (replay with H5STORE_CRASH_SEED=%d)", seed, seed)
	path := filepath.Join(t.TempDir(), "crash.h5")
	model := newWorkload(seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	var (
		acks, unackedVisible, recovered int
		lsn                             uint64
	)

	for i := range kills {
		c := startChild(t, path, seed)
		lastAck := expectReady(t, c, lsn)
		k, delay := rng.IntN(8), time.Duration(rng.IntN(4000))*time.Microsecond
		var fire <-chan time.Time
		if k == 0 {
			fire = time.After(delay)
		}
		n := 0
		for done := false; !done; {
			select {
			case line, ok := <-c.lines:
				if !ok {
					done = true
					break
				}
				if word, l := parseLine(t, line); word == "ack" {
					lastAck = l
					if n++; n == k {
						fire = time.After(delay)
					}
				}
			case <-fire:
				fire = nil
				if err := c.cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !c.wait(t) {
			t.Fatalf("kill %d: child finished without being killed", i)
		}
		acks += n
		var rec bool
		lsn, rec = verifyAfterCrash(t, path, model, lastAck, i%2 == 1)
		if rec {
			recovered++
		}
		if lsn == lastAck+1 {
			unackedVisible++
		}
	}
	t.Logf("random kills: %d, acknowledged commits: %d, lost: 0, in-flight commit visible after kill: %d, writer recoveries: %d",
		kills, acks, unackedVisible, recovered)

	// Failpoints: a kill before the commit record is written must load the
	// previous checkpoint; after it, the new one (the page cache keeps it).
	fps := []struct {
		name    string
		at      int
		advance uint64
	}{
		{fpRowsWritten, 3, 0}, {fpBeforeRoot, 2, 0}, {fpAfterRoot, 4, 1}, {fpSegmentCreated, 1, 0}, {fpSegmentReady, 1, 0},
		{fpRowsWritten, 1, 0}, {fpBeforeRoot, 5, 0}, {fpAfterRoot, 1, 1}, {fpSegmentCreated, 2, 0}, {fpSegmentReady, 2, 0},
	}
	fired, deltaKills := 0, 0
	for i, fp := range fps {
		c := startChild(t, path, seed, fmt.Sprintf("%s=%s:%d", envFailpoint, fp.name, fp.at), envCommits+"=300")
		lastAck := expectReady(t, c, lsn)
		for line := range c.lines {
			if word, l := parseLine(t, line); word == "ack" {
				lastAck = l
			}
		}
		killed := c.wait(t)
		lsn, _ = verifyAfterCrash(t, path, model, lastAck, i%2 == 1)
		if !killed {
			t.Logf("failpoint %s:%d did not fire in 300 commits", fp.name, fp.at)
			continue
		}
		fired++
		if lsn != lastAck+fp.advance {
			t.Fatalf("failpoint %s: loaded lsn %d, want %d (last ack %d)", fp.name, lsn, lastAck+fp.advance, lastAck)
		}
		if fp.name == fpRowsWritten || fp.name == fpBeforeRoot {
			// Was the killed commit writing bucket deltas (between their
			// rows and the commit record)?
			w := newWorkload(seed)
			if err := w.advanceTo(lastAck); err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(w.next().Buckets, func(b port.BucketRecord) bool { return b.Delta }) {
				deltaKills++
			}
		}
	}
	t.Logf("failpoint kills: %d of %d fired, all loaded the expected checkpoint; %d killed a commit of bucket deltas before its commit record",
		fired, len(fps), deltaKills)
	if fired < len(fps)-2 {
		t.Fatalf("only %d failpoints fired", fired)
	}
	if deltaKills == 0 {
		t.Fatal("no failpoint killed a commit that wrote bucket deltas")
	}
	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("h5ls", "-r", path).CombinedOutput(); err == nil {
		t.Logf("after the crashes, generation %d, h5ls -r:\n%s", st.Generation, out)
	} else if _, lerr := exec.LookPath("h5ls"); lerr == nil {
		t.Fatalf("h5ls on the recovered file: %v\n%s", err, out)
	}
}

// expectReady waits for the child's ready line and checks that it loaded
// the state the previous round verified.
func expectReady(t *testing.T, c *child, want uint64) uint64 {
	t.Helper()
	line, ok := <-c.lines
	if !ok {
		c.wait(t)
		t.Fatalf("child exited before ready:\n%s", c.stderr)
	}
	word, lsn := parseLine(t, line)
	if word != "ready" || lsn != want {
		t.Fatalf("child said %q, want ready %d", line, want)
	}
	return lsn
}

// verifyAfterCrash opens the store the child left and compares it with the
// model. It returns the loaded lsn and whether Open had to recover.
func verifyAfterCrash(t *testing.T, path string, model *workload, lastAck uint64, asReader bool) (uint64, bool) {
	t.Helper()
	var (
		b         port.Loader
		recovered bool
		closeFn   func() error
		check     func() error
	)
	if asReader {
		r, err := OpenReader(path, ReaderOptions{})
		if err != nil {
			t.Fatalf("open reader after kill: %v", err)
		}
		b, closeFn, check = r, r.Close, func() error { return checkState(r.st) }
	} else {
		s, err := Open(path, workloadOptions())
		if err != nil {
			t.Fatalf("open after kill: %v", err)
		}
		b, closeFn, check = s, s.Close, s.Check
		recovered = s.Stats().Recovered
	}
	meta, _, ok, err := b.LoadMeta()
	if err != nil {
		t.Fatalf("load after kill: %v", err)
	}
	var lsn uint64
	if ok {
		lsn = meta.CheckpointLSN
	}
	switch {
	case lsn < lastAck:
		t.Fatalf("LOST an acknowledged commit: loaded lsn %d, last acknowledged %d", lsn, lastAck)
	case lsn > lastAck+1:
		t.Fatalf("loaded lsn %d, but only %d was in flight", lsn, lastAck+1)
	}
	if err := model.advanceTo(lsn); err != nil {
		t.Fatal(err)
	}
	if err := verifyState(b, model); err != nil {
		t.Fatalf("state after kill differs from checkpoint %d: %v", lsn, err)
	}
	if err := check(); err != nil {
		t.Fatalf("check after kill: %v", err)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	return lsn, recovered
}
