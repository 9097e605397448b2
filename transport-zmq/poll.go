package zmqserver

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// fdWaiter parks a socket's owner goroutine in Go's netpoller until the
// socket's ZMQ_FD signals that its state may have changed, instead of in a
// blocking cgo call (NOTES-ZMQ: 10–30 % less CPU, steadier p99).
//
// ZMQ_FD is edge-triggered and only says "look at ZMQ_EVENTS": wait calls
// ready before every park, and ready must re-check ZMQ_EVENTS (and any other
// wake-up condition). Other goroutines wake the owner with wake after making
// their condition visible; wait re-arms before calling ready, so no wake-up
// is lost.
//
// The descriptor belongs to libzmq: the waiter polls a dup of it (same open
// file description, so the same readiness) and closes only the dup.
type fdWaiter struct {
	f  *os.File
	rc syscall.RawConn
}

// longAgo is a deadline in the past: setting it interrupts a parked wait.
var longAgo = time.Unix(1, 0)

func newFDWaiter(sock *zmq.Socket) (*fdWaiter, error) {
	fd, err := sock.GetFd()
	if err != nil {
		return nil, fmt.Errorf("get zmq fd: %w", err)
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, fmt.Errorf("dup zmq fd %d: %w", fd, err)
	}
	syscall.CloseOnExec(dup)
	// libzmq's signaler fd is non-blocking, so os.NewFile registers the dup
	// with the netpoller. Deadlines work only then; check it here rather
	// than spin later.
	f := os.NewFile(uintptr(dup), "zmq-signaler")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return nil, errors.Join(fmt.Errorf("zmq fd %d is not pollable: %w", fd, err), f.Close())
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("zmq fd %d: %w", fd, err), f.Close())
	}
	return &fdWaiter{f: f, rc: rc}, nil
}

// wait parks until ready returns true (nil), deadline passes or wake is
// called (os.ErrDeadlineExceeded). A zero deadline means none. ready runs on
// the calling goroutine, so it may use the socket.
func (w *fdWaiter) wait(deadline time.Time, ready func() bool) error {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	return w.rc.Read(func(uintptr) bool { return ready() })
}

// wake interrupts a parked wait; safe from any goroutine, also after close.
func (w *fdWaiter) wake() { _ = w.f.SetReadDeadline(longAgo) }

func (w *fdWaiter) close() error { return w.f.Close() }
