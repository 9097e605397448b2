package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// fixedKnobs are knobs that do not move.
type fixedKnobs struct {
	batch int
	flush time.Duration
}

func (k fixedKnobs) BatchSize() int               { return k.batch }
func (k fixedKnobs) FlushInterval() time.Duration { return k.flush }

// heldKnobs start with a flush interval of 1 ns (a group is cut at once)
// until hold sets it to an hour: then a group is cut only by the batch
// size, a kind change or close.
type heldKnobs struct {
	batch int
	flush atomic.Int64
}

func newHeldKnobs(batch int) *heldKnobs {
	k := &heldKnobs{batch: batch}
	k.flush.Store(1)
	return k
}

func (k *heldKnobs) BatchSize() int               { return k.batch }
func (k *heldKnobs) FlushInterval() time.Duration { return time.Duration(k.flush.Load()) }

// startHeld runs a first operation (a delete of an absent key) through b
// and holds it in the gated store, then makes later groups wait: the
// operations the test queues next all meet in the queue. The caller
// releases the delete (g.release) and reads its result.
func startHeld(t *testing.T, g *gatedStore, b *Batcher, k *heldKnobs) <-chan error {
	t.Helper()
	first := async(func() error { return b.Delete(context.Background(), e("nothing")) })
	if op := <-g.entered; op != "delete_key" {
		t.Fatalf("first store call %q, want delete_key", op)
	}
	k.flush.Store(int64(time.Hour))
	return first
}

// autoRelease lets every gated call through from now on, until g.entered
// is closed.
func autoRelease(g *gatedStore) {
	go func() {
		for range g.entered {
			g.release <- struct{}{}
		}
	}()
}

// call is one mutation the gated store received.
type call struct {
	op    string // insert, delete_key, delete_value, insert_batch, delete_batch
	pairs []cidstore.Pair
	dels  []cidstore.Deletion
}

// gatedStore records every mutation it receives and passes it to a real
// durable store. While gated, each mutation announces itself on entered
// and waits for a token on release before it runs.
type gatedStore struct {
	*cidstore.Store
	mu      sync.Mutex
	calls   []call
	gated   bool
	entered chan string
	release chan struct{}
	fail    error // returned by batch calls instead of running them
}

func newGatedStore(t *testing.T, gated bool) *gatedStore {
	t.Helper()
	dir := t.TempDir()
	be, err := memstore.Open(filepath.Join(dir, "snap"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cidstore.Open(be, cidstore.Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return &gatedStore{Store: st, gated: gated, entered: make(chan string, 1024), release: make(chan struct{}, 1024)}
}

func (g *gatedStore) gate(c call) error {
	g.mu.Lock()
	g.calls = append(g.calls, c)
	gated, fail := g.gated, g.fail
	g.mu.Unlock()
	if gated {
		g.entered <- c.op
		<-g.release
	}
	if fail != nil && (c.op == "insert_batch" || c.op == "delete_batch") {
		return fail
	}
	return nil
}

func (g *gatedStore) recorded() []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

func (g *gatedStore) Insert(ctx context.Context, k, v cidstore.E) error {
	if err := g.gate(call{op: "insert", pairs: []cidstore.Pair{{Key: k, Value: v}}}); err != nil {
		return err
	}
	return g.Store.Insert(ctx, k, v)
}

func (g *gatedStore) InsertBatch(ctx context.Context, pairs []cidstore.Pair) error {
	if err := g.gate(call{op: "insert_batch", pairs: slices.Clone(pairs)}); err != nil {
		return err
	}
	return g.Store.InsertBatch(ctx, pairs)
}

func (g *gatedStore) Delete(ctx context.Context, k cidstore.E) error {
	if err := g.gate(call{op: "delete_key", dels: []cidstore.Deletion{{Key: k}}}); err != nil {
		return err
	}
	return g.Store.Delete(ctx, k)
}

func (g *gatedStore) DeleteValue(ctx context.Context, k, v cidstore.E) error {
	if err := g.gate(call{op: "delete_value", dels: []cidstore.Deletion{{Key: k, Value: v}}}); err != nil {
		return err
	}
	return g.Store.DeleteValue(ctx, k, v)
}

func (g *gatedStore) DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error {
	if err := g.gate(call{op: "delete_batch", dels: slices.Clone(dels)}); err != nil {
		return err
	}
	return g.Store.DeleteBatch(ctx, dels)
}

func e(s string) cidstore.E { return cidstore.DeriveString(s) }

// waitQueued spins until n operations wait in the batcher's queue.
func waitQueued(t *testing.T, b *Batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(b.in) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations queued, want %d", len(b.in), n)
		}
		runtime.Gosched()
	}
}

// result collects one goroutine's error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// Operations arriving while a group is in the store form the next group,
// up to the batch size; every caller gets nil and its pair is there.
func TestBatcherGroupsConcurrentCallers(t *testing.T) {
	g := newGatedStore(t, true)
	k := newHeldKnobs(32)
	b := NewBatcher(g, k, nil)
	defer b.Close()
	ctx := context.Background()

	first := startHeld(t, g, b, k)
	const n = 40
	results := make([]<-chan error, n)
	for i := range n {
		results[i] = async(func() error { return b.Insert(ctx, e(fmt.Sprint("k", i%5)), e(fmt.Sprint("v", i))) })
	}
	waitQueued(t, b, n)
	g.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// 40 queued, batch size 32: a group of 32, cut by the cap...
	if op := <-g.entered; op != "insert_batch" {
		t.Fatalf("second call %q, want insert_batch", op)
	}
	g.release <- struct{}{}
	// ...then one of 8, which waits for more until close cuts it.
	go b.Close()
	if op := <-g.entered; op != "insert_batch" {
		t.Fatalf("third call %q, want insert_batch", op)
	}
	g.release <- struct{}{}
	for i, r := range results {
		if err := <-r; err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	calls := g.recorded()
	if len(calls) != 3 || len(calls[1].pairs) != 32 || len(calls[2].pairs) != 8 {
		t.Fatalf("%d calls, want the delete then groups of 32 and 8", len(calls))
	}
	for i := range n {
		vals, err := g.Store.Get(ctx, e(fmt.Sprint("k", i%5)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(vals, e(fmt.Sprint("v", i))) {
			t.Fatalf("pair %d missing after its acknowledgement", i)
		}
	}
}

// A caller returns only after its group's store call has returned.
func TestBatcherAcknowledgesAfterDurability(t *testing.T) {
	g := newGatedStore(t, true)
	b := NewBatcher(g, fixedKnobs{batch: 32, flush: 50 * time.Microsecond}, nil)
	defer b.Close()
	ctx := context.Background()
	r := async(func() error { return b.Insert(ctx, e("k"), e("v")) })
	<-g.entered // the store call started and is held
	select {
	case err := <-r:
		t.Fatalf("Insert returned (%v) while its store call was still running", err)
	default:
	}
	g.release <- struct{}{}
	if err := <-r; err != nil {
		t.Fatal(err)
	}
	if vals, _ := g.Store.Get(ctx, e("k")); len(vals) != 1 {
		t.Fatalf("values %v after the acknowledgement, want one", vals)
	}
}

// A bad operation fails its caller alone; a group's store error reaches
// every member of that group and no one else.
func TestBatcherErrorIsolation(t *testing.T) {
	g := newGatedStore(t, true)
	k := newHeldKnobs(32)
	b := NewBatcher(g, k, nil)
	ctx := context.Background()

	first := startHeld(t, g, b, k)
	good := async(func() error { return b.Insert(ctx, e("k"), e("v1")) })
	waitQueued(t, b, 1)
	for _, bad := range []func() error{
		func() error { return b.Insert(ctx, cidstore.E{}, e("v")) },
		func() error { return b.Insert(ctx, e("k"), cidstore.E{}) },
		func() error { return b.Delete(ctx, cidstore.E{}) },
		func() error { return b.DeleteValue(ctx, e("k"), cidstore.E{}) },
	} {
		if err := bad(); !errors.Is(err, cidstore.ErrInvalid) {
			t.Fatalf("bad operation: %v, want ErrInvalid", err)
		}
	}
	good2 := async(func() error { return b.Insert(ctx, e("k"), e("v2")) })
	waitQueued(t, b, 2)
	g.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	go b.Close()
	<-g.entered
	g.release <- struct{}{}
	if err := errors.Join(<-good, <-good2); err != nil {
		t.Fatal(err)
	}
	// The bad callers never joined the group: it is the two good inserts.
	if calls := g.recorded(); len(calls) != 2 || len(calls[1].pairs) != 2 {
		t.Fatalf("calls %+v, want the delete then a group of the two good inserts", calls)
	}

	// A store error fails the group it belongs to, and only that group.
	g = newGatedStore(t, true)
	k = newHeldKnobs(2)
	b = NewBatcher(g, k, nil)
	defer b.Close()
	first = startHeld(t, g, b, k)
	var rs []<-chan error
	for i := range 4 {
		rs = append(rs, async(func() error { return b.Insert(ctx, e("k"), e(fmt.Sprint("v", i))) }))
		waitQueued(t, b, i+1)
	}
	boom := errors.New("disk on fire")
	g.mu.Lock()
	g.fail = boom
	g.mu.Unlock()
	g.release <- struct{}{} // the delete: not a batch, succeeds
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-g.entered // group 1: the first two inserts, failing
	g.mu.Lock()
	g.fail = nil
	g.mu.Unlock()
	g.release <- struct{}{}
	<-g.entered // group 2: the last two, succeeding
	g.release <- struct{}{}
	for i, r := range rs {
		err := <-r
		if want := i < 2; errors.Is(err, boom) != want {
			t.Fatalf("insert %d: %v, want the group's error: %v", i, err, want)
		}
	}
}

// Inserts and deletes are applied in arrival order: a kind change cuts the
// group.
func TestBatcherKeepsOrder(t *testing.T) {
	g := newGatedStore(t, true)
	kn := newHeldKnobs(1024)
	b := NewBatcher(g, kn, nil)
	ctx := context.Background()
	k := e("k")
	first := startHeld(t, g, b, kn)
	ops := []func() error{
		func() error { return b.Insert(ctx, k, e("v1")) },
		func() error { return b.Insert(ctx, k, e("v2")) },
		func() error { return b.DeleteValue(ctx, k, e("v1")) },
		func() error { return b.Delete(ctx, k) },
		func() error { return b.Insert(ctx, k, e("v3")) },
		func() error { return b.DeleteValue(ctx, k, e("v3")) },
		func() error { return b.Insert(ctx, k, e("v4")) },
	}
	var rs []<-chan error
	for i, op := range ops {
		rs = append(rs, async(op))
		waitQueued(t, b, i+1)
	}
	autoRelease(g)
	g.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	b.Close()
	close(g.entered)
	for _, r := range rs {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, c := range g.recorded()[1:] {
		got = append(got, fmt.Sprintf("%s/%d", c.op, len(c.pairs)+len(c.dels)))
	}
	want := []string{"insert_batch/2", "delete_batch/2", "insert/1", "delete_value/1", "insert/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("store calls %v, want %v", got, want)
	}
	vals, err := g.Store.Get(ctx, k)
	if err != nil || !slices.Equal(vals, []cidstore.E{e("v4")}) {
		t.Fatalf("Get = %v, %v; want [v4]", vals, err)
	}
}

// A batch call waits for the singles queued before it.
func TestBatcherBatchAfterSingles(t *testing.T) {
	g := newGatedStore(t, true)
	kn := newHeldKnobs(1024)
	b := NewBatcher(g, kn, nil)
	ctx := context.Background()
	k := e("k")
	first := startHeld(t, g, b, kn)
	single := async(func() error { return b.Insert(ctx, k, e("v1")) })
	waitQueued(t, b, 1)
	batch := async(func() error { return b.DeleteBatch(ctx, []cidstore.Deletion{{Key: k}}) })
	waitQueued(t, b, 2) // the barrier
	autoRelease(g)
	g.release <- struct{}{}
	if err := errors.Join(<-first, <-single, <-batch); err != nil {
		t.Fatal(err)
	}
	b.Close()
	close(g.entered)
	var got []string
	for _, c := range g.recorded() {
		got = append(got, c.op)
	}
	if want := []string{"delete_key", "insert", "delete_batch"}; !slices.Equal(got, want) {
		t.Fatalf("store calls %v, want %v", got, want)
	}
	if vals, _ := g.Store.Get(ctx, k); len(vals) != 0 {
		t.Fatalf("the batch delete ran before the insert queued ahead of it: %v", vals)
	}
	// With no single queued, a batch goes straight to the store.
	g.mu.Lock()
	g.gated = false
	g.mu.Unlock()
	if err := b.InsertBatch(ctx, []cidstore.Pair{{Key: k, Value: e("v2")}}); err != nil {
		t.Fatal(err)
	}
	if vals, _ := b.Get(ctx, k); !slices.Equal(vals, []cidstore.E{e("v2")}) {
		t.Fatalf("Get after a pass-through batch = %v", vals)
	}
}

// close flushes what is queued; afterwards calls pass straight through.
func TestBatcherCloseFlushes(t *testing.T) {
	g := newGatedStore(t, true)
	k := newHeldKnobs(1024)
	b := NewBatcher(g, k, nil)
	ctx := context.Background()
	first := startHeld(t, g, b, k)
	var rs []<-chan error
	for i := range 10 {
		rs = append(rs, async(func() error { return b.Insert(ctx, e("k"), e(fmt.Sprint("v", i))) }))
	}
	waitQueued(t, b, 10)
	closed := async(func() error { b.Close(); return nil })
	g.release <- struct{}{}
	<-g.entered
	g.release <- struct{}{}
	<-closed
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	if vals, _ := g.Store.Get(ctx, e("k")); len(vals) != 10 {
		t.Fatalf("%d values after close, want 10", len(vals))
	}
	r := async(func() error { return b.Insert(ctx, e("k"), e("after")) })
	if op := <-g.entered; op != "insert" {
		t.Fatalf("after close: %q, want a pass-through insert", op)
	}
	g.release <- struct{}{}
	if err := <-r; err != nil {
		t.Fatal(err)
	}
}

// Many concurrent writers on a real durable store: everything lands, and
// the window accounts for every pair.
func TestBatcherConcurrentWriters(t *testing.T) {
	g := newGatedStore(t, false)
	b := NewBatcher(g, fixedKnobs{batch: 32, flush: 200 * time.Microsecond}, nil)
	ctx := context.Background()
	const writers, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- b.Insert(ctx, e(fmt.Sprint("w", w)), e(fmt.Sprint(w, "/", i)))
			}
		})
	}
	wg.Wait()
	b.Close()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for w := range writers {
		if vals, _ := g.Store.Get(ctx, e(fmt.Sprint("w", w))); len(vals) != each {
			t.Fatalf("writer %d: %d values, want %d", w, len(vals), each)
		}
	}
	s := b.TakeWindow()
	if s.Pairs != writers*each || s.Groups == 0 || s.Groups > s.Pairs || s.Demand < 1 {
		t.Fatalf("window %+v, want %d pairs in 1..%d groups", s, writers*each, writers*each)
	}
	if s.DelayP99 > s.TotalP99 || s.DelayAvg > s.TotalAvg {
		t.Fatalf("window %+v: delay above total latency", s)
	}
	if smp := s.Sample(); smp.Pairs != s.Pairs || smp.P99 != s.DelayP99 || smp.Throughput <= 0 {
		t.Fatalf("sample %+v of window %+v", smp, s)
	}
	if s := b.TakeWindow(); s.Pairs != 0 || s.DelayP99 != 0 {
		t.Fatalf("second window %+v, want empty", s)
	}
}

func TestDurHist(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", []time.Duration{100 * time.Microsecond}, 0.99, 100 * time.Microsecond},
		{"p99 of 100", append(slices.Repeat([]time.Duration{10 * time.Microsecond}, 99), time.Millisecond), 0.99, 10 * time.Microsecond},
		{"p99 of 50", append(slices.Repeat([]time.Duration{10 * time.Microsecond}, 49), time.Millisecond), 0.99, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h durHist
			for _, d := range tc.in {
				h.add(d)
			}
			got := h.quantile(tc.q)
			if got < tc.want || float64(got) > float64(tc.want)*1.1 {
				t.Fatalf("quantile(%v) = %v, want %v (+9 %%)", tc.q, got, tc.want)
			}
		})
	}
}
