package cidstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// cacheModel fills a store with keys holding 1..maxVals values (so that
// some spill) and returns the expected contents.
func cacheModel(t *testing.T, s *Store, keys, maxVals int, seed uint64) map[E][]E {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	want := map[E][]E{}
	var batch []Pair
	for k := 1; k <= keys; k++ {
		key := e(uint64(k))
		n := 1 + rng.IntN(maxVals)
		for v := 1; v <= n; v++ {
			val := E{High: uint64(k), Low: uint64(v)}
			batch = append(batch, Pair{key, val})
			want[key] = append(want[key], val)
		}
		if len(batch) > 500 {
			if err := s.InsertBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.InsertBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	return want
}

// deleteEvery deletes every every-th key of want (in map order) from s and
// from want; it stops at the first error.
func deleteEvery(ctx context.Context, s *Store, want map[E][]E, every int) error {
	n := 0
	for k := range want {
		if n++; n%every == 0 {
			if err := s.Delete(ctx, k); err != nil {
				return err
			}
			delete(want, k)
		}
	}
	return nil
}

// sortModel sorts and deduplicates a model's values in place, as Get
// returns them, and returns it.
func sortModel(want map[E][]E) map[E][]E {
	for k := range want {
		slices.SortFunc(want[k], E.Compare)
		want[k] = slices.Compact(want[k])
	}
	return want
}

func checkModel(t *testing.T, s *Store, want map[E][]E) {
	t.Helper()
	for k, vals := range want {
		got, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatalf("get %v: %v", k, err)
		}
		if !slices.Equal(got, vals) {
			t.Fatalf("get %v: %d values, want %d", k, len(got), len(vals))
		}
	}
}

func evictNow(s *Store) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.evict()
}

// A reopened store reads nothing but the directory; every lookup then
// loads what it needs, and the counts come from the checkpoint.
func TestReopenIsLazy(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 7})
	want := cacheModel(t, s, 3000, 5, 1)
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), Options{})
	got := s.Stats()
	if got.Keys != st.Keys || got.Values != st.Values || got.SpilledKeys != st.SpilledKeys || got.Buckets != st.Buckets {
		t.Fatalf("reopened counts %d/%d/%d/%d, want %d/%d/%d/%d", got.Keys, got.Values, got.SpilledKeys, got.Buckets, st.Keys, st.Values, st.SpilledKeys, st.Buckets)
	}
	if got.BucketLoads != 0 || got.CacheBytes != 0 {
		t.Fatalf("open loaded %d buckets (%d bytes)", got.BucketLoads, got.CacheBytes)
	}
	if _, err := s.Get(ctx, e(1)); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().BucketLoads; n != 1 {
		t.Fatalf("one lookup loaded %d buckets", n)
	}
	checkModel(t, s, want)
	if st := s.Stats(); st.BucketLoads != uint64(st.Buckets) || st.ValueSetLoads != st.SpilledKeys {
		t.Fatalf("after reading everything: %d bucket loads of %d, %d set loads of %d", st.BucketLoads, st.Buckets, st.ValueSetLoads, st.SpilledKeys)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// poisonBackend overwrites the Entries handed back to it, as a backend
// that reads the next bucket into them would.
type poisonBackend struct {
	*testBackend
	recycled atomic.Int64
}

var _ port.EntriesRecycler = (*poisonBackend)(nil)

func (b *poisonBackend) RecycleEntries(entries []byte) {
	for i := range entries {
		entries[i] = 0xA5
	}
	b.recycled.Add(1)
}

// A loaded bucket keeps nothing of the record it was decoded from: the
// store hands the Entries back (port.EntriesRecycler) and they are
// overwritten, while buckets are evicted, reloaded and written to.
func TestRecycledEntriesAreNotKept(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 7})
	want := cacheModel(t, s, 2000, 5, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pb := &poisonBackend{testBackend: be.reopen()}
	s, err := Open(pb, Options{HashSeed: 7, CacheBytes: 64 << 10, MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkModel(t, s, want)
	for i := range 500 { // writes to buckets loaded from poisoned records
		k, v := e(uint64(1+i*4)), e(uint64(1<<40+i))
		if err := s.Insert(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], v)
		slices.SortFunc(want[k], E.Compare)
	}
	s.wmu.Lock()
	s.evict()
	s.wmu.Unlock()
	checkModel(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if n, loads := pb.recycled.Load(), s.Stats().BucketLoads; n == 0 || uint64(n) != loads {
		t.Fatalf("%d Entries handed back for %d bucket loads", n, loads)
	}
}

// Writes to a lazily opened store load what they touch first, and the
// result survives another reopen.
func TestWritesToUnloadedBuckets(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 7})
	want := cacheModel(t, s, 2000, 4, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), Options{})
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range 3000 {
		k := e(uint64(1 + rng.IntN(2500)))
		switch rng.IntN(4) {
		case 0:
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			delete(want, k)
		case 1:
			if vals := want[k]; len(vals) > 0 {
				v := vals[rng.IntN(len(vals))]
				if err := s.DeleteValue(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				want[k] = slices.DeleteFunc(slices.Clone(vals), func(x E) bool { return x == v })
				if len(want[k]) == 0 {
					delete(want, k)
				}
			}
		default:
			v := E{High: k.Low, Low: uint64(100 + i)}
			if err := s.Insert(ctx, k, v); err != nil {
				t.Fatal(err)
			}
			want[k] = append(slices.Clone(want[k]), v)
			slices.SortFunc(want[k], E.Compare)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), Options{})
	checkModel(t, s, want)
	if got := s.Stats().Keys; got != uint64(len(want)) {
		t.Fatalf("%d keys after reopen, want %d", got, len(want))
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Under a small budget, clean buckets are evicted after a checkpoint and
// read back on demand; dirty ones never are.
func TestEvictionUnderBudget(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 9, CacheBytes: 64 << 10})
	want := cacheModel(t, s, 4000, 4, 4)
	if evictNow(s); s.Stats().Evictions != 0 {
		t.Fatal("evicted buckets that no checkpoint holds")
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if evictNow(s) {
		t.Fatalf("still over budget after evicting clean buckets: %d bytes", s.Stats().CacheBytes)
	}
	st := s.Stats()
	if st.Evictions == 0 || st.CacheBytes > st.CacheBudget {
		t.Fatalf("evictions %d, cache %d bytes of %d", st.Evictions, st.CacheBytes, st.CacheBudget)
	}
	// The set table keeps nothing of evicted sets: only sets named by
	// resident buckets take memory (held ≤ named), not every set ever
	// created (st.SpilledKeys).
	held, named := s.sets.live(), 0
	for _, b := range s.buckets {
		if b != nil && b.loaded.Load() {
			named += int(s.countSpilled(b))
		}
	}
	if held > named || held >= int(st.SpilledKeys) {
		t.Fatalf("set table holds %d sets; resident buckets name %d, %d keys spilled",
			held, named, st.SpilledKeys)
	}
	checkModel(t, s, want)
	if s.Stats().BucketLoads == 0 {
		t.Fatal("no bucket was read back")
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The evictor runs a pass a chunk at a time (evictSteps), so that a pass
// over a ring of buckets it cannot evict does not hold the writer lock
// for the whole pass; a pass ends after two CLOCK turns or once the cache
// is under its target, however it is cut.
func TestEvictionInChunks(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 16, HashSeed: 9, CacheBytes: 64 << 10})
	want := cacheModel(t, s, 4000, 4, 4)
	const limit = 100
	// Nothing is evictable before a checkpoint: the pass looks at every
	// bucket twice, limit at a time. The writer lock is held throughout
	// so that the evictor goroutine cannot run a pass meanwhile.
	s.wmu.Lock()
	calls, ended, over := 0, false, false
	for !ended {
		over, ended = s.evictSteps(limit, s.cache.budget-s.cache.budget/8)
		calls++
		if calls > 1_000_000 {
			s.wmu.Unlock()
			t.Fatal("the pass never ends")
		}
	}
	ring := len(s.cache.ring)
	s.wmu.Unlock()
	if ring <= limit || calls != (2*ring+limit-1)/limit {
		t.Fatalf("a pass over %d pinned buckets took %d calls of %d, want %d", ring, calls, limit, (2*ring+limit-1)/limit)
	}
	if !over || s.Stats().Evictions != 0 {
		t.Fatalf("over %v, %d evictions before any checkpoint", over, s.Stats().Evictions)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	for ended, calls = false, 0; !ended; calls++ {
		before := s.Stats().Evictions
		over, ended = s.evictSteps(limit, s.cache.budget-s.cache.budget/8)
		if n := s.Stats().Evictions - before; n > limit {
			s.wmu.Unlock()
			t.Fatalf("one call of %d steps evicted %d buckets", limit, n)
		}
	}
	fill, target := s.cache.fill(), s.cache.budget-s.cache.budget/8
	s.wmu.Unlock()
	if over || fill > target || calls < 2 {
		t.Fatalf("after %d calls: over %v, fill %d, target %d", calls, over, fill, target)
	}
	checkModel(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A bucket captured by a checkpoint that has not committed yet must not be
// evicted: reading it back would return the older committed version.
func TestNoEvictionBeforeCommit(t *testing.T) {
	ctx := context.Background()
	be2 := &gateBackend{testBackend: newTestBackend(), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	st, err := Open(be2, Options{BucketCapacity: 16, HashSeed: 3, CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := cacheModel(t, st, 500, 1, 5)
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for k := range want { // change every key after the first checkpoint
		v := E{High: k.High, Low: 1 << 40}
		if err := st.Insert(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], v)
		slices.SortFunc(want[k], E.Compare)
	}
	be2.block.Store(true)
	done := make(chan error, 1)
	go func() { done <- st.Checkpoint(ctx) }()
	<-be2.entered
	before := st.Stats().Evictions
	evictNow(st)
	n := st.Stats().Evictions - before
	close(be2.gate)
	if n != 0 {
		t.Fatalf("evicted %d buckets captured by an uncommitted checkpoint", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evictNow(st)
	if st.Stats().Evictions == before {
		t.Fatal("nothing evicted after the commit")
	}
	checkModel(t, st, want)
}

// gateBackend holds Commit until gate is closed, while block is set.
type gateBackend struct {
	*testBackend
	block   atomic.Bool
	gate    chan struct{}
	entered chan struct{}
}

func (g *gateBackend) Commit(cp *port.Checkpoint) error {
	if g.block.Load() {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.testBackend.Commit(cp)
}

// Readers race with the writer, checkpoints and the evictor; every read
// returns a state that was written.
func TestEvictionWithConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 11, CacheBytes: 32 << 10})
	want := cacheModel(t, s, 2000, 3, 6)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	keys := make([]E, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[rng.IntN(len(keys))]
				got, err := s.Get(ctx, k)
				if err != nil {
					errc <- err
					return
				}
				// The writer only adds values >= 1<<32 to existing keys.
				base := slices.DeleteFunc(slices.Clone(got), func(v E) bool { return v.Low >= 1<<32 })
				if !slices.Equal(base, want[k]) {
					errc <- fmt.Errorf("get %v: %v, want %v plus new values", k, got, want[k])
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		k := keys[i%len(keys)]
		if err := s.Insert(ctx, k, E{High: k.High, Low: 1<<32 + uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			evictNow(s)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if s.Stats().Evictions == 0 {
		t.Fatal("nothing was evicted")
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A corrupt bucket fails the lookups that need it with an error naming it,
// and a write that needs it changes nothing.
func TestCorruptBucketOnLoad(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 13})
	want := cacheModel(t, s, 200, 1, 7)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	victim := e(5)
	s = openTest(t, be.reopen(), Options{})
	b := s.bucketFor(s.hash(victim))
	be.d.mu.Lock()
	r := be.d.buckets[b.id]
	r.Entries = slices.Clone(r.Entries)
	r.Entries[3] ^= 0xff
	be.d.buckets[b.id] = r
	be.d.mu.Unlock()
	_, err := s.Get(ctx, victim)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("bucket %d", b.id)) {
		t.Fatalf("get from corrupt bucket: %v", err)
	}
	before := s.Stats()
	if err := s.Insert(ctx, victim, e(999)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("insert into corrupt bucket: %v", err)
	}
	if after := s.Stats(); after.Keys != before.Keys || after.Values != before.Values {
		t.Fatal("a failed write changed the counts")
	}
	for k, vals := range want { // other buckets still serve
		if s.bucketFor(s.hash(k)) == b {
			continue
		}
		got, err := s.Get(ctx, k)
		if err != nil || !slices.Equal(got, vals) {
			t.Fatalf("get %v: %v %v", k, got, err)
		}
	}
}

// GC on a lazily opened or evicting store must not take an evicted
// bucket's value sets for orphans: liveness comes from the entries, read
// from the backend when the bucket is not resident.
func TestGCWithEvictedBuckets(t *testing.T) {
	ctx := context.Background()
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			be := newGCBackend()
			s := openGC(t, be, Options{BucketCapacity: 16, CacheBytes: 16 << 10})
			want := cacheModel(t, s, 3000, 4, 8)
			// Some deletions, so that the log has records to check.
			if err := deleteEvery(ctx, s, want, 5); err != nil {
				t.Fatal(err)
			}
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if reopen {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openGC(t, be.reopen(), Options{})
			} else if evictNow(s); s.Stats().Evictions == 0 {
				t.Fatal("nothing evicted")
			}
			defer s.Close()
			before := len(be.setIDs())
			if st := mustGC(t, s); st.OrphanValueSets != 0 || st.OrphanBuckets != 0 {
				t.Fatalf("GC found %d value sets and %d buckets orphaned in a clean store", st.OrphanValueSets, st.OrphanBuckets)
			}
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if after := len(be.setIDs()); after != before {
				t.Fatalf("backend held %d value sets, %d after GC", before, after)
			}
			checkModel(t, s, want)
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A writer that waits for WAL space releases the writer lock; the evictor
// may then drop the buckets the batch loaded. The batch must be prepared
// again before it is logged and applied (applied to an evicted bucket, its
// committed entries were lost while the counters kept them).
func TestEvictionWhileWaitingForWALSpace(t *testing.T) {
	ctx := context.Background()
	var s *Store
	evicting := false
	opts := Options{
		WALPath:             filepath.Join(t.TempDir(), "wal"),
		WALSizeBytes:        minWALSizeBytes,
		CheckpointInterval:  -1,
		CheckpointFillRatio: 1,
		BucketCapacity:      16,
		HashSeed:            21,
		CacheBytes:          1,
		MaintenanceInterval: -1,
		Failpoint: func(name string) {
			// A checkpoint forced by a full WAL runs while the waiting
			// writer holds no lock: evict everything evictable then.
			if name == "checkpoint.after-commit" && evicting {
				evictNow(s)
			}
		},
	}
	var err error
	s, err = Open(newTestBackend(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := cacheModel(t, s, 400, 3, 9)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	evicting = true
	waits := s.Stats().Checkpoints
	for i := range 20000 { // fills the WAL many times over
		k := e(uint64(1 + i%400))
		v := E{High: k.High, Low: 1<<32 + uint64(i)}
		if err := s.Insert(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], v)
	}
	if st := s.Stats(); st.Checkpoints-waits < 3 || st.WALFullWaits < 3 || st.CheckpointWaitMax <= 0 {
		t.Fatalf("%d checkpoints, %d waits for WAL space (longest %v): the WAL never filled",
			st.Checkpoints-waits, st.WALFullWaits, st.CheckpointWaitMax)
	}
	for k := range want {
		slices.SortFunc(want[k], E.Compare)
	}
	checkModel(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A writer faster than the checkpoints must not grow memory past the
// budget: with a WAL, once the cache is over budget, mutations wait for
// checkpoints while more than half of it is pinned (changed since the last
// checkpoint). The control run, with the backpressure off and no
// checkpoint but those the WAL forces, shows that the workload does
// outgrow the bound otherwise; and with a budget the workload fits in, the
// backpressure must cost nothing: no stall, no extra checkpoint, although
// more than half its pin limit is pinned (budget 16 MiB, pin limit 8 MiB;
// pinned reaches ~13 MB).
func TestWriterBackpressure(t *testing.T) {
	const small = 4 << 20
	// run inserts 150 000 pairs in batches of 100 into a store with the
	// given budget. With holdFirst, the first checkpoint's commit waits
	// until a writer has stalled (or the inserts are done): a checkpoint
	// slower than the writer, whatever the machine.
	run := func(t *testing.T, budget int64, backpressure, holdFirst bool) (maxCache int64, st Stats) {
		ctx := context.Background()
		var (
			sp         atomic.Pointer[Store]
			held, done atomic.Bool
		)
		failpoint := func(name string) {
			if !holdFirst || name != "checkpoint.before-commit" || sp.Load() == nil || held.Swap(true) {
				return // Open's commit of the new store is not held
			}
			for !done.Load() && sp.Load().cache.stalls.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		s, err := Open(newTestBackend(), Options{
			WALPath:             filepath.Join(t.TempDir(), "wal"),
			WALSizeBytes:        256 << 20,
			CheckpointInterval:  -1,
			CheckpointFillRatio: 1,
			HashSeed:            5,
			CacheBytes:          budget,
			MaintenanceInterval: -1,
			Failpoint:           failpoint,
		})
		if err != nil {
			t.Fatal(err)
		}
		sp.Store(s)
		defer s.Close()
		if s.cache.pinLimit != budget/2 {
			t.Fatalf("pin limit %d, want %d", s.cache.pinLimit, budget/2)
		}
		if !backpressure {
			s.cache.pinLimit = 0
		}
		rng := rand.New(rand.NewPCG(7, 7))
		want := map[E][]E{}
		batch := make([]Pair, 0, 100)
		for range 1500 {
			batch = batch[:0]
			for range cap(batch) {
				k := e(1 + rng.Uint64N(100_000))
				v := E{High: k.High, Low: 1 + rng.Uint64()>>1}
				batch = append(batch, Pair{k, v})
				want[k] = append(want[k], v)
			}
			if err := s.InsertBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			maxCache = max(maxCache, s.Stats().CacheBytes)
		}
		done.Store(true)
		checkModel(t, s, sortModel(want))
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		return maxCache, s.Stats()
	}
	// A batch may start just under the limit: allow one batch over.
	bounded := func(t *testing.T, maxCache int64) {
		t.Helper()
		if maxCache > small+small/2 {
			t.Errorf("cache reached %d bytes, budget %d", maxCache, small)
		}
	}
	t.Run("on", func(t *testing.T) {
		// Checkpoints start early; whether the writer also has to wait
		// depends on how fast they are on this machine.
		maxCache, st := run(t, small, true, false)
		t.Logf("max cache %d, %d stalls, %d checkpoints, %d evictions",
			maxCache, st.WriteStalls, st.Checkpoints, st.Evictions)
		if st.Checkpoints-createCommits < 3 {
			t.Fatalf("%d checkpoints: the backpressure never asked for one", st.Checkpoints-createCommits)
		}
		bounded(t, maxCache)
	})
	t.Run("slow checkpoint", func(t *testing.T) {
		// The writer outruns a checkpoint: it must wait for it.
		maxCache, st := run(t, small, true, true)
		t.Logf("max cache %d, %d stalls, %d checkpoints, %d evictions",
			maxCache, st.WriteStalls, st.Checkpoints, st.Evictions)
		if st.WriteStalls == 0 || st.CheckpointWaitMax <= 0 {
			t.Fatalf("%d stalls (longest wait %v), %d checkpoints: the writer never waited for the held checkpoint",
				st.WriteStalls, st.CheckpointWaitMax, st.Checkpoints)
		}
		if st.WALFullWaits != 0 {
			t.Errorf("%d waits for WAL space in a WAL of 256 MiB", st.WALFullWaits)
		}
		bounded(t, maxCache)
	})
	t.Run("off", func(t *testing.T) {
		maxCache, st := run(t, small, false, false)
		t.Logf("max cache %d, %d checkpoints", maxCache, st.Checkpoints)
		if maxCache <= small+small/2 {
			t.Errorf("cache reached only %d bytes without backpressure: the workload does not test it", maxCache)
		}
	})
	t.Run("fits", func(t *testing.T) {
		maxCache, st := run(t, 4*small, true, false)
		t.Logf("max cache %d, %d checkpoints", maxCache, st.Checkpoints)
		if st.WriteStalls != 0 || st.Checkpoints != createCommits {
			t.Errorf("%d stalls, %d checkpoints with a budget the workload fits in (%d of %d bytes)",
				st.WriteStalls, st.Checkpoints-createCommits, maxCache, 4*small)
		}
	})
}

func (s *Store) countSpilled(b *bucket) (n int32) {
	for i := range b.entries {
		if b.entries[i].spilled() {
			n++
		}
	}
	return n
}

// The writer's own eviction stops a sixty-fourth under the budget, not at
// 7/8 of it, and the evictor goroutine does the rest in chunks.
func TestWriterEvictsToBudget(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 16, HashSeed: 9, CacheBytes: 64 << 10})
	want := cacheModel(t, s, 4000, 4, 4)
	if err := s.Checkpoint(ctx); err != nil { // everything evictable
		t.Fatal(err)
	}
	c := &s.cache
	s.wmu.Lock()
	push := c.budget + c.budget/32 - c.fill() // over budget, whatever the evictor did
	c.growth.Add(push)
	over := s.evictForWriter()
	fill := c.fill()
	s.wmu.Unlock()
	if over || fill > c.budget-c.budget/64 || fill <= c.budget-c.budget/8 {
		t.Fatalf("over %v, fill %d after the writer's eviction; want within (%d, %d]", over, fill, c.budget-c.budget/8, c.budget-c.budget/64)
	}
	// The evictor goroutine, kicked, takes it the rest of the way.
	deadline := time.Now().Add(10 * time.Second)
	for c.fill() > c.budget-c.budget/8 {
		if time.Now().After(deadline) {
			t.Fatalf("fill %d 10 s after the writer's eviction; the evictor should bring it to %d", c.fill(), c.budget-c.budget/8)
		}
		time.Sleep(time.Millisecond)
	}
	c.growth.Add(-push)
	checkModel(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Once every bucket and value set is resident, prepare stops looking
// (cache.resident); an eviction makes it look again, so that a write to
// an evicted bucket still loads it first.
func TestPrepareSkipsOnceResident(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	s := openTest(t, be, Options{BucketCapacity: 16, HashSeed: 7})
	want := cacheModel(t, s, 600, 5, 11)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), Options{CacheBytes: 1 << 30})
	defer s.Close()
	if s.cache.resident.Load() {
		t.Fatal("a reopened store, nothing loaded, is marked resident")
	}
	round := 0
	// write adds one value to every key (every even key when even), 50
	// keys a batch.
	write := func(even bool) {
		t.Helper()
		round++
		var batch []Pair
		for k := range want {
			if even && k.Low%2 == 1 {
				continue
			}
			v := E{High: k.Low, Low: uint64(1000 + round)}
			batch = append(batch, Pair{k, v})
			want[k] = append(want[k], v)
			if len(batch) == 50 {
				if err := s.InsertBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	checkModel(t, s, sortModel(want)) // loads every bucket and value set
	write(true)                       // odd keys keep their 1..5 values: some stay inline
	write(true)
	if !s.cache.resident.Load() {
		t.Fatalf("every bucket is loaded (%d buckets), yet prepare still looks", len(s.buckets))
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	s.evictTo(0)
	s.wmu.Unlock()
	if s.Stats().Evictions == 0 {
		t.Fatal("nothing was evicted")
	}
	if s.cache.resident.Load() {
		t.Fatal("still marked resident after an eviction")
	}
	write(true) // into evicted buckets: prepare must load them first (applying to one not loaded panics)
	// Reload every bucket: half of them whole (every key read, every
	// value set loaded), the others through one key each, which leaves
	// the other value sets they name cold. Then write only to keys with
	// one inline value in the whole buckets (a value they hold: nothing
	// changes, but prepare looks at each op): the store is not resident
	// however many of these clean batches pass.
	byBucket := map[*bucket][]E{}
	for k := range want {
		b := s.bucketFor(s.hash(k))
		byBucket[b] = append(byBucket[b], k)
	}
	var single []Pair
	for b, keys := range byBucket {
		if b.id%2 == 0 {
			keys = keys[:1]
		}
		for _, k := range keys {
			if _, err := s.Get(ctx, k); err != nil {
				t.Fatal(err)
			}
			if vals := want[k]; b.id%2 == 1 && len(vals) == 1 {
				single = append(single, Pair{k, vals[0]})
			}
		}
	}
	for range 1 + len(s.buckets)/max(len(single), 1) {
		for off := 0; off < len(single); off += 50 {
			if err := s.InsertBatch(ctx, single[off:min(off+50, len(single))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	cold := 0
	for _, b := range s.buckets {
		if b != nil && b.loaded.Load() && b.cold.Load() > 0 {
			cold++
		}
	}
	if cold == 0 || len(single) == 0 {
		t.Fatalf("test setup: %d loaded buckets name cold value sets, %d keys to write", cold, len(single))
	}
	if s.cache.resident.Load() {
		t.Fatalf("marked resident while %d loaded buckets name cold value sets", cold)
	}
	write(false) // every key: prepare loads the value sets left cold
	write(false)
	if !s.cache.resident.Load() {
		t.Fatal("not marked resident again once everything was reloaded")
	}
	checkModel(t, s, sortModel(want))
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
