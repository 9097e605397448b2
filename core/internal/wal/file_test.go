package wal_test

import (
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/cidstore/cidstore/core/internal/wal"
)

// faultFS wraps the OS file system and injects the faults its fields name.
type faultFS struct {
	wal.FS
	mu         sync.Mutex
	allocErr   error                       // Allocate returns it
	syncErr    error                       // Datasync and WaitDatasync return it
	startErr   error                       // StartDatasync returns it (starting nothing)
	shortWrite func(off int64, n int) bool // WriteAt writes half and reports no error
	writeErr   func(off int64, n int) error
	syncs      int
	ops        []string // "sync", "header" (a header write), "write"
}

func newFaultFS() *faultFS { return &faultFS{FS: wal.OSFS()} }

// openFaultLog opens a new log of smallSize on a new faultFS, with its
// model.
func openFaultLog(t testing.TB) (*faultFS, string, *wal.Log, *model) {
	t.Helper()
	fs := newFaultFS()
	path := newPath(t)
	return fs, path, openLog(t, path, wal.Options{SizeBytes: smallSize, FS: fs}), &model{tail: 1}
}

func (fs *faultFS) set(f func(*faultFS)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f(fs)
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

type faultFile struct {
	wal.File
	fs *faultFS
}

func (f *faultFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	err := f.fs.allocErr
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Allocate(size)
}

func (f *faultFile) Datasync() error {
	f.fs.mu.Lock()
	err := f.fs.syncErr
	f.fs.syncs++
	f.fs.ops = append(f.fs.ops, "sync")
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Datasync()
}

// StartDatasync and WaitDatasync make every faultFile an AsyncSyncer: over
// the wrapped file's own when it is one, else syncing at the start. The
// ops name them "start" and "wait".
func (f *faultFile) StartDatasync() error {
	f.fs.mu.Lock()
	err := f.fs.startErr
	f.fs.ops = append(f.fs.ops, "start")
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	if a, ok := f.File.(wal.AsyncSyncer); ok {
		return a.StartDatasync()
	}
	return f.File.Datasync()
}

func (f *faultFile) WaitDatasync() error {
	var err error
	if a, ok := f.File.(wal.AsyncSyncer); ok {
		err = a.WaitDatasync() // the request in flight ends either way
	}
	f.fs.mu.Lock()
	if f.fs.syncErr != nil {
		err = f.fs.syncErr
	}
	f.fs.syncs++
	f.fs.ops = append(f.fs.ops, "wait")
	f.fs.mu.Unlock()
	return err
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	short, werr := f.fs.shortWrite, f.fs.writeErr
	if off < wal.HeaderSizeBytes && len(p) <= wal.HeaderSizeBytes {
		f.fs.ops = append(f.fs.ops, "header")
	} else {
		f.fs.ops = append(f.fs.ops, "write")
	}
	f.fs.mu.Unlock()
	if werr != nil {
		if err := werr(off, len(p)); err != nil {
			return 0, err
		}
	}
	if short != nil && short(off, len(p)) {
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func TestCreateENOSPC(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*faultFS)
		want   error
	}{
		{"fallocate", func(fs *faultFS) { fs.allocErr = syscall.ENOSPC }, syscall.ENOSPC},
		{"zero fill", func(fs *faultFS) {
			fs.writeErr = func(_ int64, n int) error {
				if n > wal.HeaderSizeBytes { // the zero fill, not the header
					return syscall.ENOSPC
				}
				return nil
			}
		}, syscall.ENOSPC},
		{"short write", func(fs *faultFS) { fs.shortWrite = func(int64, int) bool { return true } }, io.ErrShortWrite},
		{"fsync", func(fs *faultFS) { fs.syncErr = syscall.EIO }, syscall.EIO},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultFS()
			fs.set(tc.inject)
			path := newPath(t)
			_, err := wal.Open(path, wal.Options{SizeBytes: 4 * smallSize, FS: fs})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			for _, p := range []string{path, path + ".tmp"} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s left behind: %v", p, err)
				}
			}
			// Once the disk has room again, Open creates the log.
			l := openLog(t, path, wal.Options{SizeBytes: 4 * smallSize})
			if l.NextLSN() != 1 {
				t.Fatalf("NextLSN = %d", l.NextLSN())
			}
		})
	}
}

func TestFsyncErrorIsSticky(t *testing.T) {
	fs, path, l, m := openFaultLog(t)
	_, last := appendN(t, l, m, 10)
	if err := l.SyncTo(last); err != nil {
		t.Fatal(err)
	}
	_, last = appendN(t, l, m, 10)
	fs.set(func(fs *faultFS) { fs.syncErr = syscall.EIO })
	err := l.SyncTo(last)
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("SyncTo = %v, want EIO and ErrFailed", err)
	}
	if l.DurableLSN() != 10 {
		t.Fatalf("DurableLSN = %d after a failed sync, want 10", l.DurableLSN())
	}
	// The fault is gone, but the log stays failed: the kernel may have
	// dropped the pages it could not write.
	fs.set(func(fs *faultFS) { fs.syncErr = nil })
	if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after failed sync = %v", err)
	}
	if err := l.Sync(); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Sync after failed sync = %v", err)
	}
	if err := l.Truncate(5); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Truncate after failed sync = %v", err)
	}
	if err := l.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close = %v, want the sticky EIO", err)
	}
	// Reopening recovers what reached the file.
	checkLog(t, openLog(t, path, wal.Options{}), m)
}

func TestConcurrentSyncersAllSeeFailure(t *testing.T) {
	fs := newFaultFS()
	l := openLog(t, newPath(t), wal.Options{SizeBytes: smallSize, FS: fs})
	m := &model{tail: 1}
	_, last := appendN(t, l, m, 100)
	fs.set(func(fs *faultFS) { fs.syncErr = syscall.EIO })
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = l.SyncTo(last - uint64(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("syncer %d: %v", i, err)
		}
	}
	if err := l.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close = %v, want the sticky EIO", err)
	}
}

func TestTruncateFaultsKeepTail(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*faultFS)
		want   error
		// landed: the new header reached the page cache, so a reopen sees
		// the truncation (either outcome is valid: the records were
		// checkpointed; the caller just cannot know which it got).
		landed bool
	}{
		{"short header write", func(fs *faultFS) { fs.shortWrite = func(off int64, _ int) bool { return off < wal.HeaderSizeBytes } }, io.ErrShortWrite, false},
		{"header write EIO", func(fs *faultFS) {
			fs.writeErr = func(int64, int) error { return syscall.EIO }
		}, syscall.EIO, false},
		{"fsync EIO", func(fs *faultFS) { fs.syncErr = syscall.EIO }, syscall.EIO, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, path, l, m := openFaultLog(t)
			appendN(t, l, m, int(l.CapacityRecords()))
			fs.set(tc.inject)
			err := l.Truncate(100)
			if !errors.Is(err, tc.want) || !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Truncate = %v, want %v", err, tc.want)
			}
			if l.TailLSN() != 1 || l.FreeRecords() != 0 {
				t.Fatalf("tail %d free %d after a failed Truncate: space must not be reused", l.TailLSN(), l.FreeRecords())
			}
			if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Append = %v", err)
			}
			if err := l.Close(); !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Close = %v", err)
			}
			// A torn or unwritten header copy falls back to the other one.
			if tc.landed {
				m.truncate(100)
			}
			checkLog(t, openLog(t, path, wal.Options{}), m)
		})
	}
}

func TestOpenSyncFailure(t *testing.T) {
	fs := newFaultFS()
	path := newPath(t)
	l := openLog(t, path, wal.Options{SizeBytes: smallSize})
	m := &model{tail: 1}
	appendN(t, l, m, 10)
	crash(t, l)
	fs.set(func(fs *faultFS) { fs.syncErr = syscall.EIO })
	if _, err := wal.Open(path, wal.Options{FS: fs}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Open = %v, want EIO", err)
	}
	checkLog(t, openLog(t, path, wal.Options{}), m)
}

// TestSyncOrdering checks the orderings that only a power failure would
// expose: within one fdatasync, records and header reach the disk in any
// order, so a header that claims records are synced must be written after
// a sync that covered them.
func TestSyncOrdering(t *testing.T) {
	fs, path, l, m := openFaultLog(t)
	appendN(t, l, m, 10)
	crash(t, l)
	ops := func() []string {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		o := fs.ops
		fs.ops = nil
		return o
	}
	ops()
	l = openLog(t, path, wal.Options{FS: fs})
	// Open: flush the records a crashed process left in the page cache,
	// then write the header that says they are synced, then sync it.
	if got, want := ops(), []string{"sync", "header", "sync"}; !slices.Equal(got, want) {
		t.Fatalf("Open did %q, want %q", got, want)
	}
	appendN(t, l, m, 10)
	if got, want := ops(), []string{"write"}; !slices.Equal(got, want) {
		t.Fatalf("Append did %q, want %q", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Close: records first, then the clean header.
	if got, want := ops(), []string{"sync", "header", "sync"}; !slices.Equal(got, want) {
		t.Fatalf("Close did %q, want %q", got, want)
	}
}

func TestAppendWriteFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*faultFS)
		want   error
	}{
		{"short write", func(fs *faultFS) { fs.shortWrite = func(off int64, _ int) bool { return off >= wal.HeaderSizeBytes } }, io.ErrShortWrite},
		{"ENOSPC", func(fs *faultFS) {
			fs.writeErr = func(off int64, _ int) error {
				if off >= wal.HeaderSizeBytes {
					return syscall.ENOSPC
				}
				return nil
			}
		}, syscall.ENOSPC},
		{"EIO", func(fs *faultFS) { fs.writeErr = func(int64, int) error { return syscall.EIO } }, syscall.EIO},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, path, l, m := openFaultLog(t)
			_, last := appendN(t, l, m, 10)
			if err := l.SyncTo(last); err != nil {
				t.Fatal(err)
			}
			fs.set(tc.inject)
			if _, _, err := l.Append(m.batch(100)); !errors.Is(err, tc.want) || !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Append = %v, want %v", err, tc.want)
			}
			if l.NextLSN() != 11 {
				t.Fatalf("NextLSN = %d after a failed Append", l.NextLSN())
			}
			fs.set(func(fs *faultFS) { fs.shortWrite, fs.writeErr = nil, nil })
			if _, _, err := l.Append(m.batch(1)); !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Append after a failed write = %v, want ErrFailed", err)
			}
			if err := l.Sync(); !errors.Is(err, wal.ErrFailed) {
				t.Fatalf("Sync after a failed write = %v, want ErrFailed", err)
			}
			if err := l.Close(); !errors.Is(err, tc.want) {
				t.Fatalf("Close = %v", err)
			}
			// What was acknowledged survives; a half-written batch reads as
			// a torn tail.
			l = openLog(t, path, wal.Options{})
			if l.NextLSN() < 11 {
				t.Fatalf("NextLSN = %d after reopen, lost acknowledged records", l.NextLSN())
			}
			m.appended(int(l.NextLSN()-1) - len(m.ids)) // the part of the failed batch that landed
			checkLog(t, l, m)
		})
	}
}
