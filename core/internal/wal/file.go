package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// FS is the file system a Log uses. Every write, sync and allocation goes
// through it (records and headers are written with File.WriteAt), so tests
// can wrap OSFS to inject short writes, EIO and ENOSPC. Only reads of
// records bypass it, through a read-only mapping of File.Fd.
type FS interface {
	// OpenFile opens name like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename atomically replaces newpath with oldpath, like os.Rename.
	Rename(oldpath, newpath string) error
	// Remove removes name, like os.Remove.
	Remove(name string) error
	// SyncDir makes the entries of directory dir durable (fsync on the
	// directory), so that a created or renamed file survives a crash.
	SyncDir(dir string) error
}

// File is an open log file.
type File interface {
	io.ReaderAt
	// WriteAt writes like io.WriterAt; a short count with a nil error is
	// treated as io.ErrShortWrite.
	io.WriterAt
	io.Closer
	// Datasync flushes the file's data and the metadata needed to read it
	// back (fdatasync(2)).
	Datasync() error
	// Allocate reserves disk space for the first size bytes, extending the
	// file (fallocate(2)), so that a full disk fails here and not later.
	Allocate(size int64) error
	// Size returns the file's size in bytes.
	Size() (int64, error)
	// Fd returns the descriptor that the Log maps (read-only) and locks.
	Fd() uintptr
}

// AsyncSyncer is a File that can also start a Datasync and wait for it
// later (Linux AIO: aio_linux.go), so that the appender can overlap the
// sync with other work without waking a goroutine for it. The Log keeps at
// most one in flight.
type AsyncSyncer interface {
	File
	// StartDatasync starts a Datasync without waiting for it. An error
	// wrapping errors.ErrUnsupported means the file cannot sync
	// asynchronously (the Log then stops trying); nothing was started.
	StartDatasync() error
	// WaitDatasync waits for the started Datasync and returns its result.
	WaitDatasync() error
}

// OSFS returns the FS of the operating system.
func OSFS() FS { return osFS{} }

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// osFile adds Datasync and Allocate (file_<os>.go) to *os.File.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// writeFull writes all of p at off, turning a short write without an error
// into io.ErrShortWrite.
func writeFull(f File, p []byte, off int64) error {
	n, err := f.WriteAt(p, off)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write %d bytes at offset %d: %w", len(p), off, err)
	}
	return nil
}
