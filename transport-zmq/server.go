package zmqserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	zmq "github.com/pebbe/zmq4"
)

// Store is what the server needs from a store: *cidstore.Store satisfies
// it. Implementations must be safe for concurrent use (several workers call
// them at once) and must not retain the slices they are given after
// returning. A mutation returns only once it is durable under the store's
// sync policy: the server acknowledges it right after. Get must return a
// slice the server may sort in place.
type Store interface {
	Insert(ctx context.Context, key, value cidstore.E) error
	InsertBatch(ctx context.Context, pairs []cidstore.Pair) error
	Get(ctx context.Context, key cidstore.E) ([]cidstore.E, error)
	Delete(ctx context.Context, key cidstore.E) error
	DeleteValue(ctx context.Context, key, value cidstore.E) error
	DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error
	Stats() cidstore.Stats
}

// ErrServerState is returned by Start on a server that was already started
// or closed.
var ErrServerState = errors.New("zmqserver: server already started or closed")

// Server serves PROTOCOL.md §1 on ZeroMQ sockets. Create it with New, then
// Start; Close stops it. Notify may be called from any goroutine at any
// time.
type Server struct {
	st  Store
	cfg Config
	obs Observer
	log Logger
	win *window

	ctx    context.Context // passed to store calls; cancelled when Close gives up draining
	cancel context.CancelFunc

	mu      sync.Mutex // guards state and Start/Close
	state   int        // stateNew, stateRunning, stateClosed
	zctx    *zmq.Context
	owners  sync.WaitGroup // socket-owner goroutines
	workers sync.WaitGroup

	closing       atomic.Bool
	drainDeadline time.Time // set before closing is stored

	router   *zmq.Socket
	routerW  *fdWaiter
	routerEP string
	jobs     []chan *job
	results  chan *job

	pull   *zmq.Socket
	pullW  *fdWaiter
	pullEP string

	pub       *zmq.Socket
	pubEP     string
	pubQuit   chan struct{}
	notifyCh  chan []cidstore.Mutation
	notifyLen atomic.Int64 // mutations queued in notifyCh
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// New validates cfg (after EnsureDefaults) and returns a server that is not
// yet bound. obs and log may be nil (no-op).
func New(st Store, cfg Config, obs Observer, log Logger) (*Server, error) {
	if st == nil {
		return nil, errors.New("zmqserver: nil store")
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if obs == nil {
		obs = NopObserver{}
	}
	if log == nil {
		log = NopLogger{}
	}
	s := &Server{st: st, cfg: cfg, obs: obs, log: log, win: newWindow(time.Now())}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.PubEndpoint != "" {
		s.notifyCh = make(chan []cidstore.Mutation, 1024)
		s.pubQuit = make(chan struct{})
	}
	return s, nil
}

// Start creates the ZeroMQ context, binds the configured sockets and starts
// their goroutines; it does not block. On error nothing stays bound.
func (s *Server) Start() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return ErrServerState
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		return fmt.Errorf("zmqserver: new context: %w", err)
	}
	var opened []*zmq.Socket
	var waiters []*fdWaiter
	defer func() {
		if err == nil {
			return
		}
		errs := []error{err}
		for _, w := range waiters {
			errs = append(errs, w.close())
		}
		for _, so := range opened {
			errs = append(errs, so.Close())
		}
		errs = append(errs, termWithWatchdog(zctx, s.cfg.ShutdownTimeout))
		err = errors.Join(errs...)
	}()
	open := func(t zmq.Type, endpoint string, setup func(*zmq.Socket) error) (*zmq.Socket, string, error) {
		so, err := zctx.NewSocket(t)
		if err != nil {
			return nil, "", fmt.Errorf("zmqserver: new %v socket: %w", t, err)
		}
		opened = append(opened, so)
		// Linger 0: an unsent message must never make Term hang
		// (NOTES-ZMQ). Close raises it briefly to flush final replies.
		if err := so.SetLinger(0); err != nil {
			return nil, "", fmt.Errorf("zmqserver: set linger: %w", err)
		}
		if setup != nil {
			if err := setup(so); err != nil {
				return nil, "", fmt.Errorf("zmqserver: configure %v socket: %w", t, err)
			}
		}
		if err := so.Bind(endpoint); err != nil {
			return nil, "", fmt.Errorf("zmqserver: bind %v %s: %w", t, endpoint, err)
		}
		ep, err := so.GetLastEndpoint()
		if err != nil {
			return nil, "", fmt.Errorf("zmqserver: %v last endpoint: %w", t, err)
		}
		return so, ep, nil
	}
	input := func(so *zmq.Socket) error {
		return errors.Join(
			so.SetMaxmsgsize(maxMsgSize(s.cfg.MaxFrameBytes)),
			so.SetRcvhwm(s.cfg.QueueDepth),
		)
	}

	s.router, s.routerEP, err = open(zmq.ROUTER, s.cfg.RouterEndpoint, func(so *zmq.Socket) error {
		return errors.Join(input(so), so.SetRouterMandatory(1))
	})
	if err != nil {
		return err
	}
	if s.routerW, err = newFDWaiter(s.router); err != nil {
		return fmt.Errorf("zmqserver: router: %w", err)
	}
	waiters = append(waiters, s.routerW)
	if s.cfg.PullEndpoint != "" {
		if s.pull, s.pullEP, err = open(zmq.PULL, s.cfg.PullEndpoint, input); err != nil {
			return err
		}
		if s.pullW, err = newFDWaiter(s.pull); err != nil {
			return fmt.Errorf("zmqserver: pull: %w", err)
		}
		waiters = append(waiters, s.pullW)
	}
	if s.cfg.PubEndpoint != "" {
		if s.pub, s.pubEP, err = open(zmq.PUB, s.cfg.PubEndpoint, nil); err != nil {
			return err
		}
	}

	s.zctx = zctx
	s.state = stateRunning
	if s.cfg.Workers > 0 {
		s.results = make(chan *job, s.cfg.QueueDepth)
		s.jobs = make([]chan *job, s.cfg.Workers)
		for i := range s.jobs {
			s.jobs[i] = make(chan *job, s.cfg.QueueDepth)
			s.workers.Add(1)
			go s.runWorker(s.jobs[i])
		}
	}
	s.owners.Add(1)
	go s.runRouter()
	if s.pull != nil {
		s.owners.Add(1)
		go s.runPull()
	}
	if s.pub != nil {
		s.owners.Add(1)
		go s.runPub()
	}
	s.log.Info("zmqserver: started", "router", s.routerEP, "pull", s.pullEP, "pub", s.pubEP,
		"workers", s.cfg.Workers, "read_only", s.cfg.ReadOnly)
	return nil
}

// RouterEndpoint returns the ROUTER's bound endpoint (with the actual port
// when the configured one was "*"), or "" before Start.
func (s *Server) RouterEndpoint() string { s.mu.Lock(); defer s.mu.Unlock(); return s.routerEP }

// PullEndpoint returns the PULL socket's bound endpoint, or "" when off or
// before Start.
func (s *Server) PullEndpoint() string { s.mu.Lock(); defer s.mu.Unlock(); return s.pullEP }

// PubEndpoint returns the PUB socket's bound endpoint, or "" when off or
// before Start.
func (s *Server) PubEndpoint() string { s.mu.Lock(); defer s.mu.Unlock(); return s.pubEP }

// Close stops accepting requests, waits up to ShutdownTimeout for the
// requests already received to be answered, closes the sockets and
// terminates the ZeroMQ context under a watchdog, so it never hangs. PULL
// messages still queued in libzmq and not yet received are dropped (they
// were never acknowledged). Close is idempotent; a server is not restartable.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning {
		s.state = stateClosed
		s.cancel()
		return nil
	}
	s.state = stateClosed
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	s.drainDeadline = deadline
	s.closing.Store(true)
	s.routerW.wake()
	if s.pullW != nil {
		s.pullW.wake()
	}
	if s.pubQuit != nil {
		close(s.pubQuit)
	}
	var errs []error
	if !waitTimeout(&s.owners, time.Until(deadline)+time.Second) {
		errs = append(errs, errors.New("zmqserver: socket goroutines did not stop in time"))
	}
	// Requests still executing now are past the drain deadline: cancel
	// them. Workers stop on their own once their channel is closed.
	s.cancel()
	if !waitTimeout(&s.workers, time.Until(deadline)) {
		s.log.Warn("zmqserver: store calls still running after shutdown timeout")
	}
	// Term returns once every socket is closed and its linger expired; a
	// socket whose owner is stuck is never closed, so the watchdog bounds it.
	wd := max(time.Until(deadline), time.Second)
	if err := termWithWatchdog(s.zctx, wd); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("zmqserver: stopped")
	return errors.Join(errs...)
}

// Notify publishes durable mutations on the PUB socket: pass it as
// cidstore.Options.Notify. It never blocks: it hands a copy of muts to the
// PUB goroutine, or drops the batch (ObserveDropped("pub", n)) when
// NotifyQueueLen mutations are already waiting. Without a PUB endpoint it
// does nothing, and so does a nil *Server: the store needs Notify when it is
// opened, before the server (which needs the store) exists, so an app can
// pass a closure over a not-yet-set server (see doc.go).
func (s *Server) Notify(muts []cidstore.Mutation) {
	if s == nil || s.notifyCh == nil || len(muts) == 0 {
		return
	}
	n := int64(len(muts))
	if s.closing.Load() {
		s.obs.ObserveDropped("pub", len(muts))
		return
	}
	if s.notifyLen.Add(n) > int64(s.cfg.NotifyQueueLen) {
		s.notifyLen.Add(-n)
		s.obs.ObserveDropped("pub", len(muts))
		return
	}
	select {
	case s.notifyCh <- slices.Clone(muts):
	default:
		s.notifyLen.Add(-n)
		s.obs.ObserveDropped("pub", len(muts))
	}
}

// metrics computes a METRICS reply.
func (s *Server) metrics() metricsReply {
	w := s.win.snapshot(time.Now())
	st := s.st.Stats()
	return metricsReply{
		latencyP99Seconds:    w.p99Seconds,
		throughputOps:        w.throughputOps,
		bufferOccupancy:      st.WALUsedBytes,
		flushDurationSeconds: st.LastCheckpointDuration.Seconds(),
		lockContentionRatio:  w.contentionRatio,
		errorRate:            w.errorRate,
	}
}

// observe records one handled request in the Observer and the METRICS
// window.
func (s *Server) observe(out *outcome, received time.Time, contended bool) {
	now := time.Now()
	lat := now.Sub(received)
	s.obs.ObserveRequest(out.op.String(), out.code, lat.Seconds())
	s.win.record(now, lat, out.code != codeOK, out.ops, contended)
}

// waitTimeout waits for wg, giving up after d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// termWithWatchdog terminates zctx, giving up after d: zmq_ctx_term blocks
// while any socket is open or lingering.
func termWithWatchdog(zctx *zmq.Context, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- zctx.Term() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("zmqserver: terminate context: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("zmqserver: terminate context: still blocked after %v (socket left open)", d)
	}
}

// maxMsgSize is the ZMQ_MAXMSGSIZE for a frame limit: twice the limit, so
// that a frame somewhat over it still reaches the server and gets its 413
// reply (PROTOCOL.md §1.3); libzmq disconnects a peer that sends a frame
// beyond this, which no server can answer without buffering it whole.
func maxMsgSize(limit int) int64 { return 2 * int64(limit) }
