package cidstore

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// deltaStep checkpoints s and checks what it wrote of buckets: whole
// entries and delta rows.
type deltaStep struct {
	t    *testing.T
	s    *Store
	last Stats
}

func (d *deltaStep) step(what string, wantWhole, wantDelta int64) {
	d.t.Helper()
	if err := d.s.Checkpoint(context.Background()); err != nil {
		d.t.Fatal(err)
	}
	st := d.s.Stats()
	all := st.CheckpointBucketBytes - d.last.CheckpointBucketBytes
	delta := st.CheckpointDeltaBytes - d.last.CheckpointDeltaBytes
	if all-delta != wantWhole*port.EntrySize || delta != wantDelta*port.EntrySize {
		d.d(what, all, delta, wantWhole, wantDelta)
	}
	if err := d.s.Validate(); err != nil {
		d.t.Fatalf("%s: %v", what, err)
	}
	d.last = st
}

func (d *deltaStep) d(what string, all, delta, wantWhole, wantDelta int64) {
	d.t.Helper()
	d.t.Fatalf("%s: whole %d entries, delta %d rows; want %d and %d", what, (all-delta)/port.EntrySize, delta/port.EntrySize, wantWhole, wantDelta)
}

// A bucket is written whole when it has no base, then as a cumulative
// delta of it (every key changed since the base, removals included)
// until the changed keys pass a quarter of the bucket; the delta's keys
// survive an eviction and a reopen, so the next delta still carries them.
func TestBucketDeltas(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	opts := Options{BucketCapacity: 1024, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1, CacheBytes: 64 << 20}
	s := openTest(t, be, opts)
	want := map[E][]E{}
	ins := func(k, v E) {
		t.Helper()
		mustInsert(t, s, k, v)
		want[k] = append(want[k], v)
	}
	d := &deltaStep{t: t, s: s}
	for i := uint64(1); i <= 100; i++ {
		ins(e(i), e(1000+i))
	}
	d.step("first data checkpoint", 100, 0)
	ins(e(101), e(1101))
	d.step("one new key", 0, 1)
	ins(e(5), e(2005)) // a second inline value
	ins(e(6), e(2006))
	d.step("two second values", 0, 3) // cumulative: e(101) again
	if err := s.Delete(ctx, e(7)); err != nil {
		t.Fatal(err)
	}
	delete(want, e(7))
	d.step("a removal", 0, 4)
	// A quarter of 100 entries is 25: 21 more changed keys stay deltas,
	// the 22nd folds into a new base.
	for i := uint64(0); i < 21; i++ {
		ins(e(10+i), e(3000+i))
		d.step("one more second value", 0, 5+int64(i))
	}
	ins(e(60), e(4000))
	d.step("the fold", 100, 0)
	ins(e(61), e(4001))
	d.step("a delta after the fold", 0, 1)
	d.step("an idle checkpoint", 0, 0)

	// Evicted and read back, the bucket's delta keys come with it.
	if n := evictAll(s); n == 0 {
		t.Fatal("nothing evicted")
	}
	checkModel(t, s, sortModel(want))
	ins(e(62), e(4002))
	d.step("after an eviction", 0, 2)

	// Reopened, the same.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), opts)
	defer s.Close()
	d = &deltaStep{t: t, s: s, last: s.Stats()}
	checkModel(t, s, want)
	if err := s.Delete(ctx, e(61)); err != nil { // a removal of a key added since the base
		t.Fatal(err)
	}
	delete(want, e(61))
	d.step("after a reopen", 0, 2)
	checkModel(t, s, want)
	for _, k := range []E{e(61), e(7)} {
		if got, err := s.Get(ctx, k); err != nil || len(got) != 0 {
			t.Fatalf("removed key %v: %v, %v", k, got, err)
		}
	}
	// Value sets are written whole: a third value promotes e(1)'s.
	before := d.last
	ins(e(1), e(5001))
	ins(e(1), e(5002))
	d.step("promotion", 0, 3) // e(1), e(61), e(62)
	if got := s.Stats().CheckpointSetBytes - before.CheckpointSetBytes; got != 3*port.ValueSize {
		t.Fatalf("set bytes %d, want %d", got, 3*port.ValueSize)
	}
	// Maintenance's sort-merge of the tail changes no entry: still a delta.
	ins(e(200), e(4003)) // a new key: an unsorted tail
	b := s.bucketFor(s.hash(e(200)))
	if b.sorted == len(b.entries) {
		t.Fatalf("no unsorted tail to merge: bucket %d sorted %d of %d, depth %d", b.id, b.sorted, len(b.entries), b.depth)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if b.sorted != len(b.entries) || b.lastCompacted == 0 {
		t.Fatalf("Compact merged no tail: %d of %d sorted", b.sorted, len(b.entries))
	}
	d.step("after maintenance", 0, 4)
	checkModel(t, s, sortModel(want))
}

// evictAll evicts every clean bucket of s and returns the evictions.
func evictAll(s *Store) uint64 {
	before := s.Stats().Evictions
	s.wmu.Lock()
	for range 2 { // a CLOCK turn to clear the reference bits, one to evict
		s.evictTo(0)
	}
	s.wmu.Unlock()
	return s.Stats().Evictions - before
}

// A split leaves both halves without a base: written whole.
func TestBucketDeltasSplit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newTestBackend(), Options{BucketCapacity: 64, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1})
	defer s.Close()
	for i := uint64(1); i <= 60; i++ {
		mustInsert(t, s, e(i), e(100+i))
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	d := &deltaStep{t: t, s: s, last: s.Stats()}
	for i := uint64(61); s.Stats().Splits == d.last.Splits; i++ {
		mustInsert(t, s, e(i), e(100+i))
	}
	d.step("after a split", int64(s.Stats().Keys), 0)
}

// WholeBuckets turns deltas off, and a backend without them gets none.
func TestBucketDeltasOff(t *testing.T) {
	for _, c := range []struct {
		name string
		be   port.Backend
		opts Options
	}{
		{"WholeBuckets", newTestBackend(), Options{WholeBuckets: true}},
		{"backend without deltas", newWholeTestBackend(), Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.BucketCapacity, c.opts.WALPath, c.opts.CheckpointInterval = 1024, t.TempDir()+"/wal", -1
			s := openTest(t, c.be, c.opts)
			defer s.Close()
			d := &deltaStep{t: t, s: s}
			for i := uint64(1); i <= 100; i++ {
				mustInsert(t, s, e(i), e(1000+i))
			}
			d.step("first data checkpoint", 100, 0)
			mustInsert(t, s, e(101), e(1101))
			d.step("one new key", 101, 0)
		})
	}
}

// Random inserts, second values, promotions, deletions of keys and of
// values, with splits, evictions under a small budget, checkpoints and
// reopens, on a backend that takes deltas: the store always reads as a
// map model, and its deltas are used.
func TestBucketDeltasModel(t *testing.T) {
	ctx := context.Background()
	seed := modelSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	be := newTestBackend()
	opts := Options{BucketCapacity: 32, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1, CacheBytes: 64 << 10}
	s := openTest(t, be, opts)
	defer func() { s.Close() }()
	want := map[E]map[E]bool{}
	var keys []E
	var deltaBytes int64
	check := func(what string) {
		t.Helper()
		if err := s.Validate(); err != nil {
			t.Fatalf("seed %d, %s: %v", seed, what, err)
		}
		for _, k := range keys {
			got, err := s.Get(ctx, k)
			if err != nil {
				t.Fatalf("seed %d, %s: get %v: %v", seed, what, k, err)
			}
			if len(got) != len(want[k]) {
				t.Fatalf("seed %d, %s: get %v: %d values, want %d", seed, what, k, len(got), len(want[k]))
			}
			for _, v := range got {
				if !want[k][v] {
					t.Fatalf("seed %d, %s: get %v: value %v not inserted", seed, what, k, v)
				}
			}
		}
	}
	for round := range 40 {
		for range 200 {
			switch op := rng.IntN(10); {
			case op < 4 || len(keys) == 0: // a new key
				k := E{High: rng.Uint64() | 1, Low: rng.Uint64()}
				v := E{High: 1, Low: rng.Uint64() | 1}
				if want[k] == nil {
					keys = append(keys, k)
					want[k] = map[E]bool{}
				}
				want[k][v] = true
				mustInsert(t, s, k, v)
			case op < 7: // another value: second values, promotions
				k := keys[rng.IntN(len(keys))]
				v := E{High: 2, Low: rng.Uint64() | 1}
				want[k][v] = true
				mustInsert(t, s, k, v)
			case op < 8: // a key deleted
				i := rng.IntN(len(keys))
				if err := s.Delete(ctx, keys[i]); err != nil {
					t.Fatal(err)
				}
				delete(want, keys[i])
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
			default: // a value deleted
				k := keys[rng.IntN(len(keys))]
				for v := range want[k] {
					if err := s.DeleteValue(ctx, k, v); err != nil {
						t.Fatal(err)
					}
					delete(want[k], v)
					break
				}
				if len(want[k]) == 0 {
					delete(want, k)
					i := 0
					for keys[i] != k {
						i++
					}
					keys[i] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
				}
			}
		}
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if round%3 == 0 {
			evictAll(s)
		}
		check("round")
		if round%7 == 6 {
			deltaBytes += s.Stats().CheckpointDeltaBytes
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, be.reopen(), opts)
			check("reopened")
		}
	}
	if deltaBytes += s.Stats().CheckpointDeltaBytes; deltaBytes == 0 {
		t.Fatal("no checkpoint wrote a delta")
	}
}

// A demotion changes its key's entry (spilled to inline): the next delta
// carries it, and the store reads the same after a reopen.
func TestBucketDeltasDemotion(t *testing.T) {
	ctx := context.Background()
	be := newTestBackend()
	opts := Options{BucketCapacity: 1024, WALPath: t.TempDir() + "/wal", CheckpointInterval: -1}
	s := openTest(t, be, opts)
	for i := uint64(1); i <= 100; i++ {
		mustInsert(t, s, e(i), e(1000+i))
	}
	mustInsert(t, s, e(5), e(2005), e(3005), e(4005)) // a value set
	d := &deltaStep{t: t, s: s}
	d.step("base", 100, 0)
	for _, v := range []E{e(2005), e(3005)} {
		if err := s.DeleteValue(ctx, e(5), v); err != nil {
			t.Fatal(err)
		}
	}
	d.step("values deleted from the set", 0, 0)
	demotions := s.Stats().Demotions
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Demotions == demotions {
		t.Fatal("nothing demoted")
	}
	d.step("demoted", 0, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, be.reopen(), opts)
	defer s.Close()
	got, err := s.Get(ctx, e(5))
	want := []E{e(1005), e(4005)}
	slices.SortFunc(want, E.Compare)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("demoted key reads %v, %v", got, err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
