package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	zmq "github.com/pebbe/zmq4"
)

// Defaults of Options.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultWindow         = 4
	DefaultBatchEntries   = 1000
	DefaultMaxFrameBytes  = 16 << 20
	DefaultRollingVersion = 1
)

// Options configure a Client. The zero value uses the defaults.
type Options struct {
	// Timeout bounds each request from send to reply. Default 5s. A
	// context deadline, when earlier, wins.
	Timeout time.Duration
	// Window is the number of requests InsertBatch keeps outstanding.
	// Default 4 (more added nothing in measurements: the server is CPU bound).
	Window int
	// BatchEntries is the largest number of pairs InsertBatch puts in one
	// BATCH_INSERT message. Default 1000 (~49 KB).
	BatchEntries int
	// MaxFrameBytes is the server's frame limit: a larger request fails
	// with a 413 *Error without being sent (the server would drop the
	// connection instead of answering). Default 16 MiB.
	MaxFrameBytes int
	// RollingVersion is sent in every request. Default 1.
	RollingVersion int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.BatchEntries <= 0 {
		o.BatchEntries = DefaultBatchEntries
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.RollingVersion == 0 {
		o.RollingVersion = DefaultRollingVersion
	}
}

// Metrics is a METRICS reply (PROTOCOL.md §1.2); see the server's doc for
// how each figure is computed.
type Metrics struct {
	LatencyP99Seconds    float64
	ThroughputOps        float64
	BufferOccupancy      int64
	FlushDurationSeconds float64
	LockContentionRatio  float64
	ErrorRate            float64
}

// Client talks to a CIDStore server's ROUTER socket through one DEALER
// socket. It is safe for concurrent use, but calls are serialized (one
// socket, one goroutine at a time): use one Client per goroutine for
// parallel requests.
type Client struct {
	mu     sync.Mutex
	opts   Options
	zctx   *zmq.Context
	sock   *zmq.Socket
	poller *zmq.Poller
	prefix string // random per client, so ids are unique across clients
	seq    uint64
	buf    []byte
	closed bool
}

// Dial connects to endpoint (for example tcp://127.0.0.1:5558). ZeroMQ
// connects in the background and reconnects on its own, so Dial succeeds
// even if the server is not up yet; requests then time out.
func Dial(endpoint string, opts Options) (*Client, error) {
	opts.EnsureDefaults()
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("cidstore client: request id nonce: %w", err)
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("cidstore client: new context: %w", err)
	}
	sock, err := zctx.NewSocket(zmq.DEALER)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cidstore client: new socket: %w", err), zctx.Term())
	}
	err = errors.Join(
		sock.SetLinger(0),
		sock.SetSndtimeo(opts.Timeout),
		sock.Connect(endpoint),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cidstore client: dial %s: %w", endpoint, err), sock.Close(), zctx.Term())
	}
	p := zmq.NewPoller()
	p.Add(sock, zmq.POLLIN)
	return &Client{opts: opts, zctx: zctx, sock: sock, poller: p, prefix: hex.EncodeToString(nonce[:])}, nil
}

// Close closes the socket and its context. Outstanding requests are
// abandoned. A second Close returns ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.closed = true
	return errors.Join(c.sock.Close(), c.zctx.Term())
}

// Insert adds value to key's set.
func (c *Client) Insert(ctx context.Context, key, value cidstore.E) error {
	_, err := c.call(ctx, func(b []byte, id string) []byte {
		b = appendHeader(b, c.opts.RollingVersion, "INSERT", id, 2)
		return appendE(appendE(b, "key", key), "value", value)
	})
	return err
}

// Delete removes key and all its values.
func (c *Client) Delete(ctx context.Context, key cidstore.E) error {
	_, err := c.call(ctx, func(b []byte, id string) []byte {
		return appendE(appendHeader(b, c.opts.RollingVersion, "DELETE_KEY", id, 1), "key", key)
	})
	return err
}

// DeleteValue removes value from key's set.
func (c *Client) DeleteValue(ctx context.Context, key, value cidstore.E) error {
	_, err := c.call(ctx, func(b []byte, id string) []byte {
		b = appendHeader(b, c.opts.RollingVersion, "DELETE_VALUE_FROM_KEY", id, 2)
		return appendE(appendE(b, "key", key), "value", value)
	})
	return err
}

// Get returns the values of key, ascending; an empty non-nil slice when the
// key is absent.
func (c *Client) Get(ctx context.Context, key cidstore.E) ([]cidstore.E, error) {
	rep, err := c.call(ctx, func(b []byte, id string) []byte {
		return appendE(appendHeader(b, c.opts.RollingVersion, "GET", id, 1), "key", key)
	})
	if err != nil {
		return nil, err
	}
	if !rep.hasRes {
		return nil, protoErr("GET reply without results")
	}
	return rep.results, nil
}

// Metrics returns the server's METRICS figures.
func (c *Client) Metrics(ctx context.Context) (Metrics, error) {
	rep, err := c.call(ctx, func(b []byte, id string) []byte {
		return appendHeader(b, c.opts.RollingVersion, "METRICS", id, 0)
	})
	if err != nil {
		return Metrics{}, err
	}
	return rep.metrics, nil
}

// InsertBatch inserts pairs in BATCH_INSERT messages of at most
// Options.BatchEntries pairs, keeping up to Options.Window of them
// outstanding. Each message is atomic on the server, the whole call is not:
// on error some messages may have been applied. Inserts are idempotent, so
// retrying the whole call is safe. An empty slice sends nothing.
func (c *Client) InsertBatch(ctx context.Context, pairs []cidstore.Pair) error {
	per := c.opts.BatchEntries
	n := (len(pairs) + per - 1) / per
	return c.pipeline(ctx, n, func(i int, b []byte, id string) []byte {
		chunk := pairs[i*per : min((i+1)*per, len(pairs))]
		b = appendHeader(b, c.opts.RollingVersion, "BATCH_INSERT", id, 1)
		return appendEntries(b, chunk, false)
	}, nil)
}

// DeleteBatch applies dels in order in one BATCH_DELETE message, atomically
// (all or none); a Deletion with a zero Value deletes the whole key. It is
// not split: a batch over the server's limit fails with 413. An empty slice
// sends nothing.
func (c *Client) DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error {
	if len(dels) == 0 {
		return nil
	}
	_, err := c.call(ctx, func(b []byte, id string) []byte {
		b = appendHeader(b, c.opts.RollingVersion, "BATCH_DELETE", id, 1)
		pairs := make([]cidstore.Pair, len(dels))
		for i, d := range dels {
			pairs[i] = cidstore.Pair(d)
		}
		return appendEntries(b, pairs, true)
	})
	return err
}

// call sends one request and returns its successful reply.
func (c *Client) call(ctx context.Context, encode func(b []byte, id string) []byte) (*reply, error) {
	var rep *reply
	err := c.pipeline(ctx, 1, func(_ int, b []byte, id string) []byte { return encode(b, id) },
		func(_ int, r *reply) { rep = r })
	return rep, err
}

// pending is one request sent and not yet answered.
type pending struct {
	id       string
	idx      int
	deadline time.Time
	done     bool
}

// pipeline sends n requests, encode(i) building the i-th, with at most
// Window outstanding, and passes each successful reply to onReply. It
// returns the first error: an error reply, a timeout, a send failure. Replies
// that arrive later for abandoned requests are recognised by their
// request_id and discarded by later calls.
func (c *Client) pipeline(ctx context.Context, n int, encode func(i int, b []byte, id string) []byte, onReply func(i int, r *reply)) error {
	if n == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	window := 1
	if n > 1 {
		window = c.opts.Window
	}
	var queue []*pending // sent, in send order
	byID := make(map[string]*pending, window)
	next, answered := 0, 0
	for answered < n {
		for next < n && len(byID) < window {
			if err := ctx.Err(); err != nil {
				return err
			}
			c.seq++
			id := c.prefix + "-" + strconv.FormatUint(c.seq, 10)
			c.buf = encode(next, c.buf[:0], id)
			if len(c.buf) > c.opts.MaxFrameBytes {
				return &Error{Code: CodeTooLarge, Msg: fmt.Sprintf(
					"request of %d bytes exceeds the %d-byte frame limit (not sent)", len(c.buf), c.opts.MaxFrameBytes)}
			}
			if _, err := c.sock.SendBytes(c.buf, 0); err != nil {
				if zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) { // SNDTIMEO expired
					return fmt.Errorf("send request %s: %w", id, ErrTimeout)
				}
				return fmt.Errorf("cidstore client: send request %s: %w", id, err)
			}
			p := &pending{id: id, idx: next, deadline: time.Now().Add(c.opts.Timeout)}
			queue = append(queue, p)
			byID[id] = p
			next++
		}
		for len(queue) > 0 && queue[0].done {
			queue = queue[1:]
		}
		oldest := queue[0]
		rep, err := c.receive(ctx, oldest.deadline)
		if err != nil {
			return fmt.Errorf("request %s: %w", oldest.id, err)
		}
		p := oldest // a reply without request_id answers the oldest request
		if rep.hasID {
			if p = byID[string(rep.id)]; p == nil {
				continue // a late reply to an abandoned request
			}
		}
		p.done = true
		delete(byID, p.id)
		answered++
		if rep.err != nil {
			return rep.err
		}
		if onReply != nil {
			onReply(p.idx, rep)
		}
	}
	return nil
}

// receive waits until deadline (or ctx is done) for one reply.
func (c *Client) receive(ctx context.Context, deadline time.Time) (*reply, error) {
	ctxBound := false // the context's deadline comes first
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxBound = d, true
	}
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			return nil, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			if ctxBound {
				return nil, fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
			}
			return nil, ErrTimeout
		}
		// Poll in slices so that a cancelled context is noticed.
		polled, err := c.poller.Poll(min(wait, 50*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("cidstore client: poll: %w", err)
		}
		if len(polled) == 0 {
			continue
		}
		frames, err := c.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) {
				continue
			}
			return nil, fmt.Errorf("cidstore client: receive: %w", err)
		}
		// A DEALER gets [reply]; tolerate ["", reply] too.
		return decodeReply(frames[len(frames)-1])
	}
}
