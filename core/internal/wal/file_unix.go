//go:build unix && !linux

package wal

import (
	"errors"
	"os"
	"syscall"
)

// Datasync falls back to fsync(2) where fdatasync is not available. On
// darwin fsync does not flush the drive cache (F_FULLFSYNC would): the
// project runs on Linux, where file_linux.go uses fdatasync.
func (f osFile) Datasync() error { return f.Sync() }

// Allocate extends the file with ftruncate; the zero fill that follows
// reserves the blocks.
func (f osFile) Allocate(size int64) error { return f.Truncate(size) }

func mmapFile(fd uintptr, offset int64, length int) ([]byte, error) {
	return syscall.Mmap(int(fd), offset, length, syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }

func lockFile(fd uintptr) error {
	err := syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

func newOSFile(f *os.File) File { return osFile{f} }
