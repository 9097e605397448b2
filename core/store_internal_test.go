package cidstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// createCommits is the commits Open makes when it creates a store: its
// empty state, so that the first checkpoint of data is incremental.
const createCommits = 1

func openTest(t *testing.T, b port.Backend, opts Options) *Store {
	t.Helper()
	if opts.HashSeed == 0 {
		opts.HashSeed = 7
	}
	if opts.MaintenanceInterval == 0 {
		opts.MaintenanceInterval = -1 // deterministic: scheduler tests enable it
	}
	s, err := Open(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func e(n uint64) E { return E{High: n * 0x9E3779B97F4A7C15, Low: n} }

func TestSetSemantics(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{})
	defer s.Close()
	key := e(1)
	mustGet(t, s, key)
	for _, v := range []E{e(30), e(10), e(20), e(10), e(30)} {
		mustInsert(t, s, key, v)
	}
	want := []E{e(10), e(20), e(30)}
	slices.SortFunc(want, E.Compare)
	mustGet(t, s, key, want...)
	if st := s.Stats(); st.Keys != 1 || st.Values != 3 || st.SpilledKeys != 1 || st.Promotions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.InsertBatch(ctx, []Pair{{key, e(40)}, {key, e(40)}, {e(2), e(1)}}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Values != 5 {
		t.Fatalf("duplicate pair in a batch counted twice: %+v", st)
	}
	if err := s.DeleteValue(ctx, key, e(99)); err != nil {
		t.Fatal("deleting an absent value:", err)
	}
	if err := s.Delete(ctx, e(12345)); err != nil {
		t.Fatal("deleting an absent key:", err)
	}
	if err := s.InsertBatch(ctx, nil); err != nil {
		t.Fatal("empty batch:", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestInlineThenPromote(t *testing.T) {
	s := openTest(t, newTestBackend(), Options{})
	defer s.Close()
	key := e(5)
	mustInsert(t, s, key, e(2))
	mustInsert(t, s, key, e(1))
	if st := s.Stats(); st.SpilledKeys != 0 {
		t.Fatal("two values spilled")
	}
	mustInsert(t, s, key, e(3))
	if st := s.Stats(); st.SpilledKeys != 1 {
		t.Fatal("third value did not spill")
	}
	vals := []E{e(1), e(2), e(3)}
	slices.SortFunc(vals, E.Compare)
	mustGet(t, s, key, vals...)
}

func TestPromotionThresholdOne(t *testing.T) {
	s := openTest(t, newTestBackend(), Options{PromotionThreshold: 1})
	defer s.Close()
	mustInsert(t, s, e(5), e(1))
	mustInsert(t, s, e(5), e(2))
	if st := s.Stats(); st.SpilledKeys != 1 {
		t.Fatal("threshold 1: second value did not spill")
	}
	if err := s.SetPromotionThreshold(3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("threshold 3: %v", err)
	}
}

func TestDeleteAndDemote(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{})
	defer s.Close()
	key := e(9)
	for i := uint64(1); i <= 100; i++ {
		mustInsert(t, s, key, e(i))
	}
	for i := uint64(3); i <= 100; i++ {
		if err := s.DeleteValue(ctx, key, e(i)); err != nil {
			t.Fatal(err)
		}
	}
	want := []E{e(1), e(2)}
	slices.SortFunc(want, E.Compare)
	mustGet(t, s, key, want...)
	if st := s.Stats(); st.SpilledKeys != 1 || st.Values != 2 {
		t.Fatalf("delete path demoted or miscounted: %+v", st)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.SpilledKeys != 0 || st.Demotions != 1 {
		t.Fatalf("compaction did not demote: %+v", st)
	}
	mustGet(t, s, key, want...)
	// Delete the last values: the key disappears.
	for _, v := range want {
		if err := s.DeleteValue(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	mustGet(t, s, key)
	if st := s.Stats(); st.Keys != 0 || st.Values != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTombstoneResurrect(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{})
	defer s.Close()
	key := e(3)
	for i := uint64(1); i <= 5; i++ {
		mustInsert(t, s, key, e(i))
	}
	if err := s.DeleteValue(ctx, key, e(4)); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, key, e(4))
	want := []E{e(1), e(2), e(3), e(4), e(5)}
	slices.SortFunc(want, E.Compare)
	mustGet(t, s, key, want...)
}

func TestInvalidAndClosed(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{})
	z := E{}
	checks := map[string]error{
		"insert zero key":   s.Insert(ctx, z, e(1)),
		"insert zero value": s.Insert(ctx, e(1), z),
		"delete zero":       s.Delete(ctx, z),
		"delvalue zero":     s.DeleteValue(ctx, e(1), z),
		"batch with zero":   s.InsertBatch(ctx, []Pair{{e(1), e(2)}, {e(3), z}}),
	}
	_, err := s.Get(ctx, z)
	checks["get zero"] = err
	for name, err := range checks {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	mustGet(t, s, e(1)) // the rejected batch changed nothing
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Insert(ctx, e(1), e(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Insert after Close: %v", err)
	}
	if _, err := s.Get(ctx, e(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	_, gcErr := s.GC(ctx)
	for name, err := range map[string]error{ // "any call after it returns ErrClosed" (PROTOCOL.md §3)
		"InsertBatch":           s.InsertBatch(ctx, []Pair{{e(1), e(2)}}),
		"Delete":                s.Delete(ctx, e(1)),
		"DeleteValue":           s.DeleteValue(ctx, e(1), e(2)),
		"DeleteBatch":           s.DeleteBatch(ctx, []Deletion{{Key: e(1)}}),
		"Checkpoint":            s.Checkpoint(ctx),
		"Compact":               s.Compact(ctx),
		"GC":                    gcErr,
		"Validate":              s.Validate(),
		"SetPromotionThreshold": s.SetPromotionThreshold(1),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestReopenRestoresState(t *testing.T) {
	ctx := context.Background()
	b := newTestBackend()
	s := openTest(t, b, Options{BucketCapacity: 8})
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[E]map[E]bool{}
	for i := 0; i < 3000; i++ {
		key, val := e(uint64(rng.IntN(400)+1)), e(uint64(rng.IntN(50)+1))
		switch rng.IntN(10) {
		case 0:
			s.Delete(ctx, key)
			delete(model, key)
		case 1:
			s.DeleteValue(ctx, key, val)
			delete(model[key], val)
		default:
			s.Insert(ctx, key, val)
			if model[key] == nil {
				model[key] = map[E]bool{}
			}
			model[key][val] = true
		}
		if i%700 == 0 {
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, b.reopen(), Options{})
	defer s2.Close()
	if err := s2.Validate(); err != nil {
		t.Fatal(err)
	}
	for key, vals := range model {
		var want []E
		for v := range vals {
			want = append(want, v)
		}
		slices.SortFunc(want, E.Compare)
		mustGet(t, s2, key, want...)
	}
	// Every committed value set is referenced: freed ones were dropped.
	if got, want := len(b.setIDs()), int(s2.Stats().SpilledKeys); got != want {
		t.Fatalf("backend holds %d value sets, store has %d spilled keys", got, want)
	}
}

func TestBigValueSet(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{})
	defer s.Close()
	key := e(1)
	const n = 200_000
	batch := make([]Pair, 0, 1000)
	for i := uint64(n); i >= 1; i-- {
		batch = append(batch, Pair{key, E{High: i % 7, Low: i}})
		if len(batch) == cap(batch) {
			if err := s.InsertBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	got, err := s.Get(ctx, key)
	if err != nil || len(got) != n {
		t.Fatalf("Get: %d values, %v", len(got), err)
	}
	if !slices.IsSortedFunc(got, E.Compare) {
		t.Fatal("values not ascending")
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReaders runs one writer at full speed with readers that
// check every value they see was inserted and that no key they saw grows
// back after its deletion.
func TestConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 16})
	defer s.Close()
	const keys = 2000
	// Value v of key k is valid iff v.High == k.Low; readers can verify
	// any value without coordination.
	var done atomic.Bool
	var wg sync.WaitGroup
	var seen atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			for !done.Load() {
				k := E{High: 1, Low: uint64(rng.IntN(keys) + 1)}
				vals, err := s.Get(ctx, k)
				if err != nil {
					t.Error(err)
					return
				}
				for i, v := range vals {
					if v.High != k.Low || v.Low == 0 || v.Low > 64 {
						t.Errorf("key %v: value %v was never inserted", k, v)
						return
					}
					if i > 0 && !vals[i-1].Less(v) {
						t.Errorf("key %v: values not ascending", k)
						return
					}
				}
				seen.Add(int64(len(vals)))
			}
		}(r)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	batch := make([]Pair, 0, 256)
	for i := 0; i < 400; i++ {
		batch = batch[:0]
		for j := 0; j < cap(batch); j++ {
			k := uint64(rng.IntN(keys) + 1)
			batch = append(batch, Pair{E{High: 1, Low: k}, E{High: k, Low: uint64(rng.IntN(64) + 1)}})
		}
		if err := s.InsertBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			for j := 0; j < 100; j++ {
				k := uint64(rng.IntN(keys) + 1)
				s.Delete(ctx, E{High: 1, Low: k})
			}
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if seen.Load() == 0 {
		t.Fatal("readers saw nothing")
	}
}

func TestBucketInfo(t *testing.T) {
	ctx := context.Background()
	b := newTestBackend()
	s := openTest(t, b, Options{BucketCapacity: 8})
	defer s.Close()
	for i := uint64(1); i <= 40; i++ {
		s.Insert(ctx, e(i%10+1), e(i))
	}
	if err := s.Compact(ctx); err != nil { // sort-merges the tails
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	total, spilled := 0, 0
	for id := uint32(0); id < 64; id++ {
		info, ok := s.BucketInfo(id)
		if !ok {
			continue
		}
		if !info.ChecksumOK || info.ID != id || info.SortedCount != info.EntryCount {
			t.Fatalf("bucket %d: %+v", id, info)
		}
		total += info.EntryCount
		spilled += info.SpilledKeys
	}
	if total != 10 || spilled != 10 {
		t.Fatalf("bucket infos count %d keys, %d spilled; want 10, 10", total, spilled)
	}
	if _, ok := s.BucketInfo(9999); ok {
		t.Fatal("BucketInfo of a missing bucket")
	}
	// Damage the committed copy of one bucket: the checksum status says so.
	b.d.mu.Lock()
	for id, r := range b.d.buckets {
		if len(r.Entries) > 0 {
			r.Entries[3] ^= 1
			b.d.mu.Unlock()
			if info, _ := s.BucketInfo(id); info.ChecksumOK {
				t.Fatal("damaged bucket reported as checksum OK")
			}
			return
		}
	}
	b.d.mu.Unlock()
	t.Fatal("no committed bucket with entries")
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	b := newTestBackend()
	s := openTest(t, b, Options{})
	mustInsert(t, s, e(1), e(2))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	commits := b.d.commits
	r := openTest(t, b.reopen(), Options{ReadOnly: true})
	mustGet(t, r, e(1), e(2))
	for name, err := range map[string]error{
		"insert":     r.Insert(ctx, e(1), e(3)),
		"batch":      r.InsertBatch(ctx, []Pair{{e(1), e(3)}}),
		"delete":     r.Delete(ctx, e(1)),
		"compact":    r.Compact(ctx),
		"checkpoint": r.Checkpoint(ctx),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v", name, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if b.d.commits != commits {
		t.Fatal("closing a read-only store committed a checkpoint")
	}
	if _, err := Open(newTestBackend(), Options{ReadOnly: true, WALPath: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("read-only with a WAL: %v", err)
	}
}

func TestIdleCheckpointCommitsNothing(t *testing.T) {
	ctx := context.Background()
	b := newTestBackend()
	s := openTest(t, b, Options{WALPath: t.TempDir() + "/wal", CheckpointInterval: -1})
	defer s.Close()
	mustInsert(t, s, e(1), e(2))
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	n := b.d.commits
	for i := 0; i < 3; i++ {
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if b.d.commits != n {
		t.Fatalf("idle checkpoints committed %d times", b.d.commits-n)
	}
	mustInsert(t, s, e(1), e(2)) // a no-op insert still moves the LSN
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if b.d.commits != n+1 {
		t.Fatalf("checkpoint after a logged no-op: %d commits, want %d", b.d.commits, n+1)
	}
}

type volatileBackend struct{ *testBackend }

func (volatileBackend) Volatile() bool { return true }

func TestCloseSkipsCheckpointOfVolatileBackend(t *testing.T) {
	b := newTestBackend()
	s := openTest(t, b, Options{})
	s.backend = volatileBackend{b}
	mustInsert(t, s, e(1), e(2))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b.d.commits != createCommits {
		t.Fatalf("Close committed %d checkpoints into a volatile backend", b.d.commits-createCommits)
	}
	if !b.closed {
		t.Fatal("Close did not close the backend")
	}
}

// TestBucketInfoDuringCheckpoints: BucketInfo and checkpoints take the
// writer and checkpoint locks in compatible orders (a deadlock would hang).
func TestBucketInfoDuringCheckpoints(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 8})
	defer s.Close()
	var wg sync.WaitGroup
	var done atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i := uint64(1); i <= 3000; i++ {
			if err := s.Insert(ctx, e(i), e(i)); err != nil {
				t.Error(err)
				return
			}
			if err := s.Checkpoint(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; !done.Load(); i++ {
		s.BucketInfo(uint32(i % 16))
	}
	wg.Wait()
}
