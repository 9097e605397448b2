package zmqserver

import (
	"errors"
	"os"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// The ROUTER side. One goroutine owns the socket (zmq sockets are not
// goroutine-safe): it receives, checks the envelope, hands the request to a
// worker, and sends the replies the workers hand back. Requests of one peer
// go to one worker (by a hash of the routing id), so a client's pipelined
// requests execute in the order it sent them, while different clients'
// mutations run concurrently and share WAL syncs. With Workers = -1 the
// owner executes requests itself (inline mode).
//
// Sends use ROUTER_MANDATORY + DONTWAIT: a reply to a peer that is gone
// (EHOSTUNREACH) or whose pipe is full (EAGAIN: it is not reading its
// replies) is dropped and counted, so one slow client cannot stall the
// others.

// job is one ROUTER request on its way from the owner to a worker and back.
type job struct {
	peer      []byte // routing id
	delim     bool   // the request carried an empty delimiter frame (REQ)
	payload   []byte
	size      int // len(payload), for MaxQueuedBytes
	received  time.Time
	shard     int
	contended bool // another request of the same worker was pending
	out       outcome
}

// recvBurst bounds how many messages the owner receives before it sends
// pending replies again.
const recvBurst = 64

func (s *Server) runRouter() {
	defer s.owners.Done()
	sock, w := s.router, s.routerW
	inline := s.cfg.Workers < 0
	// The owner's own handler: every request in inline mode, and in pool
	// mode the reads it answers itself (see readInline).
	h := s.newHandler()
	pending := make([]int, len(s.jobs)) // per worker: requests not yet answered
	inflight, inflightBytes := 0, 0
	var frames [3][]byte
	var closing bool
	waited := true // inline mode: a message received right after a wait did not queue
	lim := newLogLimiter()
	ready := func() bool {
		if len(s.results) > 0 || s.closing.Load() != closing {
			return true
		}
		if closing {
			return false
		}
		ev, err := sock.GetEvents()
		return err != nil || ev&zmq.POLLIN != 0
	}
	for {
		for more := s.results != nil; more; {
			select {
			case j := <-s.results:
				s.reply(j.peer, j.delim, &j.out, j.received, j.contended, lim)
				inflight--
				inflightBytes -= j.size
				pending[j.shard]--
				s.obs.SetQueueDepth(inflight)
			default:
				more = false
			}
		}
		closing = s.closing.Load()
		var deadline time.Time
		if closing {
			if inflight == 0 || !time.Now().Before(s.drainDeadline) {
				break
			}
			deadline = s.drainDeadline
		} else {
			n := 0
			for ; n < recvBurst; n++ {
				nf, err := recvFrames(sock, &frames)
				if err != nil {
					if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
						lim.log(s.log, "zmqserver: router receive", "err", err)
					}
					break
				}
				now := time.Now()
				peer, delim, payload, werr := routerEnvelope(frames[:min(nf, len(frames))], nf)
				switch {
				case werr != nil:
					out := outcome{op: opUnknown, code: werr.code, err: werr,
						reply: appendError(nil, versionCurrent, nil, false, werr)}
					s.reply(peer, delim, &out, now, false, lim)
				case inline:
					out := h.handle(payload, false)
					s.reply(peer, delim, &out, now, !waited, lim)
					waited = false
				case len(payload) > s.cfg.MaxFrameBytes:
					s.tooLarge(peer, delim, payload, now, lim)
				case pending[shardOf(peer, len(s.jobs))] == 0 && readInline(payload):
					// A read with nothing of its client's worker pending:
					// answering it here keeps the client's order and saves
					// the hand-off to a worker and back.
					out := h.handle(payload, false)
					s.reply(peer, delim, &out, now, false, lim)
				case inflight >= s.cfg.QueueDepth || (inflight > 0 && inflightBytes+len(payload) > s.cfg.MaxQueuedBytes):
					s.overloaded(peer, delim, payload, now, lim)
				default:
					shard := shardOf(peer, len(s.jobs))
					j := &job{peer: peer, delim: delim, payload: payload, size: len(payload), received: now,
						shard: shard, contended: pending[shard] > 0}
					pending[shard]++
					inflight++
					inflightBytes += j.size
					s.jobs[shard] <- j // never blocks: capacity QueueDepth >= inflight
					s.obs.SetQueueDepth(inflight)
				}
			}
			if n == recvBurst {
				continue // more may be queued: send replies, then receive again
			}
		}
		err := w.wait(deadline, ready)
		waited = true
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Not expected on Linux; degrade to zmq_poll rather than spin.
			lim.log(s.log, "zmqserver: router netpoll wait", "err", err)
			pollFallback(sock)
		}
	}

	for _, c := range s.jobs {
		close(c)
	}
	// The last replies are queued in libzmq; a short linger lets its I/O
	// thread write them out before the socket goes (bounded by the drain
	// deadline, and Term has a watchdog).
	if d := min(time.Until(s.drainDeadline), 250*time.Millisecond); d > 0 {
		_ = sock.SetLinger(d)
	}
	if err := errors.Join(sock.Close(), w.close()); err != nil {
		s.log.Error("zmqserver: close router", "err", err)
	}
	if inflight > 0 {
		s.log.Warn("zmqserver: requests unanswered at shutdown", "count", inflight)
	}
}

func (s *Server) runWorker(jobs <-chan *job) {
	defer s.workers.Done()
	h := s.newHandler()
	for j := range jobs {
		j.out = h.handle(j.payload, false)
		j.payload = nil
		s.results <- j // never blocks: capacity QueueDepth >= inflight
		s.routerW.wake()
	}
}

// reply sends an outcome to its peer and records it.
func (s *Server) reply(peer []byte, delim bool, out *outcome, received time.Time, contended bool, lim *logLimiter) {
	if err := sendReply(s.router, peer, delim, out.reply); err != nil {
		s.obs.ObserveDropped("router", 1)
		lim.log(s.log, "zmqserver: reply dropped", "op", out.op.String(), "request_id", out.id, "err", err)
	}
	s.observe(out, received, contended)
}

// overloaded answers 503 without queueing the request; it decodes only the
// header, to echo request_id and label the metric.
func (s *Server) overloaded(peer []byte, delim bool, payload []byte, now time.Time, lim *logLimiter) {
	s.rejectUndecoded(peer, delim, payload, errOverloaded, now, lim)
}

// rejectUndecoded answers werr to a request it has not decoded, echoing
// what peekRequest reads of its header.
func (s *Server) rejectUndecoded(peer []byte, delim bool, payload []byte, werr *wireError, now time.Time, lim *logLimiter) {
	r := peekRequest(payload)
	out := outcome{op: r.op, code: werr.code, err: werr, reply: appendError(nil, r.version, r.id, r.hasID, werr)}
	if r.hasID {
		out.id = string(r.id)
	}
	s.reply(peer, delim, &out, now, true, lim)
}

// maxInlineRead bounds the requests the ROUTER owner inspects for
// readInline: GET and METRICS requests are a few dozen bytes.
const maxInlineRead = 256

// readInline reports whether payload is a small GET/LOOKUP or METRICS
// request, which the owner executes itself: reads need no group commit, and
// a store read costs about a microsecond, less than the hand-off.
func readInline(payload []byte) bool {
	if len(payload) > maxInlineRead {
		return false
	}
	_, _, _, o := peekHeader(payload)
	return o == opGet || o == opMetrics
}

// tooLarge answers 413 to a frame over MaxFrameBytes (libzmq delivers
// frames up to twice the limit, see maxMsgSize) without queueing it.
func (s *Server) tooLarge(peer []byte, delim bool, payload []byte, now time.Time, lim *logLimiter) {
	s.rejectUndecoded(peer, delim, payload,
		errorf(codeTooLarge, "frame of %d bytes exceeds the limit of %d", len(payload), s.cfg.MaxFrameBytes), now, lim)
}

// routerEnvelope splits a ROUTER message: [id, payload] from a DEALER,
// [id, "", payload] from a REQ or a DEALER that adds the delimiter. Anything
// else is a 400, answered with the delimiter iff the second frame is empty.
func routerEnvelope(f [][]byte, n int) (peer []byte, delim bool, payload []byte, werr *wireError) {
	peer = f[0]
	switch {
	case n == 2:
		return peer, false, f[1], nil
	case n == 3 && len(f[1]) == 0:
		return peer, true, f[2], nil
	}
	delim = n >= 2 && len(f[1]) == 0
	return peer, delim, nil, errorf(codeBadRequest,
		"wrong frame count: %d frames, want [payload] or [\"\", payload]", n-1)
}

// shardOf picks a worker for a peer (FNV-1a of the routing id).
func shardOf(peer []byte, n int) int {
	h := uint32(2166136261)
	for _, c := range peer {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % uint32(n))
}

// recvFrames receives one message without blocking. It keeps the first
// len(keep) frames and returns the total count; the rest are read and
// discarded (the parts of a multipart message arrive together, so reading
// them cannot block).
func recvFrames(sock *zmq.Socket, keep *[3][]byte) (int, error) {
	b, err := sock.RecvBytes(zmq.DONTWAIT)
	if err != nil {
		return 0, err
	}
	keep[0] = b
	n := 1
	for {
		more, err := sock.GetRcvmore()
		if err != nil {
			return 0, err
		}
		if !more {
			return n, nil
		}
		if b, err = sock.RecvBytes(0); err != nil {
			return 0, err
		}
		if n < len(keep) {
			keep[n] = b
		}
		n++
	}
}

func sendReply(sock *zmq.Socket, peer []byte, delim bool, body []byte) error {
	if _, err := sock.SendBytes(peer, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
		return err
	}
	if delim {
		if _, err := sock.SendBytes(nil, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
			return err
		}
	}
	_, err := sock.SendBytes(body, zmq.DONTWAIT)
	return err
}

// pollFallback waits up to 10 ms for the socket with zmq_poll; used only if
// the netpoller wait fails.
func pollFallback(sock *zmq.Socket) {
	p := zmq.NewPoller()
	p.Add(sock, zmq.POLLIN)
	_, _ = p.Poll(10 * time.Millisecond)
}

// logLimiter keeps a socket goroutine from flooding the log: at most one
// line per second, with the count of lines suppressed since. Not
// goroutine-safe: one per owner goroutine.
type logLimiter struct {
	next       time.Time
	suppressed int
}

func newLogLimiter() *logLimiter { return &logLimiter{} }

func (l *logLimiter) log(lg Logger, msg string, kv ...any) {
	now := time.Now()
	if now.Before(l.next) {
		l.suppressed++
		return
	}
	if l.suppressed > 0 {
		kv = append(kv, "suppressed", l.suppressed)
	}
	l.suppressed = 0
	l.next = now.Add(time.Second)
	lg.Warn(msg, kv...)
}
