package zmqserver

import (
	"runtime/debug"
	"slices"

	cidstore "github.com/cidstore/cidstore/core"
)

// outcome is the result of one request.
type outcome struct {
	reply []byte // encoded reply; nil for PULL
	op    op
	code  int // codeOK or an error code
	ops   int // store operations performed (throughput)
	err   *wireError
	id    string // request_id, kept only for logging errors
}

// handler decodes and executes requests. It owns a decoder, so each
// goroutine that executes requests (a worker, the inline ROUTER owner, the
// PULL owner) has its own.
type handler struct {
	s   *Server
	d   *decoder
	req request
}

func (s *Server) newHandler() *handler {
	return &handler{s: s, d: newDecoder(s.cfg.MaxBatchEntries)}
}

// handle executes one request. pull selects the PULL socket's rules: no
// reply is encoded and GET/METRICS are rejected. It never panics: a panic
// while decoding is a 400 (the decoder is fuzzed, so this is defence in
// depth); a panic in the store is a 500, logged with its stack.
func (h *handler) handle(payload []byte, pull bool) (out outcome) {
	s := h.s
	req := &h.req
	decoded := false
	defer func() {
		if p := recover(); p != nil {
			werr := errorf(codeBadRequest, "malformed request")
			if decoded {
				werr = &wireError{codeInternal, "internal error"}
				s.log.Error("zmqserver: panic while executing request",
					"op", req.op.String(), "request_id", string(req.id), "panic", p, "stack", string(debug.Stack()))
			}
			out = h.fail(werr, pull)
		}
	}()
	if len(payload) > s.cfg.MaxFrameBytes {
		// Not decoded, but the reply still echoes the request's version
		// and request_id (PROTOCOL.md §1.2), as the worker pool's
		// Server.tooLarge does.
		*req = peekRequest(payload)
		return h.fail(errorf(codeTooLarge, "frame of %d bytes exceeds the limit of %d", len(payload), s.cfg.MaxFrameBytes), pull)
	}
	if werr := h.d.decode(payload, req); werr != nil {
		return h.fail(werr, pull)
	}
	decoded = true
	switch {
	case pull && (req.op == opGet || req.op == opMetrics):
		return h.fail(errorf(codeBadRequest, "%s is not accepted on the PULL socket (no reply)", req.op), pull)
	case req.op != opMetrics && s.cfg.Ready != nil && !s.cfg.Ready():
		return h.fail(errNotReady, pull)
	case req.op.mutates() && s.cfg.ReadOnly:
		return h.fail(errReadOnly, pull)
	}

	ctx := s.ctx
	var err error
	var vals []cidstore.E
	ops := 1
	switch req.op {
	case opInsert:
		err = s.st.Insert(ctx, req.key, req.value)
	case opDeleteKey:
		err = s.st.Delete(ctx, req.key)
	case opDeleteValue:
		err = s.st.DeleteValue(ctx, req.key, req.value)
	case opBatchInsert:
		ops = len(req.pairs)
		err = s.st.InsertBatch(ctx, req.pairs)
	case opBatchDelete:
		ops = len(req.dels)
		err = s.st.DeleteBatch(ctx, req.dels)
	case opGet:
		vals, err = s.st.Get(ctx, req.key)
	case opMetrics:
		ops = 0
	}
	if err != nil {
		werr := storeError(err)
		if werr.code == codeInternal {
			s.log.Error("zmqserver: store failed", "op", req.op.String(), "request_id", string(req.id), "err", err)
		}
		return h.fail(werr, pull)
	}
	out = outcome{op: req.op, code: codeOK, ops: ops}
	if pull {
		return out
	}
	switch req.op {
	case opGet:
		// The store returns values ascending; a Store that does not (a
		// fake, a future backend) must not break the wire contract.
		if !slices.IsSortedFunc(vals, cidstore.E.Compare) {
			slices.SortFunc(vals, cidstore.E.Compare)
		}
		out.reply = appendResults(make([]byte, 0, 48+19*len(vals)), req, vals)
	case opMetrics:
		out.reply = appendMetrics(make([]byte, 0, 192), req, s.metrics())
	default:
		out.reply = appendOK(make([]byte, 0, 48+len(req.id)), req)
	}
	return out
}

// fail makes the error outcome for the current request.
func (h *handler) fail(werr *wireError, pull bool) outcome {
	req := &h.req
	out := outcome{op: req.op, code: werr.code, err: werr}
	if req.hasID {
		out.id = string(req.id)
	}
	if !pull {
		out.reply = appendError(make([]byte, 0, 64+len(req.id)+len(werr.msg)), req.version, req.id, req.hasID, werr)
	}
	return out
}
