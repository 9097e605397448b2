package wal

import (
	"errors"
	"syscall"
)

// Datasync is fdatasync(2).
func (f osFile) Datasync() error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Allocate is fallocate(2), falling back to ftruncate where the file
// system does not support it (the zero fill that follows writes every
// block anyway).
func (f osFile) Allocate(size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP):
			return f.Truncate(size)
		}
		return err
	}
}

// mmapFile maps the file read-only and shared: records are written with
// pwrite, and the page cache keeps the mapping coherent with those writes.
func mmapFile(fd uintptr, offset int64, length int) ([]byte, error) {
	return syscall.Mmap(int(fd), offset, length, syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }

// lockFile takes an exclusive advisory lock (flock(2)) without waiting, so
// that a second writer, in this process or another, fails with ErrLocked.
func lockFile(fd uintptr) error {
	for {
		err := syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrLocked
		}
		return err
	}
}
