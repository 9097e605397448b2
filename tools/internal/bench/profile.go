package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Profiling hooks for one child run, off unless the environment names a
// file: CIDBENCH_CPUPROFILE profiles the whole child, CIDBENCH_HEAPPROFILE
// takes a heap profile right after W1's insert phase (the memory peak).

// StartCPUProfile starts a CPU profile if CIDBENCH_CPUPROFILE is set and
// returns the function that stops it.
func StartCPUProfile() (stop func(), err error) {
	path := os.Getenv("CIDBENCH_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeHeapProfile() error {
	path := os.Getenv("CIDBENCH_HEAPPROFILE")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
