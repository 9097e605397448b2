package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/port"
	h5store "github.com/cidstore/cidstore/storage-hdf5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// replicaLoadAttempts bounds the loads of one poll that fail because the
// writer reused the space of the generation being loaded (ErrStale); each
// retry first moves the Reader to the newest commit.
const replicaLoadAttempts = 5

// replica is role reader: a read-only view of the writer's HDF5 file in
// DATA_DIR (DESIGN.md §6/§9). Every poll (cfg.ReaderRefreshInterval) it
// moves an h5store.Reader to the writer's newest commit; when that changed,
// it opens a new read-only core store over the Reader, swaps it into the
// storeHandle and closes the old one. Clients see whole checkpoints only:
// what the writer acknowledged becomes visible at its next checkpoint plus
// one poll.
//
// The replica never creates, locks or writes anything in DATA_DIR: until
// the writer has created cidstore.h5 it waits (the store handle stays
// empty, so /ready answers 503).
type replica struct {
	path  string
	every time.Duration
	cache int64
	h     *storeHandle
	log   *zap.Logger
	klog  port.Logger

	// Owned by the run goroutine (and by close after it has ended).
	rd        *h5store.Reader
	rdFile    os.FileInfo // the file rd opened, to notice a replaced file
	waitOn    string      // last reason logged for not having a Reader
	failSince time.Time   // first failed open of an existing file; zero = none
	pending   bool        // rd shows a commit the served store does not hold

	lsn         atomic.Uint64 // checkpoint LSN of the loaded store
	gen         atomic.Uint64 // h5store generation of the loaded store
	lastCurrent atomic.Int64  // Unix nanoseconds when the store was last known to be the newest checkpoint; 0 = never
	loads       atomic.Uint64
	retries     atomic.Uint64 // loads the writer overtook and that were retried
	errs        atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

func newReplica(cfg Config, h *storeHandle, log *zap.Logger) *replica {
	return &replica{
		path:  cfg.H5Path(),
		every: cfg.ReaderRefreshInterval(),
		cache: cfg.CacheBytes,
		h:     h,
		log:   log.Named("replica"),
		klog:  newKVLogger(log, "store"),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// start runs the poll loop; the first poll runs at once.
func (r *replica) start() { go r.run() }

func (r *replica) run() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.poll()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// close ends the poll loop, then closes the current store and the Reader.
func (r *replica) close() error {
	close(r.stop)
	<-r.done
	var err error
	if st := r.h.swap(nil); st != nil {
		err = st.Close()
	}
	if r.rd != nil {
		err = errors.Join(err, r.rd.Close())
		r.rd = nil
	}
	return err
}

// poll brings the served store up to the writer's newest commit.
func (r *replica) poll() {
	if r.rd != nil && r.replaced() {
		r.log.Warn("store file was replaced; reopening it", zap.String("path", r.path))
		_ = r.rd.Close()
		r.rd = nil
	}
	if r.rd == nil {
		if !r.openReader() {
			return
		}
		r.pending = true
	} else {
		changed, err := r.rd.Refresh()
		if err != nil {
			r.errs.Add(1)
			r.log.Warn("refresh failed; serving the loaded checkpoint", zap.Error(err))
			return
		}
		switch {
		case !changed || r.pending:
		case r.sameLSN():
			// The writer checkpoints every interval, idle or not: a commit
			// at the LSN already served holds the same pairs (at most laid
			// out anew by compaction), so the loaded store stays.
			r.gen.Store(r.rd.Generation())
		default:
			r.pending = true
		}
	}
	if !r.pending {
		r.lastCurrent.Store(time.Now().UnixNano())
		return
	}
	if err := r.load(); err != nil {
		r.errs.Add(1)
		r.log.Warn("loading the writer's checkpoint failed; serving the previous one, retrying next poll", zap.Error(err))
	}
}

// sameLSN reports whether the Reader's generation was committed at the
// checkpoint LSN of the loaded store. LSN 0 (a writer without a WAL) never
// counts as the same.
func (r *replica) sameLSN() bool {
	m, _, ok, err := r.rd.LoadMeta()
	return err == nil && ok && m.CheckpointLSN != 0 && m.CheckpointLSN == r.lsn.Load()
}

// openReader opens the Reader once the writer has created the file.
func (r *replica) openReader() bool {
	fi, err := os.Stat(r.path)
	if err != nil {
		r.waiting(err)
		return false
	}
	rd, err := h5store.OpenReader(r.path, h5store.ReaderOptions{CacheBytes: r.cache, Logger: r.klog})
	if err != nil {
		r.waiting(err)
		return false
	}
	r.rd, r.rdFile, r.waitOn, r.failSince = rd, fi, "", time.Time{}
	r.log.Info("opened the writer's store file read-only", zap.String("path", r.path))
	return true
}

// openGrace is how long opening an existing store file may fail before it
// is a warning: a writer that is starting (opening the file, turning on
// SWMR writing) can make a reader's open fail for a moment.
const openGrace = 10 * time.Second

// waiting logs why there is no Reader yet, once per distinct reason (and
// once more when a failure outlasts openGrace).
func (r *replica) waiting(err error) {
	if errors.Is(err, os.ErrNotExist) {
		r.failSince = time.Time{}
		if r.waitOn != "missing" {
			r.waitOn = "missing"
			r.log.Info("waiting for the writer to create the store file", zap.String("path", r.path))
		}
		return
	}
	if r.failSince.IsZero() {
		r.failSince = time.Now()
	}
	r.errs.Add(1)
	msg := err.Error()
	if time.Since(r.failSince) < openGrace {
		r.log.Debug("cannot open the writer's store file yet; retrying", zap.String("path", r.path), zap.Error(err))
		return
	}
	if msg != r.waitOn {
		r.waitOn = msg
		r.log.Warn("cannot open the writer's store file; retrying", zap.String("path", r.path),
			zap.Duration("failing_for", time.Since(r.failSince).Round(time.Second)), zap.Error(err))
	}
}

// replaced reports whether path now names another file than the Reader's
// (the data directory was deleted and the writer created a new store).
func (r *replica) replaced() bool {
	fi, err := os.Stat(r.path)
	return err == nil && !os.SameFile(fi, r.rdFile)
}

// load opens a read-only store on the Reader's generation and swaps it in.
// A load that the writer overtakes (it reused the space of that generation
// meanwhile) fails with ErrStale: move the Reader on and load again.
func (r *replica) load() error {
	t0 := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		var st *cidstore.Store
		st, err = cidstore.Open(&readerBackend{r: r.rd}, cidstore.Options{ReadOnly: true, Logger: r.klog})
		if err == nil {
			r.publish(st, time.Since(t0), attempt)
			return nil
		}
		if attempt >= replicaLoadAttempts || !(errors.Is(err, h5store.ErrStale) || errors.Is(err, port.ErrCorrupt)) {
			break
		}
		changed, rerr := r.rd.Refresh()
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		if !changed && !errors.Is(err, h5store.ErrStale) {
			break // corrupt at the newest generation: nothing to retry
		}
		r.retries.Add(1)
		r.log.Debug("writer overtook the load; retrying on its newest commit", zap.Int("attempt", attempt), zap.Error(err))
	}
	return fmt.Errorf("load generation %d: %w", r.rd.Generation(), err)
}

func (r *replica) publish(st *cidstore.Store, took time.Duration, attempts int) {
	s := st.Stats()
	gen := r.rd.Generation()
	r.lsn.Store(s.CheckpointLSN)
	r.gen.Store(gen)
	r.pending = false
	r.lastCurrent.Store(time.Now().UnixNano())
	first := r.loads.Add(1) == 1
	if old := r.h.swap(st); old != nil {
		// Requests that loaded old finish on it (its state is in memory);
		// the data plane retries those that find it closed.
		if err := old.Close(); err != nil {
			r.log.Warn("close previous replica store", zap.Error(err))
		}
	}
	lvl := zap.DebugLevel
	if first {
		lvl = zap.InfoLevel
	}
	r.log.Log(lvl, "loaded checkpoint",
		zap.Uint64("generation", gen),
		zap.Uint64("checkpoint_lsn", s.CheckpointLSN),
		zap.Uint64("keys", s.Keys),
		zap.Uint64("values", s.Values),
		zap.Int("attempts", attempts),
		zap.Duration("took", took))
}

// readerBackend lends the replica's Reader to one read-only core store:
// core closes its backend in Close, but the Reader outlives the store (the
// next store is opened on it), so Close only detaches.
type readerBackend struct {
	r      *h5store.Reader
	closed atomic.Bool
}

func (b *readerBackend) usable() error {
	if b.closed.Load() {
		return h5store.ErrClosed
	}
	return nil
}

func (b *readerBackend) LoadMeta() (port.Meta, []uint32, bool, error) {
	if err := b.usable(); err != nil {
		return port.Meta{}, nil, false, err
	}
	return b.r.LoadMeta()
}

func (b *readerBackend) ReadBucket(id uint32) (port.BucketRecord, error) {
	if err := b.usable(); err != nil {
		return port.BucketRecord{}, err
	}
	return b.r.ReadBucket(id)
}

func (b *readerBackend) ReadValueSet(id uint64) (port.ValueSetRecord, error) {
	if err := b.usable(); err != nil {
		return port.ValueSetRecord{}, err
	}
	return b.r.ReadValueSet(id)
}

func (b *readerBackend) BucketIDs() ([]uint32, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	return b.r.BucketIDs()
}

func (b *readerBackend) ValueSetIDs(after uint64, limit int) ([]uint64, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	return b.r.ValueSetIDs(after, limit)
}

// Commit returns port.ErrReadOnly.
func (b *readerBackend) Commit(*port.Checkpoint) error { return port.ErrReadOnly }

// Close detaches from the Reader without closing it.
func (b *readerBackend) Close() error {
	if b.closed.Swap(true) {
		return h5store.ErrClosed
	}
	return nil
}

var (
	_ port.Backend = (*readerBackend)(nil)
	_ port.Lister  = (*readerBackend)(nil)
)

// replicaView is the data plane's store in role reader: each call goes to
// the store current at that moment. Mutations never reach it (the server
// is ReadOnly) and return cidstore.ErrReadOnly regardless.
type replicaView struct{ h *storeHandle }

var errNotLoaded = fmt.Errorf("%w: the replica has not loaded the writer's store yet", cidstore.ErrClosed)

// Get reads key from the current store. A store swapped out and closed
// while the call was on its way answers ErrClosed; then the call goes to
// the new one.
func (v replicaView) Get(ctx context.Context, key cidstore.E) ([]cidstore.E, error) {
	for range 3 {
		st := v.h.store()
		if st == nil {
			return nil, errNotLoaded
		}
		vals, err := st.Get(ctx, key)
		if err == nil || !errors.Is(err, cidstore.ErrClosed) || v.h.store() == st {
			return vals, err
		}
	}
	return nil, fmt.Errorf("%w: replica store swapped repeatedly", cidstore.ErrClosed)
}

// Stats returns the current store's counters (zero before the first load).
func (v replicaView) Stats() cidstore.Stats {
	if st := v.h.store(); st != nil {
		return st.Stats()
	}
	return cidstore.Stats{}
}

func (replicaView) Insert(context.Context, cidstore.E, cidstore.E) error {
	return cidstore.ErrReadOnly
}

func (replicaView) InsertBatch(context.Context, []cidstore.Pair) error {
	return cidstore.ErrReadOnly
}

func (replicaView) Delete(context.Context, cidstore.E) error { return cidstore.ErrReadOnly }

func (replicaView) DeleteValue(context.Context, cidstore.E, cidstore.E) error {
	return cidstore.ErrReadOnly
}

func (replicaView) DeleteBatch(context.Context, []cidstore.Deletion) error {
	return cidstore.ErrReadOnly
}

// replicaCollector exports the replica's lag. The gauges appear with the
// first loaded checkpoint; the counters are always there.
type replicaCollector struct {
	r                                  *replica
	lsn, gen, age, loads, retries, err *prometheus.Desc
}

func newReplicaCollector(r *replica) *replicaCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &replicaCollector{
		r:     r,
		lsn:   d("cidstore_replica_checkpoint_lsn", "Checkpoint LSN of the writer's commit the replica serves."),
		gen:   d("cidstore_replica_generation", "HDF5 commit generation the replica serves."),
		age:   d("cidstore_replica_refresh_age_seconds", "Seconds since the replica last found that it serves the writer's newest commit."),
		loads: d("cidstore_replica_loads_total", "Writer checkpoints the replica loaded."),
		retries: d("cidstore_replica_load_retries_total",
			"Loads retried because the writer reused the space of the commit being loaded (many: raise the writer's reuse delay or load faster)."),
		err: d("cidstore_replica_errors_total", "Failed refreshes and loads of the replica (it keeps serving the previous checkpoint)."),
	}
}

// Describe implements prometheus.Collector.
func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lsn
	ch <- c.gen
	ch <- c.age
	ch <- c.loads
	ch <- c.retries
	ch <- c.err
}

// Collect implements prometheus.Collector.
func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	g, k := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.loads, k, float64(c.r.loads.Load()))
	ch <- prometheus.MustNewConstMetric(c.retries, k, float64(c.r.retries.Load()))
	ch <- prometheus.MustNewConstMetric(c.err, k, float64(c.r.errs.Load()))
	last := c.r.lastCurrent.Load()
	if c.r.loads.Load() == 0 || last == 0 {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.lsn, g, float64(c.r.lsn.Load()))
	ch <- prometheus.MustNewConstMetric(c.gen, g, float64(c.r.gen.Load()))
	ch <- prometheus.MustNewConstMetric(c.age, g, time.Since(time.Unix(0, last)).Seconds())
}
