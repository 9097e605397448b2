package zmqserver

import (
	"errors"
	"fmt"
	"time"
)

// Default endpoints of PROTOCOL.md §1. The PUB socket is off by default.
const (
	DefaultRouterEndpoint = "tcp://127.0.0.1:5558"
	DefaultPullEndpoint   = "tcp://127.0.0.1:5557"
	DefaultPubEndpoint    = "tcp://127.0.0.1:5559"
)

// Defaults of Config, applied by EnsureDefaults.
const (
	DefaultMaxFrameBytes   = 16 << 20
	DefaultMaxBatchEntries = 100_000
	DefaultQueueDepth      = 1024
	DefaultMaxQueuedBytes  = 256 << 20
	DefaultWorkers         = 4
	DefaultNotifyQueueLen  = 1 << 16
	DefaultShutdownTimeout = 5 * time.Second
)

// Config configures a Server. Use DefaultConfig for the PROTOCOL.md
// defaults; in a zero Config only the ROUTER socket is on, because an empty
// PullEndpoint or PubEndpoint means "off".
type Config struct {
	// RouterEndpoint is the ROUTER bind (request/reply). Default
	// tcp://127.0.0.1:5558. A port of "*" binds an ephemeral port; see
	// Server.RouterEndpoint.
	RouterEndpoint string
	// PullEndpoint is the PULL bind (fire-and-forget mutations). Empty = off.
	// DefaultConfig sets tcp://127.0.0.1:5557.
	PullEndpoint string
	// PubEndpoint is the PUB bind (change notifications). Empty = off.
	PubEndpoint string

	// MaxFrameBytes bounds one frame: a larger one is answered 413. Twice
	// it is set as ZMQ_MAXMSGSIZE on the ROUTER and PULL sockets, so libzmq
	// drops the connection of a peer that sends a frame over twice the
	// limit, which gets no reply (see doc.go). Default 16 MiB.
	MaxFrameBytes int
	// MaxBatchEntries bounds the entries of one BATCH_* request (413 above).
	// Default 100 000.
	MaxBatchEntries int
	// QueueDepth bounds the requests received on the ROUTER and not yet
	// answered; a request beyond it is answered 503 "overloaded" at once.
	// It is also the receive high-water mark (messages per peer) of the
	// ROUTER and PULL sockets. Default 1024.
	QueueDepth int
	// MaxQueuedBytes bounds the payload bytes of the requests counted by
	// QueueDepth: a request that would go over it is answered 503
	// "overloaded" (one request is always admitted when the queue is
	// empty). HWMs count messages, not bytes, so this is what bounds the
	// server's own memory. Default 256 MiB; at least MaxFrameBytes.
	MaxQueuedBytes int
	// Workers is the number of goroutines that decode and execute ROUTER
	// requests; requests of one peer always go to the same worker, so they
	// run in the order sent. Several workers let concurrent mutations share
	// one WAL sync. Set -1 for inline mode: the ROUTER goroutine itself
	// decodes, executes and replies (no 503 "overloaded" then: libzmq's
	// high-water mark pushes back instead). Default 4.
	Workers int
	// NotifyQueueLen bounds the mutations waiting to be published on PUB;
	// Notify drops (and counts) a batch that does not fit. Default 65 536.
	NotifyQueueLen int
	// ShutdownTimeout bounds Close: draining in-flight requests, then
	// terminating the ZeroMQ context (a watchdog gives up on a hung
	// zmq_ctx_term). Default 5s.
	ShutdownTimeout time.Duration
	// ReadOnly makes the server a reader: mutations are answered 503 and
	// PULL messages are rejected.
	ReadOnly bool
	// Ready, when set, is asked before each request; false answers 503
	// "recovering" (METRICS is still served). Nil means always ready. It is
	// called from the server's goroutines and must be fast and safe for
	// concurrent use.
	Ready func() bool
}

// DefaultConfig returns the PROTOCOL.md defaults: ROUTER and PULL on their
// default endpoints, PUB off, limits as documented on Config.
func DefaultConfig() Config {
	c := Config{RouterEndpoint: DefaultRouterEndpoint, PullEndpoint: DefaultPullEndpoint}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults fills unset fields with their defaults. PullEndpoint and
// PubEndpoint are left alone: empty means off.
func (c *Config) EnsureDefaults() {
	if c.RouterEndpoint == "" {
		c.RouterEndpoint = DefaultRouterEndpoint
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxBatchEntries == 0 {
		c.MaxBatchEntries = DefaultMaxBatchEntries
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = DefaultQueueDepth
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = max(DefaultMaxQueuedBytes, c.MaxFrameBytes)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.NotifyQueueLen == 0 {
		c.NotifyQueueLen = DefaultNotifyQueueLen
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("zmqserver: "+format, args...))
	}
	if c.RouterEndpoint == "" {
		bad("router endpoint is empty")
	}
	if c.MaxFrameBytes < 1024 {
		bad("max frame bytes %d < 1024", c.MaxFrameBytes)
	}
	if c.MaxBatchEntries < 1 {
		bad("max batch entries %d < 1", c.MaxBatchEntries)
	}
	if c.QueueDepth < 1 || c.QueueDepth > 1<<20 {
		bad("queue depth %d not in [1, 1048576]", c.QueueDepth)
	}
	if c.MaxQueuedBytes < c.MaxFrameBytes {
		bad("max queued bytes %d < max frame bytes %d", c.MaxQueuedBytes, c.MaxFrameBytes)
	}
	if c.Workers < -1 || c.Workers == 0 || c.Workers > 256 {
		bad("workers %d not -1 (inline) or in [1, 256]", c.Workers)
	}
	if c.NotifyQueueLen < 1 {
		bad("notify queue length %d < 1", c.NotifyQueueLen)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown timeout %v <= 0", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}
