package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// blockingFS blocks the Datasync calls made while armed until release is
// closed, and counts them.
type blockingFS struct {
	FS
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
	syncs   int
}

func (fs *blockingFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return openWrapped(fs.FS, name, flag, perm, func(f File) File { return &blockingFile{File: f, fs: fs} })
}

// openWrapped opens name on fs and returns the file wrapped by wrap: the
// OpenFile of the test file systems here.
func openWrapped(fs FS, name string, flag int, perm os.FileMode, wrap func(File) File) (File, error) {
	f, err := fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return wrap(f), nil
}

type blockingFile struct {
	File
	fs *blockingFS
}

func (f *blockingFile) Datasync() error {
	f.fs.mu.Lock()
	armed := f.fs.armed
	if armed {
		f.fs.syncs++
	}
	f.fs.mu.Unlock()
	if armed {
		select {
		case f.fs.entered <- struct{}{}:
		default:
		}
		<-f.fs.release
	}
	return f.File.Datasync()
}

func testRecord(i uint64) Record {
	return Record{Op: OpInsert, Version: VersionCurrent, Nanos: i, KeyHigh: i, KeyLow: 1, ValueHigh: 2, ValueLow: i}
}

func TestGroupCommitSharesSyncs(t *testing.T) {
	fs := &blockingFS{FS: OSFS(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	l, err := Open(filepath.Join(t.TempDir(), "g.wal"), Options{SizeBytes: MinSizeBytes, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}()
	batch := func() (last uint64) {
		recs := make([]Record, 64)
		for i := range recs {
			recs[i] = testRecord(uint64(i))
		}
		_, last, err := l.Append(recs)
		if err != nil {
			t.Fatal(err)
		}
		return last
	}
	first := batch() // LSN 1..64
	fs.mu.Lock()
	fs.armed = true
	fs.mu.Unlock()

	const callers = 32
	errs := make(chan error, callers+1)
	go func() { errs <- l.SyncTo(first) }() // the leader: syncs 1..64, blocked in Datasync
	<-fs.entered
	second := batch() // 65..128, appended while the first sync is in flight
	for i := range callers {
		lsn := 1 + uint64(i)*(second-1)/callers // spread over 1..128
		go func() { errs <- l.SyncTo(lsn) }()
	}
	// Wait until every caller is parked behind the in-flight sync.
	for {
		l.sm.Lock()
		n := l.waiters
		l.sm.Unlock()
		if n == callers {
			break
		}
		runtime.Gosched()
	}
	close(fs.release)
	for range callers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	fs.mu.Lock()
	syncs := fs.syncs
	fs.mu.Unlock()
	// One sync for the leader's 1..64, one shared by all callers above 64.
	if syncs != 2 {
		t.Fatalf("%d syncs for %d SyncTo calls, want 2", syncs, callers+1)
	}
	if l.DurableLSN() != second {
		t.Fatalf("DurableLSN = %d, want %d", l.DurableLSN(), second)
	}
}

// slowStartFS's files are AsyncSyncers whose StartDatasync waits for
// release once entered is signalled (the wrapped file syncs at the start).
type slowStartFS struct {
	FS
	entered chan struct{}
	release chan struct{}
}

func (fs *slowStartFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return openWrapped(fs.FS, name, flag, perm, func(f File) File { return &slowStartFile{File: f, fs: fs} })
}

type slowStartFile struct {
	File
	fs *slowStartFS
}

func (f *slowStartFile) StartDatasync() error {
	f.fs.entered <- struct{}{}
	<-f.fs.release
	return f.Datasync()
}

func (f *slowStartFile) WaitDatasync() error { return nil }

// TestWaiterDuringStartCollects: a caller that comes while a round is
// being started finds nothing to collect yet and waits; once the round is
// in flight it must collect it, even if the starter never waits for it.
func TestWaiterDuringStartCollects(t *testing.T) {
	fs := &slowStartFS{FS: OSFS(), entered: make(chan struct{}), release: make(chan struct{})}
	l, err := Open(filepath.Join(t.TempDir(), "w.wal"), Options{SizeBytes: MinSizeBytes, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	stuck := true // then Close would wait for the stuck SyncTo: leak the log
	defer func() {
		if stuck {
			return
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}()
	_, last, err := l.Append([]Record{testRecord(1), testRecord(2)})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan bool)
	go func() { started <- l.StartSync() }()
	<-fs.entered // the round is being started: syncing, not yet in flight
	synced := make(chan error)
	go func() { synced <- l.SyncTo(last) }()
	for { // until the caller waits on cond
		l.sm.Lock()
		n := l.waiters
		l.sm.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	close(fs.release)
	if !<-started {
		t.Fatal("StartSync = false")
	}
	select {
	case err := <-synced:
		stuck = false
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SyncTo still waits for a round in flight that nobody collects")
	}
	if l.DurableLSN() != last {
		t.Fatalf("DurableLSN = %d, want %d", l.DurableLSN(), last)
	}
}

func TestSyncedLSNInHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.wal")
	l, err := Open(path, Options{SizeBytes: MinSizeBytes})
	if err != nil {
		t.Fatal(err)
	}
	l.hdrInterval = 0 // every sync round rewrites the header
	recs := []Record{testRecord(1), testRecord(2), testRecord(3)}
	for range 3 {
		_, last, err := l.Append(recs)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.SyncTo(last); err != nil {
			t.Fatal(err)
		}
	}
	// The header written by the third round holds what the second synced.
	if l.hdr.synced != 6 || l.hdr.head != 10 {
		t.Fatalf("header synced %d head %d, want 6 and 10", l.hdr.synced, l.hdr.head)
	}
	capacity := l.ring.capacity
	if err := l.Crash(); err != nil {
		t.Fatal(err)
	}
	// Damage to record 9 (synced, but not yet recorded as synced) reads as
	// a torn tail; damage to record 5 (<= the header's synced LSN) is
	// corruption even though nothing valid follows it.
	zero := make([]byte, RecordSize)
	patch := func(lsn uint64) {
		t.Helper()
		f, err := OSFS().OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFull(f, zero, HeaderSizeBytes+int64((lsn-1)%capacity)*RecordSize); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	patch(9)
	l, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with torn record 9: %v", err)
	}
	if l.NextLSN() != 9 {
		t.Fatalf("NextLSN = %d, want 9", l.NextLSN())
	}
	if err := l.Crash(); err != nil {
		t.Fatal(err)
	}
	// Open rewrote the header with synced = 8; damage 8 (the last record).
	patch(8)
	_, err = Open(path, Options{})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.LSN != 8 {
		t.Fatalf("Open = %v, want corrupt record at LSN 8", err)
	}
}

func TestHeaderCopies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.wal")
	l, err := Open(path, Options{SizeBytes: MinSizeBytes})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append([]Record{testRecord(1), testRecord(2)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// After Open (seq 2), Truncate (3) and Close (4): copy 0 holds seq 4
	// (clean, tail 2), copy 1 seq 3 (unclean, tail 2).
	readCopies := func() [2][]byte {
		f, err := OSFS().OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		page := make([]byte, 2*headerCopyStride)
		if _, err := f.ReadAt(page, 0); err != nil {
			t.Fatal(err)
		}
		return [2][]byte{page[:headerCopySize], page[headerCopyStride : headerCopyStride+headerCopySize]}
	}
	c := readCopies()
	h0, err0 := decodeHeader(c[0])
	h1, err1 := decodeHeader(c[1])
	if err0 != nil || err1 != nil || h0.seq != 4 || h1.seq != 3 || !h0.clean || h1.clean || h0.tail != 2 || h1.tail != 2 {
		t.Fatalf("copies: %+v %v / %+v %v", h0, err0, h1, err1)
	}
	writeCopy := func(i int, b []byte) {
		t.Helper()
		f, err := OSFS().OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFull(f, b, int64(i)*headerCopyStride); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	good0 := append([]byte(nil), c[0]...)

	// A torn newest copy falls back to the older one.
	torn := append([]byte(nil), good0...)
	torn[50] ^= 1
	writeCopy(0, torn)
	l, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with copy 0 torn: %v", err)
	}
	if l.TailLSN() != 2 || l.NextLSN() != 3 {
		t.Fatalf("tail %d next %d", l.TailLSN(), l.NextLSN())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Both copies bad: corrupt, not repairable.
	writeCopy(0, make([]byte, headerCopySize))
	writeCopy(1, make([]byte, headerCopySize))
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with no valid header = %v, want ErrCorrupt", err)
	}
	if _, err := Repair(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair with no valid header = %v, want ErrCorrupt", err)
	}

	// A newer format version is refused as unsupported, not corrupt.
	h := h0
	newer := make([]byte, headerCopySize)
	h.encode(newer)
	newer[8] = formatVersion + 1
	binary.LittleEndian.PutUint32(newer[124:], crc32.Checksum(newer[:124], castagnoli))
	writeCopy(0, newer)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a newer format = %v, want ErrUnsupported", err)
	}
}

func TestPickHeaderRejectsInconsistentFields(t *testing.T) {
	base := header{fileSize: uint64(MinSizeBytes), capacity: uint64(MinSizeBytes-HeaderSizeBytes) / RecordSize, seq: 1, tail: 5, head: 9, synced: 4}
	tests := []struct {
		name string
		edit func(*header)
		ok   bool
	}{
		{"valid", func(*header) {}, true},
		{"tail 0", func(h *header) { h.tail = 0 }, false},
		{"head before tail", func(h *header) { h.head = 4 }, false},
		{"more than capacity", func(h *header) { h.head = h.tail + h.capacity + 1 }, false},
		{"synced at head", func(h *header) { h.synced = 9 }, false},
		{"capacity mismatch", func(h *header) { h.capacity++ }, false},
		{"file too small", func(h *header) { h.fileSize = 4096; h.capacity = 0 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := base
			tc.edit(&h)
			b := make([]byte, headerCopySize)
			h.encode(b)
			got, err := decodeHeader(b)
			if (err == nil) != tc.ok {
				t.Fatalf("decodeHeader = %+v, %v; want ok=%v", got, err, tc.ok)
			}
			if tc.ok && got != h {
				t.Fatalf("round trip %+v, want %+v", got, h)
			}
		})
	}
}

func TestRecordCRCHasNoAllocations(t *testing.T) {
	b := make([]byte, RecordSize)
	r := testRecord(3)
	if n := testing.AllocsPerRun(100, func() {
		r.Encode(b, 77)
		if _, err := DecodeRecord(b, 77); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per encode+decode", n)
	}
}
