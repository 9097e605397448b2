package wal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// aioFile is an osFile that can also start an fdatasync and collect it
// later, through a Linux AIO context of one request (IOCB_CMD_FDSYNC,
// which every file system supports since Linux 4.18: the kernel runs
// vfs_fsync_range(datasync) in a worker). The writer submits the sync
// and applies its batch while the kernel syncs; no goroutine has to be
// scheduled for the sync to start, which on a busy 2-core machine took
// as long as the sync itself (DESIGN-NOTES "Next steps", step 17).
//
// At most one request is in flight: the Log's sync leader owns it from
// StartDatasync until WaitDatasync returns. cb and ev live in the heap
// object, which Go never moves, for as long as the kernel uses them.
type aioFile struct {
	osFile
	ctx uintptr // aio_context_t
	cb  iocb
	ev  ioEvent
}

// iocb is struct iocb of linux/aio_abi.h (64 bytes). key and rwFlags,
// whose order depends on the byte order, are both zero here.
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   int32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event of linux/aio_abi.h.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

const iocbCmdFdsync = 3 // IOCB_CMD_FDSYNC

// newOSFile returns f with asynchronous datasyncs when the kernel gives it
// an AIO context, else the plain osFile (io_setup may be refused by a
// seccomp filter or by fs.aio-max-nr).
func newOSFile(f *os.File) File {
	if a, err := newAIOFile(f); err == nil {
		return a
	}
	return osFile{f}
}

// newAIOFile returns f with an AIO context of one request.
func newAIOFile(f *os.File) (*aioFile, error) {
	var ctx uintptr
	if _, _, e := syscall.Syscall(syscall.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, fmt.Errorf("io_setup: %w", e)
	}
	return &aioFile{osFile: osFile{f}, ctx: ctx}, nil
}

// StartDatasync submits an fdatasync of the file and returns without
// waiting for it. An error wrapping errors.ErrUnsupported means this
// kernel or file cannot sync asynchronously; nothing was submitted.
func (a *aioFile) StartDatasync() error {
	a.cb = iocb{opcode: iocbCmdFdsync, fildes: uint32(a.Fd())}
	cbs := [1]uintptr{uintptr(unsafe.Pointer(&a.cb))}
	for {
		n, _, e := syscall.Syscall(syscall.SYS_IO_SUBMIT, a.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EINVAL || e == syscall.ENOSYS || e == syscall.EOPNOTSUPP:
			return fmt.Errorf("%w: aio fdatasync: %w", errors.ErrUnsupported, e)
		case e != 0:
			return fmt.Errorf("aio fdatasync: %w", e)
		case n != 1:
			return fmt.Errorf("aio fdatasync: io_submit took %d of 1 requests", n)
		}
		return nil
	}
}

// WaitDatasync waits for the fdatasync StartDatasync submitted and returns
// its result.
func (a *aioFile) WaitDatasync() error {
	for {
		n, _, e := syscall.Syscall6(syscall.SYS_IO_GETEVENTS, a.ctx, 1, 1, uintptr(unsafe.Pointer(&a.ev)), 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return fmt.Errorf("aio fdatasync: io_getevents: %w", e)
		case n != 1:
			continue // no timeout was given: only a signal ends the wait early
		case a.ev.res < 0:
			return syscall.Errno(-a.ev.res)
		}
		return nil
	}
}

// Close releases the AIO context (io_destroy waits for a request still in
// flight) and closes the file.
func (a *aioFile) Close() error {
	var err error
	if _, _, e := syscall.Syscall(syscall.SYS_IO_DESTROY, a.ctx, 0, 0); e != 0 {
		err = fmt.Errorf("io_destroy: %w", e)
	}
	return errors.Join(err, a.osFile.Close())
}
