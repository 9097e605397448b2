package zmqserver

import (
	"errors"
	"os"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// runPull owns the PULL socket: fire-and-forget mutations, decoded and
// executed inline, in the order received (one goroutine, so PUSH order is
// kept). There is no reply: a rejected message is counted with
// ObserveRejected("pull", code) and logged (rate-limited). libzmq's receive
// high-water mark (QueueDepth) pushes back on senders while a store call
// runs. A message is accepted as [payload] or ["", payload].
func (s *Server) runPull() {
	defer s.owners.Done()
	sock, w := s.pull, s.pullW
	h := s.newHandler()
	lim := newLogLimiter()
	var frames [3][]byte
	ready := func() bool {
		if s.closing.Load() {
			return true
		}
		ev, err := sock.GetEvents()
		return err != nil || ev&zmq.POLLIN != 0
	}
	for !s.closing.Load() {
		n := 0
		for ; n < recvBurst && !s.closing.Load(); n++ {
			nf, err := recvFrames(sock, &frames)
			if err != nil {
				if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
					lim.log(s.log, "zmqserver: pull receive", "err", err)
				}
				break
			}
			now := time.Now()
			var out outcome
			switch {
			case nf == 1:
				out = h.handle(frames[0], true)
			case nf == 2 && len(frames[0]) == 0:
				out = h.handle(frames[1], true)
			default:
				werr := errorf(codeBadRequest, "wrong frame count: %d frames, want [payload] or [\"\", payload]", nf)
				out = outcome{op: opUnknown, code: werr.code, err: werr}
			}
			if out.err != nil {
				s.obs.ObserveRejected("pull", out.code)
				lim.log(s.log, "zmqserver: pull message rejected",
					"code", out.code, "error", out.err.msg, "op", out.op.String(), "request_id", out.id)
			}
			s.observe(&out, now, false)
		}
		if n == recvBurst {
			continue
		}
		if err := w.wait(time.Time{}, ready); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			lim.log(s.log, "zmqserver: pull netpoll wait", "err", err)
			pollFallback(sock)
		}
	}
	if err := errors.Join(sock.Close(), w.close()); err != nil {
		s.log.Error("zmqserver: close pull", "err", err)
	}
}
