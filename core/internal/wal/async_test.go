package wal_test

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/cidstore/cidstore/core/internal/wal"
)

// opsCount returns how many of fs's ops are op.
func opsCount(fs *faultFS, op string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := 0
	for _, o := range fs.ops {
		if o == op {
			n++
		}
	}
	return n
}

// TestStartSyncIsCollected: a round StartSync starts is the one SyncTo,
// Sync, Truncate and Close wait for — one datasync, not two — and covers
// exactly what was appended before it.
func TestStartSyncIsCollected(t *testing.T) {
	fs, path, l, m := openFaultLog(t)
	syncs0 := opsCount(fs, "sync") // Open's

	_, last := appendN(t, l, m, 10)
	syncs := l.Stats().Syncs
	if !l.StartSync() {
		t.Fatal("StartSync = false on an idle log")
	}
	if got := opsCount(fs, "start"); got != 1 {
		t.Fatalf("%d starts, want 1", got)
	}
	if l.StartSync() { // the round is in flight
		t.Fatal("StartSync = true with a round in flight")
	}
	_, later := appendN(t, l, m, 5) // not covered by the round in flight
	if err := l.SyncTo(last); err != nil {
		t.Fatal(err)
	}
	if got := l.DurableLSN(); got != last {
		t.Fatalf("DurableLSN = %d, want %d (the started round's)", got, last)
	}
	if got := l.Stats().Syncs - syncs; got != 1 {
		t.Fatalf("%d syncs, want the started one", got)
	}
	if n := opsCount(fs, "wait"); n != 1 || opsCount(fs, "sync") != syncs0 {
		t.Fatalf("ops %v, want one start and one wait", fs.ops)
	}

	// Nothing to sync: true, and no round.
	if err := l.SyncTo(later); err != nil {
		t.Fatal(err)
	}
	starts := opsCount(fs, "start")
	if !l.StartSync() || opsCount(fs, "start") != starts {
		t.Fatal("StartSync with nothing appended started a round or refused")
	}

	// Many callers waiting: one collects, all see it.
	_, last = appendN(t, l, m, 20)
	syncs = l.Stats().Syncs
	if !l.StartSync() {
		t.Fatal("StartSync = false")
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = l.SyncTo(last - uint64(i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats().Syncs - syncs; got != 1 {
		t.Fatalf("%d syncs for 8 callers of a started round, want 1", got)
	}

	// Truncate collects a round in flight before its own.
	_, last = appendN(t, l, m, 10)
	if !l.StartSync() {
		t.Fatal("StartSync = false")
	}
	if err := l.Truncate(last - 3); err != nil {
		t.Fatal(err)
	}
	m.truncate(last - 3)
	if got := l.DurableLSN(); got != last {
		t.Fatalf("DurableLSN = %d after Truncate, want %d", got, last)
	}

	// Close collects one, and the log reopens with everything.
	appendN(t, l, m, 7)
	if !l.StartSync() {
		t.Fatal("StartSync = false")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if starts, waits := opsCount(fs, "start"), opsCount(fs, "wait"); starts != waits {
		t.Fatalf("%d rounds started, %d collected", starts, waits)
	}
	checkLog(t, openLog(t, path, wal.Options{}), m)
}

// TestStartSyncUnsupported: a file that cannot sync asynchronously makes
// StartSync report false once and never try again; syncs still work.
func TestStartSyncUnsupported(t *testing.T) {
	fs := newFaultFS()
	fs.set(func(fs *faultFS) { fs.startErr = fmt.Errorf("aio: %w", errors.ErrUnsupported) })
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize, FS: fs})
	m := &model{tail: 1}
	for range 3 {
		_, last := appendN(t, l, m, 10)
		if l.StartSync() {
			t.Fatal("StartSync = true on a file that cannot")
		}
		if err := l.SyncTo(last); err != nil {
			t.Fatal(err)
		}
		if l.DurableLSN() != last {
			t.Fatalf("DurableLSN = %d, want %d", l.DurableLSN(), last)
		}
	}
	if got := opsCount(fs, "start"); got != 1 {
		t.Fatalf("%d starts, want 1 (then no more tries)", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStartSyncFailureIsSticky: an error starting or completing a started
// round fails the log like a failed fdatasync.
func TestStartSyncFailureIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(*faultFS)
	}{
		{"start", func(fs *faultFS) { fs.startErr = syscall.EIO }},
		{"wait", func(fs *faultFS) { fs.syncErr = syscall.EIO }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, path, l, m := openFaultLog(t)
			_, synced := appendN(t, l, m, 10)
			if err := l.SyncTo(synced); err != nil {
				t.Fatal(err)
			}
			_, last := appendN(t, l, m, 10)
			fs.set(tc.inject)
			started := l.StartSync()
			if started != (tc.name == "wait") {
				t.Fatalf("StartSync = %v", started)
			}
			err := l.SyncTo(last)
			if !errors.Is(err, syscall.EIO) || !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("SyncTo = %v, want EIO and ErrFailed", err)
			}
			if l.DurableLSN() != synced {
				t.Fatalf("DurableLSN = %d after a failed round, want %d", l.DurableLSN(), synced)
			}
			fs.set(func(fs *faultFS) { fs.startErr, fs.syncErr = nil, nil })
			if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Append after a failed round = %v", err)
			}
			if l.StartSync() {
				t.Fatal("StartSync = true on a failed log")
			}
			if err := l.Close(); !errors.Is(err, syscall.EIO) {
				t.Fatalf("Close = %v, want the sticky EIO", err)
			}
			checkLog(t, openLog(t, path, wal.Options{}), m)
		})
	}
}

// TestStartSyncCrash: a process that dies with a round in flight loses
// nothing it appended (the records are in the page cache).
func TestStartSyncCrash(t *testing.T) {
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 30)
	l.StartSync()
	crash(t, l)
	checkLog(t, openLog(t, path, wal.Options{}), m)
}
