package app

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/port"
	memstore "github.com/cidstore/cidstore/storage-mem"
	restapi "github.com/cidstore/cidstore/transport-rest"
)

// errReaderUnavailable is returned for role=reader until the HDF5 backend
// lands: a reader opens the writer's files read-only (SWMR), which the
// memory backend's snapshot file cannot offer.
var errReaderUnavailable = errors.New("role reader is not available yet: it needs the HDF5 backend (storage-hdf5), " +
	"which opens the writer's files read-only; run role writer")

// openStore opens the store of cfg's role. It is the one place that picks
// the backend.
//
// TODO(lead): switch the default backend to h5store.Open(DATA_DIR/cidstore.h5,
// ...) when storage-hdf5 lands, and open it read-only for role reader.
func openStore(cfg Config, log port.Logger, notify func([]cidstore.Mutation)) (*cidstore.Store, error) {
	if cfg.Role == "reader" {
		return nil, errReaderUnavailable
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	be, err := memstore.Open(cfg.SnapshotPath())
	if err != nil {
		return nil, err
	}
	st, err := cidstore.Open(be, cidstore.Options{
		WALPath:            cfg.WALPath(),
		Sync:               cfg.Sync,
		SyncInterval:       cfg.SyncInterval,
		WALSizeBytes:       cfg.WALSizeBytes,
		CheckpointInterval: cfg.CheckpointInterval,
		PromotionThreshold: cfg.PromotionThreshold,
		Logger:             log,
		Notify:             notify,
	})
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
	}
	return st, nil
}

// storeHandle holds the store once the store hook has opened it, so that
// the REST handler and the metrics collector, built before it, can reach
// it. It adapts the store to the REST ports.
type storeHandle struct {
	st        atomic.Pointer[cidstore.Store]
	notifyFn  atomic.Pointer[func([]cidstore.Mutation)]
	promotion int // configured threshold, reported until the store is open
}

func newStoreHandle(cfg Config) *storeHandle {
	return &storeHandle{promotion: cfg.PromotionThreshold}
}

func (h *storeHandle) set(st *cidstore.Store) { h.st.Store(st) }
func (h *storeHandle) store() *cidstore.Store { return h.st.Load() }

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
		return restapi.BucketInfo{}, fmt.Errorf("bucket %d: %w", id, port.ErrNotFound)
	}
	return restapi.BucketInfo{
		ID:            b.ID,
		LocalDepth:    b.LocalDepth,
		EntryCount:    b.EntryCount,
		SortedCount:   b.SortedCount,
		SpilledKeys:   b.SpilledKeys,
		LastCompacted: b.LastCompacted,
		ChecksumOK:    b.ChecksumOK,
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

// batchTuner holds the data plane's batch size for /config/batch_size.
//
// TODO(lead): replace with the maintenance auto-tuner when it lands; for now
// it is only a value that nothing else reads.
type batchTuner struct{ n atomic.Int64 }

func newBatchTuner(cfg Config) *batchTuner {
	t := &batchTuner{}
	t.n.Store(int64(cfg.BatchSize))
	return t
}

// BatchSize implements restapi.BatchSize.
func (t *batchTuner) BatchSize() int { return int(t.n.Load()) }

// SetBatchSize implements restapi.BatchSize.
func (t *batchTuner) SetBatchSize(n int) error {
	if n < restapi.MinBatchSize || n > restapi.MaxBatchSize {
		return fmt.Errorf("%w: batch size %d not in [%d, %d]", restapi.ErrOutOfRange, n, restapi.MinBatchSize, restapi.MaxBatchSize)
	}
	t.n.Store(int64(n))
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
type Readiness struct{ s atomic.Int32 }

func newReadiness() *Readiness { return &Readiness{} }

// Set moves to state s.
func (r *Readiness) Set(s State) { r.s.Store(int32(s)) }

// State returns the current state.
func (r *Readiness) State() State { return State(r.s.Load()) }

// Ready reports whether the process serves traffic.
func (r *Readiness) Ready() bool { return r.State() == StateReady }
