//go:build linux || darwin || freebsd || netbsd || openbsd

package h5store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path, creating it. The kernel drops
// the lock when the process dies, which is what tells Open that HDF5 status
// flags on the file belong to a dead writer.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		cerr := f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.Join(fmt.Errorf("%w: %s", ErrLocked, path), cerr)
		}
		return nil, errors.Join(fmt.Errorf("lock %s: %w", path, err), cerr)
	}
	return f, nil
}
