package bench

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestIOField(t *testing.T) {
	data := []byte("rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n")
	if got := ioField(data, "read_bytes:"); got != 4096 {
		t.Errorf("read_bytes %d", got)
	}
	if got := ioField(data, "write_bytes:"); got != 8192 {
		t.Errorf("write_bytes %d", got)
	}
	if got := ioField(data, "missing:"); got != -1 {
		t.Errorf("missing field %d, want -1", got)
	}
}

// IOBytes counts what this process writes to storage (the kernel counts a
// write when it dirties the page cache of a block-backed file system: the
// file goes beside the package, not to a TMPDIR that may be tmpfs).
func TestIOBytesCountsWrites(t *testing.T) {
	_, w0 := IOBytes()
	if w0 < 0 {
		t.Skip("/proc/self/io not readable here")
	}
	dir, err := os.MkdirTemp(".", "iotest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, w1 := IOBytes(); w1-w0 < 1<<20 {
		t.Fatalf("write_bytes grew by %d after writing 1 MiB", w1-w0)
	}
}

// MinorFaults counts the faults of memory the process touches first: a
// fresh anonymous mapping (not Go heap, which may reuse pages it already
// faulted in).
func TestMinorFaultsCountsFirstTouch(t *testing.T) {
	const size = 64 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	f0 := MinorFaults()
	if f0 < 0 {
		t.Skip("getrusage failed")
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	// 16 384 pages; 32 if the kernel backs the mapping with huge pages.
	if f1 := MinorFaults(); f1-f0 < 32 {
		t.Fatalf("%d minor faults after touching 16 384 fresh pages", f1-f0)
	}
}

func TestDiskstatsWritten(t *testing.T) {
	data := []byte("   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n" +
		" 254       0 vda 56688 15085 3069906 45905 490659 52429 35665904 184268 0 57148 243236\n" +
		" 254       1 vda1 10 0 80 1 20 0 400 2 0 3 4\n")
	for _, c := range []struct {
		major, minor uint32
		want         int64
	}{{254, 0, 35665904 * 512}, {254, 1, 400 * 512}, {7, 0, 0}, {8, 0, -1}} {
		if got := diskstatsWritten(data, c.major, c.minor); got != c.want {
			t.Errorf("%d:%d: got %d, want %d", c.major, c.minor, got, c.want)
		}
	}
	if got := diskstatsWritten([]byte(" 254 0 vda 1 2 3 4 5 6 x 8 9 10\n"), 254, 0); got != -1 {
		t.Errorf("unparsable sectors: got %d, want -1", got)
	}
}

// WrittenChars counts what the process passes to write calls, and the
// device holding a file counts it once it is synced (the device's count
// includes every other process's writes, so only a lower bound holds).
func TestWrittenCharsAndDeviceBytes(t *testing.T) {
	dir, err := os.MkdirTemp(".", "iotest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c0, d0 := WrittenChars(), DeviceWrittenBytes(dir)
	if c0 < 0 {
		t.Skip("/proc/self/io not readable here")
	}
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i) | 1 // not zeros: nothing may skip them
	}
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	if c1 := WrittenChars(); c1-c0 < 1<<20 {
		t.Errorf("wchar grew by %d after writing 1 MiB", c1-c0)
	}
	if d0 < 0 {
		t.Logf("%s is not on a device listed in /proc/diskstats", dir)
		return
	}
	if d1 := DeviceWrittenBytes(dir); d1-d0 < 1<<20 {
		t.Errorf("device bytes grew by %d after writing and syncing 1 MiB", d1-d0)
	}
}

// DatasetRSSBytes starts the peak afresh: memory touched and released
// before it no longer counts in PeakRSSBytes.
func TestDatasetRSSResetsPeak(t *testing.T) {
	const size = 256 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	if err := syscall.Munmap(b); err != nil {
		t.Fatal(err)
	}
	if PeakRSSBytes()-RSSBytes() < size/2 {
		t.Skip("the peak did not record the mapping")
	}
	rss := DatasetRSSBytes()
	if peak := PeakRSSBytes(); peak-rss > size/4 {
		t.Fatalf("peak %d MiB after the reset, RSS %d MiB: the released 256 MiB still count", peak>>20, rss>>20)
	}
}
