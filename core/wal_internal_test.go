package cidstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// abandon stops s the way a crash would: no final checkpoint, the WAL left
// with its un-checkpointed records.
func (s *Store) abandon() {
	s.closed.Store(true)
	close(s.stop)
	s.bg.Wait()
	if s.wal != nil {
		s.wal.log.Close()
	}
	s.backend.Close()
}

func TestWALReplayAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newTestBackend()
	opts := Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 1 << 20, CheckpointInterval: -1}
	s := openTest(t, b, opts)
	for i := uint64(1); i <= 50; i++ {
		if err := s.InsertBatch(ctx, []Pair{{e(i), e(100 + i)}, {e(i), e(200 + i)}, {e(i), e(300 + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil { // half the history in the checkpoint
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i += 2 {
		if err := s.Delete(ctx, e(i)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteValue(ctx, e(i+1), e(101+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Insert(ctx, e(1000), e(1)); err != nil {
		t.Fatal(err)
	}
	s.abandon()

	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.RecoveredRecords != 51 {
		t.Fatalf("recovered %d records, want 51", st.RecoveredRecords)
	}
	for i := uint64(1); i <= 50; i++ {
		var want []E
		switch {
		case i%2 == 1:
		default:
			want = []E{e(200 + i), e(300 + i)}
		}
		slices.SortFunc(want, E.Compare)
		mustGet(t, s2, e(i), want...)
	}
	mustGet(t, s2, e(1000), e(1))
}

func TestWALBackpressureCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newTestBackend()
	// A 64 KiB WAL holds 960 records: 100 batches of 102 records must wrap
	// it many times, each time forcing a checkpoint.
	opts := Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 64 << 10, CheckpointInterval: -1, Sync: SyncNone}
	s := openTest(t, b, opts)
	for i := uint64(0); i < 100; i++ {
		batch := make([]Pair, 100)
		for j := range batch {
			batch[j] = Pair{e(i*100 + uint64(j) + 1), e(7)}
		}
		if err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Checkpoints-createCommits < 5 {
		t.Fatalf("only %d checkpoints for 10 WAL laps", st.Checkpoints-createCommits)
	}
	if st.LastLSN < 10_000 {
		t.Fatalf("last LSN %d", st.LastLSN)
	}
	s.abandon()
	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	if got := s2.Stats().Keys; got != 10_000 {
		t.Fatalf("%d keys after reopen, want 10000", got)
	}
	huge := make([]Pair, 2000)
	for j := range huge {
		huge[j] = Pair{e(uint64(j) + 1), e(8)}
	}
	if err := s2.InsertBatch(ctx, huge); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch larger than the WAL: %v", err)
	}
}

func TestWALCorruptionRefusedThenRepaired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "wal")
	b := newTestBackend()
	opts := Options{WALPath: path, WALSizeBytes: 1 << 20, CheckpointInterval: -1}
	s := openTest(t, b, opts)
	for i := uint64(1); i <= 20; i++ {
		if err := s.Insert(ctx, e(i), e(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.abandon()
	// Damage record 5 of 20 (header page 4096, 64-byte records).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff}, 4096+4*64+30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(b.reopen(), opts); !IsCorruption(err) {
		t.Fatalf("Open on a corrupt WAL: %v, want a corruption error", err)
	}
	n, err := RepairWAL(path)
	if err != nil || n != 4 {
		t.Fatalf("RepairWAL = %d, %v; want 4 records kept", n, err)
	}
	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	for i := uint64(1); i <= 20; i++ {
		if i <= 4 {
			mustGet(t, s2, e(i), e(i))
		} else {
			mustGet(t, s2, e(i))
		}
	}
}

func TestNotifyReportsLSNs(t *testing.T) {
	ctx := context.Background()
	var got []Mutation
	opts := Options{WALPath: filepath.Join(t.TempDir(), "wal"), WALSizeBytes: 1 << 20, Notify: func(m []Mutation) { got = append(got, m...) }}
	s := openTest(t, newTestBackend(), opts)
	defer s.Close()
	s.Insert(ctx, e(1), e(2))
	s.InsertBatch(ctx, []Pair{{e(3), e(4)}, {e(5), e(6)}})
	s.Delete(ctx, e(1))
	want := []Mutation{{OpInsert, e(1), e(2), 1}, {OpInsert, e(3), e(4), 3}, {OpInsert, e(5), e(6), 4}, {OpDeleteKey, e(1), E{}, 6}}
	if !slices.Equal(got, want) {
		t.Fatalf("notified %+v\nwant %+v", got, want)
	}
}

func TestWALDelay(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		name        string
		n, free     int64
		ck          ckptClock
		since, want time.Duration
	}{
		{"no estimate yet", 1000, 10, ckptClock{}, 0, 0},
		{"paced", 1000, 1_000_000, ckptClock{est: 4000 * ms, elapsed: 1000 * ms}, 1 * ms, 2 * ms}, // 3 s left for 1000 batches
		{"already slow enough", 1000, 1_000_000, ckptClock{est: 4000 * ms, elapsed: 1000 * ms}, 5 * ms, 0},
		{"just overdue: half the estimate left", 1000, 1_000_000, ckptClock{est: 4000 * ms, elapsed: 4000 * ms}, 0, 2 * ms},
		{"long overdue: half the estimate and the delay left", 1000, 1_000_000, ckptClock{est: 4000 * ms, elapsed: 9000 * ms}, 0, 7 * ms},
		{"nearly full", 1000, 5000, ckptClock{est: 4000 * ms}, 0, walDelayMax},
		{"full", 10, 0, ckptClock{est: 4000 * ms}, 0, walDelayMax},
		// The checkpoint's own pace: a quarter done after 1 s, 3 s to go.
		{"slower than the estimate", 1000, 1_000_000, ckptClock{est: 1000 * ms, elapsed: 1000 * ms, done: 25, todo: 100}, 0, 3 * ms},
		{"pace before any estimate", 1000, 1_000_000, ckptClock{elapsed: 1000 * ms, done: 25, todo: 100}, 0, 3 * ms},
		{"faster than the estimate: the estimate stands", 1000, 1_000_000, ckptClock{est: 4000 * ms, elapsed: 1000 * ms, done: 90, todo: 100}, 0, 3 * ms},
		{"too early to trust the pace", 1000, 1_000_000, ckptClock{est: 1000 * ms, elapsed: 1000 * ms, done: 5, todo: 100}, 0, ms / 2},
		{"stream done", 1000, 1_000_000, ckptClock{est: 1000 * ms, elapsed: 1000 * ms, done: 100, todo: 100}, 0, ms / 2},
	} {
		if got := walDelay(c.n, c.free, c.ck, c.since); got != c.want {
			t.Errorf("%s: walDelay = %v, want %v", c.name, got, c.want)
		}
	}
}

// pacedStore opens a store over a WAL of walBytes whose checkpoints take
// 50 ms (the estimate delayed writes start from), or call hold instead once
// *holding is set, and returns it with a function inserting a batch of 100
// new keys (102 records) and the number of keys inserted so far.
func pacedStore(t *testing.T, walBytes int64, holding *atomic.Bool, hold func()) (s *Store, insert func(), inserted func() uint64) {
	t.Helper()
	opts := Options{
		WALPath:             filepath.Join(t.TempDir(), "wal"),
		WALSizeBytes:        walBytes,
		CheckpointInterval:  -1,
		CheckpointFillRatio: 1,
		Sync:                SyncNone,
		Failpoint: func(name string) {
			if name != "checkpoint.before-commit" {
				return
			}
			if holding.Load() {
				hold()
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		},
	}
	s = openTest(t, newTestBackend(), opts)
	next := uint64(1)
	insert = func() {
		t.Helper()
		batch := make([]Pair, 100)
		for j := range batch {
			batch[j] = Pair{e(next), e(7)}
			next++
		}
		if err := s.InsertBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	return s, insert, func() uint64 { return next - 1 }
}

// While a checkpoint runs and the WAL is half full, a writer that would
// fill the WAL before the checkpoint is expected to end is held back batch
// by batch (delayed writes), and loses nothing.
func TestDelayedWrites(t *testing.T) {
	ctx := context.Background()
	var holding atomic.Bool
	release := make(chan struct{})
	s, insert, inserted := pacedStore(t, 64<<10, &holding, func() { <-release }) // 960 records
	defer s.Close()
	insert()
	if err := s.Checkpoint(ctx); err != nil { // sets the estimate
		t.Fatal(err)
	}
	for range 5 { // 510 records: past half the WAL
		insert()
	}
	if st := s.Stats(); st.WALDelays != 0 {
		t.Fatalf("%d batches delayed with no checkpoint running", st.WALDelays)
	}
	holding.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(ctx) }()
	for s.stats.ckptStart.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// At most 450 records left for a checkpoint expected to need 25+ ms
	// more: a batch of 102 records is paced to 5+ ms.
	for range 3 {
		insert()
	}
	st := s.Stats()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d delayed batches (%v), %d waits for WAL space", st.WALDelays, st.WALDelayTotal, st.WALFullWaits)
	if st.WALDelays < 2 || st.WALDelayTotal <= 0 {
		t.Fatalf("%d of 3 batches delayed (%v) during a checkpoint with the WAL half full",
			st.WALDelays, st.WALDelayTotal)
	}
	if st.WALFullWaits != 0 {
		t.Fatalf("%d waits for WAL space: the WAL was never full", st.WALFullWaits)
	}
	for k := uint64(1); k <= inserted(); k++ {
		if vals, err := s.Get(ctx, e(k)); err != nil || len(vals) != 1 || vals[0] != e(7) {
			t.Fatalf("key %d: %v, %v", k, vals, err)
		}
	}
}

// A checkpoint that runs far past its estimate (at 2M keys under 256 MiB,
// 2.1 s against 0.4 s) must not let the writer fill the WAL: the longer it
// has run, the longer it is expected to run still, and the writer is held
// back more and more instead of filling the WAL and then waiting for the
// rest of the checkpoint at once.
func TestDelayedWritesOverdueCheckpoint(t *testing.T) {
	ctx := context.Background()
	var holding atomic.Bool
	s, insert, inserted := pacedStore(t, 4<<20, &holding, func() { // ~61k records
		time.Sleep(400 * time.Millisecond) // 8 times the estimate
	})
	defer s.Close()
	insert()
	if err := s.Checkpoint(ctx); err != nil { // sets the estimate
		t.Fatal(err)
	}
	for st := s.Stats(); st.WALUsedBytes < st.WALCapacityBytes/2+st.WALCapacityBytes/16; st = s.Stats() {
		insert()
	}
	holding.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(ctx) }()
	for s.stats.ckptStart.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Unpaced, the writer fills the rest of the WAL in milliseconds; paced
	// as if an overdue checkpoint had a constant time left (half its
	// estimate), in ~0.15 s.
	batches := 0
	minFree := int64(1 << 62)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
			insert()
			batches++
			if st := s.Stats(); st.WALCapacityBytes-st.WALUsedBytes < minFree {
				minFree = st.WALCapacityBytes - st.WALUsedBytes
			}
		}
	}
	st := s.Stats()
	t.Logf("min free %d of %d bytes", minFree, st.WALCapacityBytes)
	t.Logf("%d batches during the checkpoint, %d delayed (%v), %d waits for WAL space", batches, st.WALDelays, st.WALDelayTotal, st.WALFullWaits)
	if st.WALFullWaits != 0 {
		t.Fatalf("%d waits for WAL space during a checkpoint 8 times longer than its estimate", st.WALFullWaits)
	}
	if st.WALDelays == 0 {
		t.Fatal("no batch delayed")
	}
	for k := uint64(1); k <= inserted(); k++ {
		if vals, err := s.Get(ctx, e(k)); err != nil || len(vals) != 1 || vals[0] != e(7) {
			t.Fatalf("key %d: %v, %v", k, vals, err)
		}
	}
}

// While a checkpoint runs with the cache full and more than half of
// pinLimit pinned, a writer whose batches load and pin buckets is held
// back batch by batch so that pinLimit lasts until the checkpoint is
// expected to end (delayed writes on memory), counted apart from the
// WAL's delays, and loses nothing.
func TestMemoryDelayedWrites(t *testing.T) {
	ctx := context.Background()
	const budget = 4 << 20 // pinLimit 2 MiB
	var slow, holding atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	opts := Options{
		WALPath:             filepath.Join(t.TempDir(), "wal"),
		WALSizeBytes:        256 << 20, // never half full here
		CheckpointInterval:  -1,
		CheckpointFillRatio: 1,
		Sync:                SyncNone,
		CacheBytes:          budget,
		Failpoint: func(name string) {
			if name != "checkpoint.before-commit" {
				return
			}
			if holding.Load() {
				<-release
			} else if slow.Load() {
				time.Sleep(200 * time.Millisecond) // the estimate: checkpoints take 200+ ms
			}
		},
	}
	s := openTest(t, newTestBackend(), opts)
	defer s.Close()
	pinLimit := s.cache.pinLimit
	if pinLimit != budget/2 {
		t.Fatalf("pin limit %d, want %d", pinLimit, budget/2)
	}
	want := map[E][]E{}
	insert := func(batch []Pair) {
		t.Helper()
		if err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, p := range batch {
			want[p.Key] = append(want[p.Key], p.Value)
		}
	}
	// Twice as many keys as the budget holds: the cache is full and
	// evicts.
	const keys = 100_000
	for k := uint64(1); k <= keys; k += 100 {
		batch := make([]Pair, 100)
		for j := range batch {
			batch[j] = Pair{e(k + uint64(j)), e(7)}
		}
		insert(batch)
	}
	slow.Store(true)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	insert([]Pair{{e(1), e(8)}}) // something for the held checkpoint to write
	before := s.Stats()
	if before.Evictions == 0 {
		t.Fatalf("cache %d of %d bytes, no eviction: not full", before.CacheBytes, budget)
	}
	holding.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(ctx) }()
	for s.stats.ckptStart.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Add values to random keys while the checkpoint cannot end: each
	// batch loads evicted buckets and pins what it changes. Stop short of
	// pinLimit, where the writer would wait for this checkpoint.
	rng := rand.New(rand.NewPCG(3, 3))
	var st Stats
	for v := uint64(8); v < 1000; v++ {
		batch := make([]Pair, 10)
		for j := range batch {
			batch[j] = Pair{e(1 + rng.Uint64N(keys)), e(v)}
		}
		insert(batch)
		st = s.Stats()
		if st.MemoryDelays-before.MemoryDelays >= 3 || st.CachePinnedBytes > pinLimit-pinLimit/4 {
			break
		}
	}
	unhold()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d delayed batches (%v), %d bytes pinned of %d, %d stalls",
		st.MemoryDelays-before.MemoryDelays, st.MemoryDelayTotal-before.MemoryDelayTotal,
		st.CachePinnedBytes, pinLimit, st.WriteStalls-before.WriteStalls)
	if st.MemoryDelays-before.MemoryDelays < 3 {
		t.Fatalf("%d batches delayed (%v) during a checkpoint with %d of %d bytes pinned",
			st.MemoryDelays-before.MemoryDelays, st.MemoryDelayTotal-before.MemoryDelayTotal, st.CachePinnedBytes, pinLimit)
	}
	if st.WALDelays != 0 || st.WALFullWaits != 0 || st.WriteStalls != before.WriteStalls {
		t.Fatalf("%d WAL delays, %d waits for WAL space, %d stalls: only memory should hold the writer",
			st.WALDelays, st.WALFullWaits, st.WriteStalls-before.WriteStalls)
	}
	checkModel(t, s, sortModel(want))
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMemRoom(t *testing.T) {
	const budget = 8 << 20 // pinLimit 4 MiB
	for _, c := range []struct {
		name                        string
		used, growth, dirty, frozen int64
		pin, fill                   int64
		ok                          bool
	}{
		{"cache far from its budget", 4 << 20, 0, 3 << 20, 0, 0, 0, false},
		{"near the budget, little pinned", 7<<20 + 1, 0, 1 << 20, 0, 0, 0, false},
		{"near the budget through growth", 7 << 20, 1, 3 << 20, 0, 1<<20 - 1, 1<<20 - 1, true},
		{"frozen counts", 7<<20 + 1, 0, 1 << 20, 2 << 20, 1 << 20, 1<<20 - 1, true},
		{"pinned past its limit", 8 << 20, 0, 5 << 20, 0, -(1 << 20), 0, true},
		{"over the budget", 9 << 20, 0, 3 << 20, 0, 1 << 20, -(1 << 20), true},
		// The data fits: pinned past its limit, but the writer waits only
		// once the cache is over its budget too (pace takes the longer).
		{"pinned past its limit, data fits", 7<<20 + 1, 0, 7 << 20, 0, -(3 << 20), 1<<20 - 1, true},
	} {
		var k cache
		k.budget = budget
		k.setPinLimit()
		k.used.Store(c.used)
		k.growth.Store(c.growth)
		k.dirty.Store(c.dirty)
		k.frozen.Store(c.frozen)
		if pin, fill, ok := k.memRoom(); pin != c.pin || fill != c.fill || ok != c.ok {
			t.Errorf("%s: memRoom = %d, %d, %v; want %d, %d, %v", c.name, pin, fill, ok, c.pin, c.fill, c.ok)
		}
	}
	var none cache // no budget: never paced
	none.used.Store(1 << 30)
	none.dirty.Store(1 << 30)
	if _, _, ok := none.memRoom(); ok {
		t.Error("memRoom paced a cache without a budget")
	}
}

// Replay applies each committed batch as mutate does, warmed a chunk at a
// time: batches large enough to warm, with a key repeated within a chunk
// (new, then known), promotions and deletions, must come back exactly as
// acknowledged. The model is a map of sets.
func TestReplayWarmedBatches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := newTestBackend()
	opts := Options{WALPath: filepath.Join(dir, "wal"), WALSizeBytes: 8 << 20, CheckpointInterval: -1, BucketCapacity: 32}
	s := openTest(t, b, opts)
	r := rand.New(rand.NewPCG(4, 4))
	model := map[E]map[E]bool{}
	for batch := range 40 {
		pairs := make([]Pair, 200)
		for i := range pairs {
			k, v := e(1+uint64(r.IntN(1500))), e(1+uint64(r.IntN(8)))
			pairs[i] = Pair{k, v}
			if model[k] == nil {
				model[k] = map[E]bool{}
			}
			model[k][v] = true
		}
		if err := s.InsertBatch(ctx, pairs); err != nil {
			t.Fatal(err)
		}
		if batch == 10 {
			if err := s.Checkpoint(ctx); err != nil { // some history in the checkpoint
				t.Fatal(err)
			}
		}
		if batch%5 == 4 {
			dels := make([]Deletion, 40)
			for i := range dels {
				k := e(1 + uint64(r.IntN(1500)))
				dels[i] = Deletion{Key: k}
				if i%2 == 0 {
					dels[i].Value = e(1 + uint64(r.IntN(8)))
					delete(model[k], dels[i].Value)
				} else {
					delete(model, k)
				}
			}
			if err := s.DeleteBatch(ctx, dels); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.abandon()

	s2 := openTest(t, b.reopen(), opts)
	defer s2.Close()
	if st := s2.Stats(); st.RecoveredRecords == 0 {
		t.Fatal("nothing was replayed")
	}
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
	for n := uint64(1); n <= 1500; n++ {
		var want []E
		for v := range model[e(n)] {
			want = append(want, v)
		}
		slices.SortFunc(want, E.Compare)
		mustGet(t, s2, e(n), want...)
	}
}
