//go:build !unix

package wal

import (
	"fmt"
	"os"
)

// The log needs mmap; on other platforms Open fails with ErrUnsupported.

func (f osFile) Datasync() error           { return f.Sync() }
func (f osFile) Allocate(size int64) error { return f.Truncate(size) }

func mmapFile(uintptr, int64, int) ([]byte, error) {
	return nil, fmt.Errorf("%w: memory-mapped files on this platform", ErrUnsupported)
}

func munmap([]byte) error { return nil }

func lockFile(uintptr) error { return nil }

func newOSFile(f *os.File) File { return osFile{f} }
