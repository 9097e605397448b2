package tests

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
)

// model is the oracle: a plain map of sets.
type model map[cidstore.E]map[cidstore.E]struct{}

func (m model) insert(k, v cidstore.E) {
	if m[k] == nil {
		m[k] = map[cidstore.E]struct{}{}
	}
	m[k][v] = struct{}{}
}

func (m model) deleteValue(k, v cidstore.E) {
	delete(m[k], v)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

func (m model) get(k cidstore.E) []cidstore.E {
	out := slices.Collect(maps.Keys(m[k]))
	slices.SortFunc(out, cidstore.E.Compare)
	if out == nil {
		out = []cidstore.E{}
	}
	return out
}

// keyGen draws keys and values for one distribution.
type keyGen struct {
	name string
	// keys is the key pool; values for key k are drawn from valuesPer
	// distinct values.
	key       func(r *rand.Rand) cidstore.E
	value     func(r *rand.Rand, k cidstore.E) cidstore.E
	batchMax  int // largest batch
	steps     int // steps per seed
	fullEvery int // compare every model key this often
}

func randE(r *rand.Rand) cidstore.E {
	for {
		e := cidstore.E{High: r.Uint64(), Low: r.Uint64()}
		if !e.IsZero() {
			return e
		}
	}
}

func poolGen(name string, pool []cidstore.E, valuesPer int, batchMax, steps int) keyGen {
	return keyGen{
		name: name,
		key:  func(r *rand.Rand) cidstore.E { return pool[r.IntN(len(pool))] },
		value: func(r *rand.Rand, k cidstore.E) cidstore.E {
			return cidstore.E{High: k.Low ^ 0x5555, Low: uint64(r.IntN(valuesPer)) + 1}
		},
		batchMax: batchMax, steps: steps, fullEvery: 1000,
	}
}

func generators(seed uint64) []keyGen {
	r := rand.New(rand.NewPCG(seed, 0xC1D))
	uniform := make([]cidstore.E, 3000)
	sameHigh := make([]cidstore.E, 3000)
	seq := make([]cidstore.E, 3000)
	high := r.Uint64() | 1
	for i := range uniform {
		uniform[i] = randE(r)
		sameHigh[i] = cidstore.E{High: high, Low: r.Uint64() | 1}
		seq[i] = cidstore.E{High: 0, Low: uint64(i + 1)}
	}
	heavy := []cidstore.E{randE(r), randE(r), randE(r)}
	heavyGen := keyGen{
		name: "heavy",
		key: func(r *rand.Rand) cidstore.E {
			if r.IntN(4) == 0 {
				return uniform[r.IntN(50)] // a few light keys alongside
			}
			return heavy[r.IntN(len(heavy))]
		},
		// Up to 100 000 distinct values per heavy key.
		value: func(r *rand.Rand, k cidstore.E) cidstore.E {
			return cidstore.E{High: 7, Low: uint64(r.IntN(100_000)) + 1}
		},
		batchMax: 2000, steps: 1500, fullEvery: 250,
	}
	return []keyGen{
		poolGen("uniform", uniform, 6, 64, 10_000),
		poolGen("samehigh", sameHigh, 6, 64, 10_000),
		poolGen("sequential", seq, 6, 64, 10_000),
		heavyGen,
	}
}

// seeds returns the seeds to run: CIDSTORE_SEED replays one.
func seeds(t *testing.T) []uint64 {
	if s := os.Getenv("CIDSTORE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CIDSTORE_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	if testing.Short() {
		return []uint64{1}
	}
	return []uint64{1, 2}
}

// TestModel runs random operation sequences against every adapter and the
// model, validating the store's invariants after every step.
func TestModel(t *testing.T) {
	for _, a := range adapters {
		for _, seed := range seeds(t) {
			for _, g := range generators(seed) {
				t.Run(fmt.Sprintf("%s/%s/seed=%d", a.name, g.name, seed), func(t *testing.T) {
					t.Parallel()
					runModel(t, a, g, seed, false)
				})
			}
		}
	}
}

// TestModelMaintenance is TestModel with the maintenance scheduler running
// concurrently (1ms ticks, garbage collection every 5ms, never throttled
// by rate, every bucket due for a pass 5ms after the last one) and explicit GC passes among the random operations: maintenance
// is logically a no-op, so the store must still equal the model and pass
// Validate after every step.
func TestModelMaintenance(t *testing.T) {
	for _, a := range adapters {
		for _, seed := range seeds(t) {
			for _, g := range generators(seed) {
				t.Run(fmt.Sprintf("%s/%s/seed=%d", a.name, g.name, seed), func(t *testing.T) {
					t.Parallel()
					runModel(t, a, g, seed, true)
				})
			}
		}
	}
}

func runModel(t *testing.T, a adapter, g keyGen, seed uint64, maint bool) {
	ctx := context.Background()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 0xB0B))
	opts := cidstore.Options{BucketCapacity: 32, HashSeed: seed, CacheBytes: a.cacheBytes, MaintenanceInterval: -1}
	test := "TestModel"
	if maint {
		opts.MaintenanceInterval, opts.GCInterval, opts.MaintenanceIngestLimit = time.Millisecond, 5*time.Millisecond, 1<<30
		opts.MaintenanceAgeSaturation = 5 * time.Millisecond // every bucket gets visited: demotions and merges too
		test = "TestModelMaintenance"
	}
	st, err := cidstore.Open(a.open(t, dir), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	m := model{}
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (replay: CIDSTORE_SEED=%d go test -run '%s/%s/%s') step %d: %s", seed, seed, test, a.name, g.name, step, fmt.Sprintf(format, args...))
	}
	check := func(step int, k cidstore.E) {
		t.Helper()
		got, err := st.Get(ctx, k)
		if err != nil {
			fail(step, "Get(%v): %v", k, err)
		}
		if want := m.get(k); !slices.Equal(got, want) {
			fail(step, "Get(%v) = %d values %v, model %d values", k, len(got), head(got), len(want))
		}
	}
	ops := 0
	var evictions, loads uint64
	for step := 0; step < g.steps; step++ {
		k := g.key(r)
		switch p := r.IntN(100); {
		case p < 30:
			v := g.value(r, k)
			if err := st.Insert(ctx, k, v); err != nil {
				fail(step, "Insert: %v", err)
			}
			m.insert(k, v)
			ops++
		case p < 55:
			n := 1 + r.IntN(g.batchMax)
			batch := make([]cidstore.Pair, n)
			for i := range batch {
				kk := k
				if r.IntN(3) == 0 {
					kk = g.key(r)
				}
				batch[i] = cidstore.Pair{Key: kk, Value: g.value(r, kk)}
			}
			if r.IntN(20) == 0 { // an invalid pair rejects the whole batch
				batch[r.IntN(n)].Value = cidstore.E{}
				if err := st.InsertBatch(ctx, batch); !errors.Is(err, cidstore.ErrInvalid) {
					fail(step, "batch with a zero value: %v", err)
				}
				break
			}
			if err := st.InsertBatch(ctx, batch); err != nil {
				fail(step, "InsertBatch: %v", err)
			}
			for _, p := range batch {
				m.insert(p.Key, p.Value)
			}
			ops += n
		case p < 62:
			if err := st.Delete(ctx, k); err != nil {
				fail(step, "Delete: %v", err)
			}
			delete(m, k)
			ops++
		case p < 75:
			v := g.value(r, k)
			if vals := m.get(k); len(vals) > 0 && r.IntN(2) == 0 {
				v = vals[r.IntN(len(vals))] // delete a present value
			}
			if err := st.DeleteValue(ctx, k, v); err != nil {
				fail(step, "DeleteValue: %v", err)
			}
			m.deleteValue(k, v)
			ops++
		case p < 78:
			n := 1 + r.IntN(g.batchMax/4+1)
			dels := make([]cidstore.Deletion, n)
			for i := range dels {
				kk := g.key(r)
				dels[i].Key = kk
				if vals := m.get(kk); len(vals) > 0 && r.IntN(4) != 0 {
					dels[i].Value = vals[r.IntN(len(vals))]
				}
			}
			if err := st.DeleteBatch(ctx, dels); err != nil {
				fail(step, "DeleteBatch: %v", err)
			}
			for _, d := range dels {
				if d.Value.IsZero() {
					delete(m, d.Key)
				} else {
					m.deleteValue(d.Key, d.Value)
				}
			}
			ops += n
		case p < 97:
			check(step, k)
			ops++
		case p < 98:
			if maint && r.IntN(2) == 0 {
				if _, err := st.GC(ctx); err != nil {
					fail(step, "GC: %v", err)
				}
				break
			}
			if err := st.Compact(ctx); err != nil {
				fail(step, "Compact: %v", err)
			}
		case p < 99:
			if err := st.Checkpoint(ctx); err != nil {
				fail(step, "Checkpoint: %v", err)
			}
		default:
			if !a.persistent {
				break
			}
			evictions += st.Stats().Evictions
			loads += st.Stats().BucketLoads
			if err := st.Close(); err != nil {
				fail(step, "Close: %v", err)
			}
			st = nil
			st, err = cidstore.Open(a.open(t, dir), opts)
			if err != nil {
				fail(step, "reopen: %v", err)
			}
		}
		// Validate reads every bucket back: with a tiny cache it runs less
		// often, so that lookups and writes meet evicted buckets.
		if a.cacheBytes == 0 || step%64 == 0 {
			if err := st.Validate(); err != nil {
				fail(step, "Validate: %v", err)
			}
		}
		if step%g.fullEvery == g.fullEvery-1 || step == g.steps-1 {
			for k := range m {
				check(step, k)
			}
			stats := st.Stats()
			var values uint64
			for _, vs := range m {
				values += uint64(len(vs))
			}
			if stats.Keys != uint64(len(m)) || stats.Values != values {
				fail(step, "stats: %d keys %d values, model %d keys %d values", stats.Keys, stats.Values, len(m), values)
			}
		}
	}
	if err := st.Validate(); err != nil {
		fail(g.steps, "Validate: %v", err)
	}
	evictions += st.Stats().Evictions
	loads += st.Stats().BucketLoads
	if maint {
		t.Logf("maintenance: %+v", st.Stats().Maintenance)
	}
	t.Logf("%d operations, %d keys at the end; %d evictions, %d bucket loads", ops, len(m), evictions, loads)
	// The heavy generator keeps its few buckets dirty: they rarely get
	// evicted, but reopens still read them back.
	if a.cacheBytes > 0 && (loads == 0 || (evictions == 0 && g.name != "heavy")) {
		t.Fatalf("a %d-byte cache evicted %d buckets and loaded %d", a.cacheBytes, evictions, loads)
	}
	if ops < 10_000 {
		t.Fatalf("only %d operations", ops)
	}
}

func head(v []cidstore.E) []cidstore.E {
	if len(v) > 4 {
		return v[:4]
	}
	return v
}
