package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartCPUProfileFiles checks that each diagnostic variable makes its
// file, and that stopping writes it out.
func TestStartCPUProfileFiles(t *testing.T) {
	dir := t.TempDir()
	prof, tr := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "exec.trace")
	t.Setenv("CIDBENCH_CPUPROFILE", prof)
	t.Setenv("CIDBENCH_EXECTRACE", tr)
	stop, err := StartCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := range 1_000_000 {
		sum += i * i
	}
	_ = sum
	stop()
	for _, p := range []string{prof, tr} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
	}
}

// TestStartCPUProfileBadPath checks that an unwritable path is an error,
// not a silent run without the trace.
func TestStartCPUProfileBadPath(t *testing.T) {
	t.Setenv("CIDBENCH_CPUPROFILE", "")
	t.Setenv("CIDBENCH_EXECTRACE", filepath.Join(t.TempDir(), "missing", "exec.trace"))
	if stop, err := StartCPUProfile(); err == nil {
		stop()
		t.Fatal("no error for a trace path in a missing directory")
	}
}
