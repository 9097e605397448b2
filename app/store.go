package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	memstore "github.com/cidstore/cidstore/storage-mem"
	restapi "github.com/cidstore/cidstore/transport-rest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// openStore opens the writer's store: the backend cfg.Backend names in
// cfg.DataDir (created if missing) under core with the WAL
// DATA_DIR/cidstore.wal. It is the one place that picks the writer's
// backend; role reader opens the HDF5 file read-only instead (replica.go).
//
//   - hdf5 (default): h5store at DATA_DIR/cidstore.h5, holding an exclusive
//     flock on DATA_DIR/cidstore.h5.lock (a second writer fails with
//     h5store.ErrLocked); readers in other processes follow its commits.
//   - mem: the durable memory backend, snapshot DATA_DIR/cidstore.snapshot.
func openStore(cfg Config, log port.Logger, notify func([]cidstore.Mutation)) (*cidstore.Store, error) {
	if cfg.Role != "writer" {
		return nil, fmt.Errorf("openStore: role %q is not a writer", cfg.Role)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	var (
		be        port.Backend
		err       error
		coreBytes = cfg.CacheBytes
	)
	switch cfg.Backend {
	case "hdf5":
		var (
			hs *h5store.Store
			ho h5store.Options
		)
		// The budget bounds core's cache, HDF5's caches and h5store's
		// index pages together.
		ho, coreBytes = h5store.SplitBudget(cfg.CacheBytes)
		ho.Logger = log
		hs, err = h5store.Open(cfg.H5Path(), ho)
		if err == nil {
			be = hs // a recovered file is logged by h5store
		} else if errors.Is(err, h5store.ErrLocked) {
			err = fmt.Errorf("%w (another writer runs on %s; start this one with role reader, or stop the other)", err, cfg.DataDir)
		}
	case "mem":
		be, err = memstore.Open(cfg.SnapshotPath())
	default:
		err = fmt.Errorf("unknown backend %q", cfg.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s backend in %s: %w", cfg.Backend, cfg.DataDir, err)
	}
	st, err := cidstore.Open(be, cidstore.Options{
		WALPath:             cfg.WALPath(),
		Sync:                cfg.Sync,
		SyncInterval:        cfg.SyncInterval,
		WALSizeBytes:        cfg.WALSizeBytes,
		CheckpointInterval:  cfg.CheckpointInterval,
		PromotionThreshold:  cfg.PromotionThreshold,
		CacheBytes:          coreBytes,
		MaintenanceInterval: offIfZero(cfg.MaintenanceEvery),
		GCInterval:          offIfZero(cfg.GCEvery),
		Logger:              log,
		Notify:              notify,
	})
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
	}
	return st, nil
}

// offIfZero maps a setting's 0 ("off") to core's negative period.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// memoryLimit sets the Go runtime's soft memory limit for the cache budget
// (cidstore.GoMemoryLimit: RSS within the budget plus 1 GiB), so that the
// garbage collector works harder instead of letting the heap double past
// the budget, unless GOMEMLIMIT says otherwise. It reports the limit it
// set.
func memoryLimit(cacheBytes int64) (int64, bool) {
	if os.Getenv("GOMEMLIMIT") != "" || cacheBytes <= 0 {
		return 0, false
	}
	limit := cidstore.GoMemoryLimit(cacheBytes)
	debug.SetMemoryLimit(limit)
	return limit, true
}

// storeHandle holds the store once the store hook has opened it, so that
// the REST handler and the metrics collector, built before it, can reach
// it. It adapts the store to the REST ports.
//
// For role reader the replica swaps a new read-only store in after every
// checkpoint it loads (swap); readers of the handle load the pointer once
// per call.
type storeHandle struct {
	st        atomic.Pointer[cidstore.Store]
	notifyFn  atomic.Pointer[func([]cidstore.Mutation)]
	promotion int  // configured threshold, reported until the store is open
	readOnly  bool // role reader
}

func newStoreHandle(cfg Config) *storeHandle {
	return &storeHandle{promotion: cfg.PromotionThreshold, readOnly: cfg.Role == "reader"}
}

func (h *storeHandle) set(st *cidstore.Store) { h.st.Store(st) }
func (h *storeHandle) store() *cidstore.Store { return h.st.Load() }

// swap makes st the current store and returns the previous one (nil if
// none), which the caller closes.
func (h *storeHandle) swap(st *cidstore.Store) *cidstore.Store { return h.st.Swap(st) }

// close detaches and closes the store; a second call is a no-op.
func (h *storeHandle) close() error {
	st := h.st.Swap(nil)
	if st == nil {
		return nil
	}
	return st.Close()
}

// setNotify sets where durable mutations go (the data plane's PUB socket);
// nil drops them.
func (h *storeHandle) setNotify(fn func([]cidstore.Mutation)) {
	if fn == nil {
		h.notifyFn.Store(nil)
		return
	}
	h.notifyFn.Store(&fn)
}

// notify is the store's Options.Notify. The store is opened before the data
// plane exists, hence the indirection.
func (h *storeHandle) notify(ms []cidstore.Mutation) {
	if fn := h.notifyFn.Load(); fn != nil {
		(*fn)(ms)
	}
}

func (h *storeHandle) stats() (cidstore.Stats, bool) {
	st := h.st.Load()
	if st == nil {
		return cidstore.Stats{}, false
	}
	return st.Stats(), true
}

// PromotionThreshold implements restapi.PromotionThreshold.
func (h *storeHandle) PromotionThreshold() int {
	if st := h.st.Load(); st != nil {
		return st.PromotionThreshold()
	}
	return h.promotion
}

// SetPromotionThreshold implements restapi.PromotionThreshold. The new
// value lasts until the process exits; promotion_threshold sets the value
// of the next start.
func (h *storeHandle) SetPromotionThreshold(n int) error {
	if h.readOnly {
		return fmt.Errorf("%w: a reader does not write; set promotion_threshold on the writer", restapi.ErrUnavailable)
	}
	st := h.st.Load()
	if st == nil {
		return restapi.ErrUnavailable
	}
	return restError(st.SetPromotionThreshold(n))
}

// BucketInfo implements restapi.Buckets.
func (h *storeHandle) BucketInfo(id uint32) (restapi.BucketInfo, error) {
	st := h.st.Load()
	if st == nil {
		return restapi.BucketInfo{}, restapi.ErrUnavailable
	}
	b, ok := st.BucketInfo(id)
	if !ok {
		return restapi.BucketInfo{}, port.ErrNotFound
	}
	return restapi.BucketInfo{
		ID:            b.ID,
		LocalDepth:    b.LocalDepth,
		EntryCount:    b.EntryCount,
		SortedCount:   b.SortedCount,
		SpilledKeys:   b.SpilledKeys,
		LastCompacted: b.LastCompacted,
		ChecksumOK:    b.ChecksumOK,
		DangerScore:   b.DangerScore,
		LastMerge:     b.LastMerge,
	}, nil
}

// restError maps store sentinels to the REST ports' errors.
func restError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cidstore.ErrInvalid):
		return fmt.Errorf("%w: %w", restapi.ErrOutOfRange, err)
	case errors.Is(err, cidstore.ErrClosed):
		return fmt.Errorf("%w: %w", restapi.ErrUnavailable, err)
	}
	return err
}

// tuner is the auto-tuner of the writer's batching (DESIGN.md §8): the
// controller whose knobs the batcher reads, and its loop, which the data
// plane's hooks start and stop. It backs /config/batch_size: PUT sets the
// controller's current batch size and the loop continues from it. With
// auto_tune off the controller is disabled: the knobs stay at batch_size
// (or at what PUT set) and the default flush interval.
type tuner struct {
	ctrl *autotune.Controller
	log  *zap.Logger
	met  *tunerMetrics

	stop context.CancelFunc // nil until start
	done chan struct{}
}

func newTuner(cfg Config, reg prometheus.Registerer, log *zap.Logger) (*tuner, error) {
	t := &tuner{log: log.Named("autotune")}
	ctrl, err := autotune.New(autotune.Options{
		Mode:             cfg.AutoTuneMode,
		Disabled:         !cfg.AutoTune,
		InitialBatchSize: cfg.BatchSize,
		Report:           t.report,
	})
	if err != nil {
		return nil, err
	}
	t.ctrl = ctrl
	if t.met, err = newTunerMetrics(reg, ctrl); err != nil {
		return nil, err
	}
	return t, nil
}

// start runs the loop on the batcher's measurements until stop.
func (t *tuner) start(b *Batcher) {
	ctx, cancel := context.WithCancel(context.Background())
	t.stop, t.done = cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		t.ctrl.Run(ctx, func() autotune.Sample { return b.TakeWindow().Sample() })
	}()
	o := t.ctrl.Options()
	t.log.Info("auto-tuner started", zap.Bool("enabled", !o.Disabled), zap.Stringer("mode", o.Mode),
		zap.Int("batch_size", t.ctrl.BatchSize()), zap.Duration("flush_interval", t.ctrl.FlushInterval()),
		zap.Duration("interval", o.Interval))
}

// halt stops the loop, if it runs, and waits for it.
func (t *tuner) halt() {
	if t.stop != nil {
		t.stop()
		<-t.done
		t.stop = nil
	}
}

// report logs a decision and counts it. Changes (and the manual setting)
// are logged at info, the rest at debug: the loop steps four times a
// second.
func (t *tuner) report(d autotune.Decision) {
	t.met.decisions.WithLabelValues(string(d.Reason)).Inc()
	lvl := zap.DebugLevel
	switch d.Reason {
	case autotune.ReasonAdjust, autotune.ReasonManual, autotune.ReasonBreakerOpen, autotune.ReasonBreakerClose:
		lvl = zap.InfoLevel
	}
	if d.Reason == autotune.ReasonBreakerOpen {
		lvl = zap.WarnLevel
	}
	ce := t.log.Check(lvl, "auto-tune decision")
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("reason", string(d.Reason)),
		zap.Stringer("mode", d.Mode),
		zap.Int("batch_before", d.BatchBefore),
		zap.Int("batch_after", d.BatchAfter),
		zap.Duration("flush_before", d.FlushBefore),
		zap.Duration("flush_after", d.FlushAfter),
		zap.Uint64("pairs", d.Sample.Pairs),
		zap.Float64("throughput", d.Sample.Throughput),
		zap.Duration("p99", d.Sample.P99),
		zap.Duration("avg", d.Sample.Avg),
		zap.Float64("queue_depth", d.Sample.QueueDepth),
		zap.Duration("filtered_p99", d.Filtered.P99),
		zap.Float64("filtered_queue_depth", d.Filtered.QueueDepth),
		zap.Float64("batch_setpoint", d.BatchSetpoint),
		zap.Float64("batch_error", d.BatchError),
		zap.Duration("flush_target", d.FlushTarget),
		zap.Float64("flush_error", d.FlushError),
		zap.Bool("breaker_open", d.BreakerOpen),
	)
}

// BatchSize implements restapi.BatchSize: the current batch size.
func (t *tuner) BatchSize() int { return t.ctrl.BatchSize() }

// SetBatchSize implements restapi.BatchSize: the loop continues from n.
func (t *tuner) SetBatchSize(n int) error {
	if err := t.ctrl.SetBatchSize(n); err != nil {
		if errors.Is(err, autotune.ErrOutOfRange) {
			return fmt.Errorf("%w: %w", restapi.ErrOutOfRange, err)
		}
		return err
	}
	return nil
}

// State is a stage of the process's life, as /ready reports it.
type State int32

const (
	StateStarting   State = iota // before the store is opened
	StateRecovering              // opening the store and replaying the WAL
	StateReady                   // store open, data plane bound
	StateStopping                // shutting down
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRecovering:
		return "recovering"
	case StateReady:
		return "ready"
	case StateStopping:
		return "stopping"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Readiness is the process's state; safe for concurrent use.
type Readiness struct {
	s  atomic.Int32
	st *storeHandle // nil: the state alone decides
}

// newReadiness returns the readiness of a process serving h: ready means
// state Ready and a store in h. A writer's store is open before the state
// becomes Ready; a reader's store appears when the replica has loaded the
// writer's file the first time, which may be later.
func newReadiness(h *storeHandle) *Readiness { return &Readiness{st: h} }

// Set moves to state s.
func (r *Readiness) Set(s State) { r.s.Store(int32(s)) }

// State returns the current state.
func (r *Readiness) State() State { return State(r.s.Load()) }

// Ready reports whether the process serves traffic.
func (r *Readiness) Ready() bool {
	return r.State() == StateReady && (r.st == nil || r.st.store() != nil)
}

// writerView is the data plane's view of a writer's store: it reaches the
// store through the handle, so the ZeroMQ sockets can be bound (answering
// 503 "not ready") before the store has recovered.
type writerView struct{ h *storeHandle }

var errStoreNotOpen = fmt.Errorf("%w: the store is not open yet", cidstore.ErrClosed)

func (v writerView) st() (*cidstore.Store, error) {
	if st := v.h.store(); st != nil {
		return st, nil
	}
	return nil, errStoreNotOpen
}

func (v writerView) Insert(ctx context.Context, k, val cidstore.E) error {
	st, err := v.st()
	if err != nil {
		return err
	}
	return st.Insert(ctx, k, val)
}

func (v writerView) InsertBatch(ctx context.Context, pairs []cidstore.Pair) error {
	st, err := v.st()
	if err != nil {
		return err
	}
	return st.InsertBatch(ctx, pairs)
}

func (v writerView) Get(ctx context.Context, k cidstore.E) ([]cidstore.E, error) {
	st, err := v.st()
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, k)
}

func (v writerView) Delete(ctx context.Context, k cidstore.E) error {
	st, err := v.st()
	if err != nil {
		return err
	}
	return st.Delete(ctx, k)
}

func (v writerView) DeleteValue(ctx context.Context, k, val cidstore.E) error {
	st, err := v.st()
	if err != nil {
		return err
	}
	return st.DeleteValue(ctx, k, val)
}

func (v writerView) DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error {
	st, err := v.st()
	if err != nil {
		return err
	}
	return st.DeleteBatch(ctx, dels)
}

func (v writerView) Stats() cidstore.Stats {
	if st := v.h.store(); st != nil {
		return st.Stats()
	}
	return cidstore.Stats{}
}
