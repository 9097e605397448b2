package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// The structs shared with the kernel have the sizes of linux/aio_abi.h.
func TestKernelStructSizes(t *testing.T) {
	if got := unsafe.Sizeof(iocb{}); got != 64 {
		t.Errorf("iocb: %d bytes, want 64", got)
	}
	if got := unsafe.Sizeof(ioEvent{}); got != 32 {
		t.Errorf("io_event: %d bytes, want 32", got)
	}
}

// openAIO opens f as an aioFile, skipping the test when the kernel refuses
// an AIO context (a seccomp filter, fs.aio-max-nr).
func openAIO(t *testing.T, f *os.File) *aioFile {
	t.Helper()
	a, err := newAIOFile(f)
	if err != nil {
		f.Close()
		t.Skipf("no AIO context: %v", err)
	}
	return a
}

// TestAIOFile: an aioFile starts datasyncs and reports their results, and
// closes with one in flight.
func TestAIOFile(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	a := openAIO(t, f)
	for i := range 3 {
		if _, err := a.WriteAt(bytes.Repeat([]byte{byte(i)}, 4096), int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		if err := a.StartDatasync(); err != nil {
			t.Fatal(err)
		}
		if err := a.WaitDatasync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.StartDatasync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // with a request in flight
		t.Fatal(err)
	}
}

// TestAIOFileUnsupported: a file that cannot be synced (a pipe) has its
// request refused as unsupported, which makes the Log stop trying.
func TestAIOFileUnsupported(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := openAIO(t, r)
	defer a.Close()
	err = a.StartDatasync()
	if !errors.Is(err, syscall.EINVAL) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("StartDatasync on a pipe = %v, want EINVAL and ErrUnsupported", err)
	}
}

// TestOSFSSyncsAsync: the OS file system's files are aioFiles, unless the
// kernel refuses an AIO context — which a direct newAIOFile then confirms,
// so that a plain file where AIO works fails the test instead of skipping.
func TestOSFSSyncsAsync(t *testing.T) {
	dir := t.TempDir()
	f, err := OSFS().OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*aioFile); ok {
		return
	}
	g, err := os.OpenFile(filepath.Join(dir, "b"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	a := openAIO(t, g) // skips when the kernel refuses a context
	a.Close()
	t.Fatalf("OSFS opened a %T although the kernel grants AIO contexts", f)
}
