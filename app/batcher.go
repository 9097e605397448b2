package app

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
	zmqserver "github.com/cidstore/cidstore/transport-zmq"
)

// Batcher is the server-side write batcher: it sits between the data plane
// and the store (it is a zmqserver.Store wrapping one) and groups the
// single-pair mutations that clients send concurrently (INSERT,
// DELETE_KEY, DELETE_VALUE_FROM_KEY) into one InsertBatch or DeleteBatch:
// one WAL transaction, one fdatasync for the group.
//
// # Grouping
//
// One goroutine (the flusher) takes operations in arrival order. A group
// is cut when it holds knobs.BatchSize() pairs, when knobs.FlushInterval()
// has passed since its first operation arrived (or since the previous
// group's store call returned, if later), when no operation has arrived
// for a quarter of that interval (the burst is over: lingering on
// would only add delay), or when the next operation is of the other kind
// (insert vs delete), so that an insert and a delete of the same key are
// never reordered. One group is in the store at a time; operations arriving
// meanwhile form the next one, so under load groups fill without waiting.
//
// # Acknowledgement and errors
//
// Each caller returns when its group's store call has returned, that is
// when its pair is durable under the store's sync policy, with the group's
// error. A single operation is validated before it joins a group (a zero
// key or value fails that caller alone with cidstore.ErrInvalid), so one
// client's bad input never fails another's operation. A caller whose
// context ends while its operation waits returns the context's error; the
// operation may still be applied (as with any cancelled store call).
//
// Batch calls (InsertBatch, DeleteBatch) pass straight through, after the
// single operations that arrived before them are durable; Get and Stats
// pass straight through. After Close the batcher passes everything
// through.
//
// # Measurement
//
// The flusher measures, per window (taken by the auto-tuner's loop), the
// batching delay of every pair (the wait the knobs cause: see record) and
// its total latency (arrival → acknowledgement), and the demand: pairs
// available when a group was cut, in it or waiting behind it.
type Batcher struct {
	st    zmqserver.Store
	knobs BatchKnobs
	obs   func(groupPairs int) // nil: none

	in      chan *batchOp
	mu      sync.RWMutex // held shared while sending to in; close takes it exclusively
	closed  bool
	done    chan struct{} // closed when the flusher exits
	singles atomic.Int64  // single operations queued and not yet acknowledged

	win batchWindow

	// flusher-owned
	prevCut, prevEnd time.Time // the previous group's store call: start, end
	prevFull         bool      // the previous group was cut by the batch size
	group            []*batchOp
	pairs            []cidstore.Pair
	dels             []cidstore.Deletion
}

// BatchKnobs is what the batcher reads per group: the auto-tuner.
type BatchKnobs interface {
	BatchSize() int
	FlushInterval() time.Duration
}

// batchQueue bounds the operations waiting for the flusher; callers beyond
// it wait to enqueue.
const batchQueue = 4 * autotune.MaxBatchSize

type opKind uint8

const (
	opInsert  opKind = iota
	opDelete         // whole key when value is zero
	opBarrier        // a batch call waiting for the singles before it
)

// batchOp is one operation waiting in the batcher.
type batchOp struct {
	kind       opKind
	key, value cidstore.E
	arrived    time.Time
	done       chan error // capacity 1: the flusher never blocks on it
}

var batchOpPool = sync.Pool{New: func() any { return &batchOp{done: make(chan error, 1)} }}

// NewBatcher starts the batcher's flusher on st, reading knobs per group
// (an *autotune.Controller, or fixed values); Close stops it. obs, if not
// nil, is told the size of every group.
func NewBatcher(st zmqserver.Store, knobs BatchKnobs, obs func(int)) *Batcher {
	b := &Batcher{
		st:    st,
		knobs: knobs,
		obs:   obs,
		in:    make(chan *batchOp, batchQueue),
		done:  make(chan struct{}),
		group: make([]*batchOp, 0, autotune.MaxBatchSize),
		pairs: make([]cidstore.Pair, 0, autotune.MaxBatchSize),
		dels:  make([]cidstore.Deletion, 0, autotune.MaxBatchSize),
	}
	b.win.reset(time.Now())
	go b.run()
	return b
}

// Close flushes the operations already queued, waits until they are
// acknowledged and stops the flusher. Later calls pass through. It does
// not close the store.
func (b *Batcher) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	<-b.done
}

var errZeroIdentifier = fmt.Errorf("%w: zero identifier", cidstore.ErrInvalid)

// Insert implements zmqserver.Store: it joins the next insert group.
func (b *Batcher) Insert(ctx context.Context, key, value cidstore.E) error {
	if key.IsZero() || value.IsZero() {
		return errZeroIdentifier
	}
	return b.single(ctx, opInsert, key, value)
}

// Delete implements zmqserver.Store: it joins the next delete group.
func (b *Batcher) Delete(ctx context.Context, key cidstore.E) error {
	if key.IsZero() {
		return errZeroIdentifier
	}
	return b.single(ctx, opDelete, key, cidstore.E{})
}

// DeleteValue implements zmqserver.Store: it joins the next delete group.
func (b *Batcher) DeleteValue(ctx context.Context, key, value cidstore.E) error {
	if key.IsZero() || value.IsZero() {
		return errZeroIdentifier
	}
	return b.single(ctx, opDelete, key, value)
}

// InsertBatch implements zmqserver.Store: the singles queued before it are
// made durable first, then the batch goes to the store as it is.
func (b *Batcher) InsertBatch(ctx context.Context, pairs []cidstore.Pair) error {
	if err := b.barrier(ctx); err != nil {
		return err
	}
	return b.st.InsertBatch(ctx, pairs)
}

// DeleteBatch implements zmqserver.Store, like InsertBatch.
func (b *Batcher) DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error {
	if err := b.barrier(ctx); err != nil {
		return err
	}
	return b.st.DeleteBatch(ctx, dels)
}

// Get implements zmqserver.Store.
func (b *Batcher) Get(ctx context.Context, key cidstore.E) ([]cidstore.E, error) {
	return b.st.Get(ctx, key)
}

// Stats implements zmqserver.Store.
func (b *Batcher) Stats() cidstore.Stats { return b.st.Stats() }

// direct is a single operation passed straight to the store (after close).
func (b *Batcher) direct(ctx context.Context, kind opKind, key, value cidstore.E) error {
	switch {
	case kind == opInsert:
		return b.st.Insert(ctx, key, value)
	case value.IsZero():
		return b.st.Delete(ctx, key)
	}
	return b.st.DeleteValue(ctx, key, value)
}

// single queues one operation and waits for its group's outcome.
func (b *Batcher) single(ctx context.Context, kind opKind, key, value cidstore.E) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := batchOpPool.Get().(*batchOp)
	op.kind, op.key, op.value = kind, key, value
	queued, err := b.enqueue(ctx, op)
	if !queued {
		batchOpPool.Put(op)
		if err != nil {
			return err
		}
		return b.direct(ctx, kind, key, value)
	}
	select {
	case err := <-op.done:
		batchOpPool.Put(op)
		return err
	case <-ctx.Done():
		// The flusher still owns op (it will send to done, which has room):
		// leave it to the garbage collector.
		return ctx.Err()
	}
}

// enqueue hands op to the flusher. queued is false when the batcher is
// closed (err nil: pass through) or ctx ended first (err set).
func (b *Batcher) enqueue(ctx context.Context, op *batchOp) (queued bool, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false, nil
	}
	if op.kind != opBarrier {
		b.singles.Add(1)
	}
	op.arrived = time.Now()
	select {
	case b.in <- op:
		return true, nil
	case <-ctx.Done():
		if op.kind != opBarrier {
			b.singles.Add(-1)
		}
		return false, ctx.Err()
	}
}

// barrier returns once every single operation queued before it is
// acknowledged. With none queued (a batch-only workload) it costs one
// atomic load.
func (b *Batcher) barrier(ctx context.Context) error {
	if b.singles.Load() == 0 {
		return nil
	}
	op := batchOpPool.Get().(*batchOp)
	op.kind, op.key, op.value = opBarrier, cidstore.E{}, cidstore.E{}
	queued, err := b.enqueue(ctx, op)
	if !queued {
		batchOpPool.Put(op)
		return err // nil when closed: close has flushed everything
	}
	select {
	case <-op.done:
		batchOpPool.Put(op)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the flusher.
func (b *Batcher) run() {
	defer close(b.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var carry *batchOp // the operation that cut the last group, first of the next
	for {
		first := carry
		carry = nil
		if first == nil {
			op, ok := <-b.in
			if !ok {
				return
			}
			first = op
		}
		if first.kind == opBarrier {
			first.done <- nil // every single before it has been acknowledged
			continue
		}
		group := append(b.group[:0], first)
		limit := b.knobs.BatchSize()
		linger := b.knobs.FlushInterval()
		// Linger counts from when the store became free: a pair that
		// arrived while the previous group was in the store could not have
		// gone earlier, and the writers that group acknowledged are on
		// their way back.
		last := later(first.arrived, b.prevEnd)
		deadline := last.Add(linger)
		gap := linger / 4
	collect:
		for len(group) < limit {
			var op *batchOp
			var ok bool
			select {
			case op, ok = <-b.in:
			default:
				cut := last.Add(gap)
				if deadline.Before(cut) {
					cut = deadline
				}
				wait := time.Until(cut)
				if wait <= 0 {
					break collect
				}
				if wait < spinBelow {
					var got bool
					if op, ok, got = b.poll(cut); !got {
						break collect
					}
					break
				}
				timer.Reset(wait)
				select {
				case op, ok = <-b.in:
					timer.Stop()
				case <-timer.C:
					break collect
				}
			}
			if !ok {
				break // closed: flush what we have; the next receive ends run
			}
			if op.kind != first.kind {
				carry = op
				break
			}
			group = append(group, op)
			last = later(op.arrived, b.prevEnd)
		}
		demand := len(group) + len(b.in)
		if carry != nil {
			demand++
		}
		b.flush(group, demand, len(group) >= limit)
		b.group = group[:0]
	}
}

// spinBelow is the wait under which the flusher polls instead of sleeping
// on a timer: when the process is otherwise idle, a Go timer shorter than
// a millisecond fires after about a millisecond (the runtime's netpoller
// sleeps in whole milliseconds on Linux), which measured as a 1 ms p99
// batching delay with a 10 µs flush interval. Polling costs CPU for at
// most one flush interval per group.
const spinBelow = time.Millisecond

// poll waits for an operation until cut, yielding the processor between
// tries so that the writers it waits for can run. got is false at cut.
func (b *Batcher) poll(cut time.Time) (op *batchOp, ok, got bool) {
	for {
		select {
		case op, ok = <-b.in:
			return op, ok, true
		default:
		}
		if !time.Now().Before(cut) {
			return nil, false, false
		}
		runtime.Gosched()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// flush makes one group durable and acknowledges its operations.
func (b *Batcher) flush(group []*batchOp, demand int, full bool) {
	ctx := context.Background() // one caller's cancellation must not fail the others
	start := time.Now()
	var err error
	switch {
	case len(group) == 1:
		op := group[0]
		err = b.direct(ctx, op.kind, op.key, op.value)
	case group[0].kind == opInsert:
		pairs := b.pairs[:0]
		for _, op := range group {
			pairs = append(pairs, cidstore.Pair{Key: op.key, Value: op.value})
		}
		err = b.st.InsertBatch(ctx, pairs)
		b.pairs = pairs[:0]
	default:
		dels := b.dels[:0]
		for _, op := range group {
			dels = append(dels, cidstore.Deletion{Key: op.key, Value: op.value})
		}
		err = b.st.DeleteBatch(ctx, dels)
		b.dels = dels[:0]
	}
	end := time.Now()
	// Record before acknowledging: once acknowledged, an op may be reused.
	capped := time.Time{} // a pair arriving before this did not fit in the previous group
	if b.prevFull {
		capped = b.prevCut
	}
	b.win.record(group, capped, b.prevEnd, start, end, demand)
	b.prevCut, b.prevEnd, b.prevFull = start, end, full
	b.singles.Add(-int64(len(group)))
	for _, op := range group {
		op.done <- err
	}
	clear(group) // drop the references; the callers own the ops again
	if b.obs != nil {
		b.obs(len(group))
	}
}

// TakeWindow returns the measurements since the last call and starts a
// new window.
func (b *Batcher) TakeWindow() BatchStats { return b.win.take(time.Now()) }

// BatchStats is one window of the batcher's measurements.
type BatchStats struct {
	Elapsed  time.Duration
	Pairs    uint64
	Groups   uint64
	Demand   float64       // mean pairs available when a group was cut
	DelayP99 time.Duration // arrival → group's store call starts
	DelayAvg time.Duration
	TotalP99 time.Duration // arrival → acknowledged
	TotalAvg time.Duration
}

// Sample is the window as the auto-tuner reads it.
func (s BatchStats) Sample() autotune.Sample {
	var tput float64
	if s.Elapsed > 0 {
		tput = float64(s.Pairs) / s.Elapsed.Seconds()
	}
	return autotune.Sample{Pairs: s.Pairs, Throughput: tput, P99: s.DelayP99, Avg: s.DelayAvg, QueueDepth: s.Demand}
}

// batchWindow accumulates one window; the flusher records, the tuner's
// loop takes.
type batchWindow struct {
	mu        sync.Mutex
	start     time.Time
	pairs     uint64
	groups    uint64
	demandSum uint64
	delay     durHist
	total     durHist
}

func (w *batchWindow) reset(now time.Time) {
	w.start, w.pairs, w.groups, w.demandSum = now, 0, 0, 0
	w.delay.reset()
	w.total.reset()
}

// record accounts one group whose store call ran from start to end; the
// previous group's returned at prevEnd.
//
// A pair's batching delay is the wait the knobs cause: from its arrival,
// or from the end of the previous store call if it arrived before that
// call returned (one group is in the store at a time: that wait is the
// store's commit time, which no knob shortens), to the start of its
// group's call. A pair that arrived before capped (set when the previous
// group was cut by the batch size) did not fit in it: its whole wait
// counts.
func (w *batchWindow) record(group []*batchOp, capped, prevEnd, start, end time.Time, demand int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groups++
	w.pairs += uint64(len(group))
	w.demandSum += uint64(demand)
	for _, op := range group {
		from := op.arrived
		if !from.Before(capped) && from.Before(prevEnd) {
			from = prevEnd
		}
		w.delay.add(start.Sub(from))
		w.total.add(end.Sub(op.arrived))
	}
}

func (w *batchWindow) take(now time.Time) BatchStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := BatchStats{
		Elapsed:  now.Sub(w.start),
		Pairs:    w.pairs,
		Groups:   w.groups,
		DelayP99: w.delay.quantile(0.99),
		DelayAvg: w.delay.mean(),
		TotalP99: w.total.quantile(0.99),
		TotalAvg: w.total.mean(),
	}
	if w.groups > 0 {
		s.Demand = float64(w.demandSum) / float64(w.groups)
	}
	w.reset(now)
	return s
}

// durHist is a log-scale histogram of durations: 8 buckets per power of
// two (9 % wide) from 1 ns to about 18 minutes.
type durHist struct {
	counts [durBuckets]uint64
	n      uint64
	sum    time.Duration
}

const (
	durPerOctave = 8
	durBuckets   = 40 * durPerOctave
)

func (h *durHist) reset() { *h = durHist{} }

func (h *durHist) add(d time.Duration) {
	d = max(d, 0)
	i := int(math.Log2(float64(d)+1) * durPerOctave)
	h.counts[min(i, durBuckets-1)]++
	h.n++
	h.sum += d
}

func (h *durHist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile returns the upper bound of the bucket holding quantile q (at
// most 9 % above the true value); 0 when empty.
func (h *durHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var c uint64
	for i, n := range h.counts {
		if c += n; c >= rank {
			return time.Duration(math.Exp2(float64(i+1)/durPerOctave) - 1)
		}
	}
	return time.Duration(math.Exp2(float64(durBuckets)/durPerOctave) - 1)
}
