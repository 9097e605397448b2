package bench

import (
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
