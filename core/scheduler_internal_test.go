package cidstore

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// openStepped opens a store whose scheduler does not run by itself: the
// test drives it with maintainStep and moves its clock with the returned
// function.
func openStepped(t *testing.T, b *testBackend, opts Options) (*Store, func(time.Duration)) {
	t.Helper()
	opts.MaintenanceInterval = -1
	s := openTest(t, b, opts)
	t.Cleanup(func() {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate at cleanup: %v", err)
		}
		s.Close()
	})
	var mu sync.Mutex
	clk := time.Unix(0, s.maint.opened)
	s.maint.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clk
	}
	return s, func(d time.Duration) {
		mu.Lock()
		clk = clk.Add(d)
		mu.Unlock()
	}
}

func step(t *testing.T, s *Store) stepReport {
	t.Helper()
	rep, err := s.maintainStep(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate after a maintenance step: %v", err)
	}
	return rep
}

func TestDangerScore(t *testing.T) {
	s, advance := openStepped(t, newTestBackend(), Options{BucketCapacity: 16})
	b := s.buckets[0]
	now := func() int64 { return s.maintNow().UnixNano() }
	for _, tc := range []struct {
		name          string
		pending, tail int
		age           time.Duration
		want          float64
	}{
		{"fresh", 0, 0, 0, 0},
		{"pending half", 8, 0, 0, 0.2},
		{"pending saturates", 64, 0, 0, 0.4},
		{"tail full", 0, 16, 0, 0.3},
		{"age half", 0, 0, DefaultMaintenanceAgeSaturation / 2, 0.15},
		{"age saturates", 0, 0, 10 * DefaultMaintenanceAgeSaturation, 0.3},
		{"everything", 16, 16, DefaultMaintenanceAgeSaturation, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.maint.lastMerge = now()
			advance(tc.age)
			b.maint.pending, b.maint.gen = uint32(tc.pending), s.maint.gen
			b.entries = make([]entry, tc.tail)
			b.tags = make([]byte, tc.tail)
			b.sorted = 0
			got := s.danger(b, now())
			if d := got - tc.want; d > 1e-9 || d < -1e-9 {
				t.Fatalf("danger %v, want %v", got, tc.want)
			}
		})
	}
	b.entries, b.tags, b.sorted, b.maint.pending = nil, nil, 0, 0
	// A checkpoint generation change makes the pending term stale.
	b.maint.pending, b.maint.gen = 64, s.maint.gen
	s.maint.gen++
	b.maint.lastMerge = now()
	if d := s.danger(b, now()); d != 0 {
		t.Fatalf("danger after a checkpoint %v, want 0", d)
	}
}

func TestPushCandidate(t *testing.T) {
	var top []candidate
	for i := range 3 * maintTopK {
		top = pushCandidate(top, candidate{prio: float64((i * 7) % (3 * maintTopK))})
	}
	if len(top) != maintTopK {
		t.Fatalf("%d candidates, want %d", len(top), maintTopK)
	}
	for i := range top {
		if want := float64(3*maintTopK - 1 - i); top[i].prio != want {
			t.Fatalf("candidate %d has priority %v, want %v", i, top[i].prio, want)
		}
	}
}

func TestMaintainMergesTails(t *testing.T) {
	ctx := context.Background()
	s, advance := openStepped(t, newTestBackend(), Options{BucketCapacity: 64})
	want := map[E][]E{}
	for i := uint64(1); i <= 2000; i++ {
		k := e(i)
		vals := []E{e(10_000 + i)}
		if i%3 == 0 { // spilled keys with a tombstone to compact
			vals = append(vals, e(20_000+i), e(30_000+i), e(40_000+i))
		}
		mustInsertQuiet(t, s, k, vals...)
		if i%3 == 0 {
			if err := s.DeleteValue(ctx, k, vals[3]); err != nil {
				t.Fatal(err)
			}
			vals = vals[:3]
		}
		slices.SortFunc(vals, E.Compare)
		want[k] = vals
	}
	tails := func() (n int) {
		for _, b := range s.buckets {
			if b != nil && b.sorted != len(b.entries) {
				n++
			}
		}
		return n
	}
	if tails() == 0 {
		t.Fatal("no bucket has a tail to merge")
	}
	advance(DefaultMaintenanceAgeSaturation)
	for i := 0; i < 100 && tails() > 0; i++ {
		step(t, s)
	}
	if n := tails(); n != 0 {
		t.Fatalf("%d buckets still have a tail", n)
	}
	st := s.Stats().Maintenance
	if st.TailMerges.Runs == 0 || st.SetCompactions.Runs == 0 || st.SetCompactions.ReclaimedBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	for k, vals := range want {
		mustGet(t, s, k, vals...)
	}
	info, ok := s.BucketInfo(0)
	if !ok || info.LastMerge.IsZero() || info.DangerScore >= dangerMinWork {
		t.Fatalf("bucket info after maintenance: %+v", info)
	}
	// Idempotent: with nothing left to do, passes change nothing.
	before := s.Stats().Maintenance
	advance(DefaultMaintenanceAgeSaturation)
	for range 10 {
		step(t, s)
	}
	after := s.Stats().Maintenance
	if after.TailMerges.Runs != before.TailMerges.Runs || after.SetCompactions.Runs != before.SetCompactions.Runs {
		t.Fatalf("a pass over maintained buckets changed something: %+v then %+v", before, after)
	}
	var hist uint64
	for _, n := range after.DangerHistogram {
		hist += n
	}
	if hist != uint64(s.Stats().Buckets) {
		t.Fatalf("danger histogram counts %d buckets, store has %d", hist, s.Stats().Buckets)
	}
}

func mustInsertQuiet(t *testing.T, s *Store, key E, vals ...E) {
	t.Helper()
	for _, v := range vals {
		if err := s.Insert(context.Background(), key, v); err != nil {
			t.Fatalf("Insert(%v, %v): %v", key, v, err)
		}
	}
}

// A key hovering between 2 and 3 values is promoted once and never
// demoted while it is written between passes; once it settles at 2 values
// it is demoted after demoteQuietPasses quiet passes.
func TestDemotionHysteresis(t *testing.T) {
	ctx := context.Background()
	s, advance := openStepped(t, newTestBackend(), Options{})
	key, v1, v2, v3 := e(1), e(11), e(12), e(13)
	mustInsert(t, s, key, v1, v2)
	for range 20 {
		mustInsert(t, s, key, v3)
		advance(DefaultMaintenanceAgeSaturation)
		step(t, s)
		if err := s.DeleteValue(ctx, key, v3); err != nil {
			t.Fatal(err)
		}
		advance(DefaultMaintenanceAgeSaturation)
		step(t, s)
	}
	if st := s.Stats(); st.Promotions != 1 || st.Demotions != 0 || st.SpilledKeys != 1 {
		t.Fatalf("a key hovering at 2-3 values thrashed: %d promotions, %d demotions, %d spilled", st.Promotions, st.Demotions, st.SpilledKeys)
	}
	for i := 1; i <= demoteQuietPasses; i++ {
		advance(DefaultMaintenanceAgeSaturation)
		step(t, s)
		if got, want := s.Stats().SpilledKeys, uint64(0); i == demoteQuietPasses && got != want {
			t.Fatalf("not demoted after %d quiet passes", i)
		} else if i < demoteQuietPasses && got != 1 {
			t.Fatalf("demoted after only %d quiet passes", i)
		}
	}
	want := []E{v1, v2}
	slices.SortFunc(want, E.Compare)
	mustGet(t, s, key, want...)
	if st := s.Stats(); st.Demotions != 1 || st.Maintenance.Demotions.Runs != 1 || st.Maintenance.Demotions.ReclaimedBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Under full-speed ingest a tick does one ordinary pass, but a bucket above
// danger 0.9 is still merged, and the writer names it to the scheduler.
func TestThrottleAndProtection(t *testing.T) {
	s, advance := openStepped(t, newTestBackend(), Options{BucketCapacity: 16, MaintenanceIngestLimit: 10})
	step(t, s) // first tick: sets the rate baseline
	// 16 mutations of the bucket (capacity 16) since that tick: 15 keys,
	// and a second value for the first (no split).
	for i := uint64(1); i <= 15; i++ {
		mustInsertQuiet(t, s, e(i), e(100+i))
	}
	b := s.buckets[0]
	if len(s.maint.urgent) != 0 {
		t.Fatalf("bucket named after 15 of 16 mutations: %v", s.maint.urgent)
	}
	mustInsertQuiet(t, s, e(1), e(200))
	if len(s.maint.urgent) != 1 || s.maint.urgent[0] != b {
		t.Fatalf("writer did not name the saturated bucket: %v", s.maint.urgent)
	}
	advance(DefaultMaintenanceAgeSaturation) // 16 mutations in 30s is under the limit...
	s.maint.writes += 1_000_000
	rep := step(t, s) // ...but a million is not
	if !rep.throttled || rep.protected != 1 || rep.passes != 0 {
		t.Fatalf("report %+v, want throttled with one protected pass", rep)
	}
	if b.sorted != len(b.entries) {
		t.Fatal("protected bucket not merged")
	}
	st := s.Stats().Maintenance
	if st.ThrottledTicks != 1 || st.ProtectedMerges != 1 {
		t.Fatalf("stats %+v", st)
	}
	// An urgent-only tick passes over protected buckets only.
	for i := uint64(16); i <= 100; i++ {
		mustInsertQuiet(t, s, e(i), e(100+i))
	}
	advance(DefaultMaintenanceAgeSaturation)
	rep, err := s.maintainStep(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.scored != 0 || rep.passes != 0 || rep.merges != 0 || rep.gc {
		t.Fatalf("urgent-only tick did ordinary work: %+v", rep)
	}
}

func TestMaintainBuddyMerges(t *testing.T) {
	ctx := context.Background()
	s, advance := openStepped(t, newTestBackend(), Options{BucketCapacity: 16})
	for i := uint64(1); i <= 3000; i++ {
		mustInsertQuiet(t, s, e(i), e(i+1))
	}
	before := s.Stats()
	for i := uint64(1); i <= 3000; i++ {
		if i%50 != 0 {
			if err := s.Delete(ctx, e(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 200 {
		advance(time.Second)
		step(t, s)
	}
	after := s.Stats()
	if after.Buckets >= before.Buckets/4 || after.GlobalDepth >= before.GlobalDepth || after.Maintenance.BucketMerges.Runs == 0 {
		t.Fatalf("buckets %d -> %d, depth %d -> %d, %+v", before.Buckets, after.Buckets, before.GlobalDepth, after.GlobalDepth, after.Maintenance.BucketMerges)
	}
	for i := uint64(50); i <= 3000; i += 50 {
		mustGet(t, s, e(i), e(i+1))
	}
}

// modelSeed returns the seed of the randomized tests: CIDSTORE_SEED
// replays one.
func modelSeed(t *testing.T) uint64 {
	if v := os.Getenv("CIDSTORE_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 1
}

// TestSchedulerConcurrentModel runs random operations against a map model
// while the real scheduler goroutine (1ms ticks, GC every 5ms) and periodic
// checkpoints run concurrently; results always equal the model, Validate
// passes, and the store reopened from the backend plus the WAL equals the
// model too.
func TestSchedulerConcurrentModel(t *testing.T) {
	ctx := context.Background()
	seed := modelSeed(t)
	t.Logf("seed %d (replay with CIDSTORE_SEED=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0x5C4ED))
	b := newGCBackend()
	opts := Options{
		BucketCapacity: 16, WALPath: filepath.Join(t.TempDir(), "wal"), WALSizeBytes: 1 << 20,
		Sync: SyncNone, CheckpointInterval: 3 * time.Millisecond,
		MaintenanceInterval: time.Millisecond, GCInterval: 5 * time.Millisecond, MaintenanceIngestLimit: 1 << 30,
		MaintenanceAgeSaturation: 2 * time.Millisecond, // every bucket is visited, so demotions and merges happen
	}
	s := openGC(t, b, opts)
	m := map[E]map[E]struct{}{}
	get := func(k E) []E {
		out := slices.Collect(maps.Keys(m[k]))
		slices.SortFunc(out, E.Compare)
		return out
	}
	key := func() E { return e(1 + r.Uint64N(600)) }
	val := func() E { return e(1000 + r.Uint64N(6)) }
	steps := 20_000
	if testing.Short() {
		steps = 4000
	}
	for i := range steps {
		k := key()
		switch p := r.IntN(100); {
		case p < 40:
			v := val()
			mustInsertQuiet(t, s, k, v)
			if m[k] == nil {
				m[k] = map[E]struct{}{}
			}
			m[k][v] = struct{}{}
		case p < 50:
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			delete(m, k)
		case p < 70:
			v := val()
			if err := s.DeleteValue(ctx, k, v); err != nil {
				t.Fatal(err)
			}
			if delete(m[k], v); len(m[k]) == 0 {
				delete(m, k)
			}
		case p < 71:
			if _, err := s.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if r.IntN(10) == 0 { // a mass delete, so that buckets merge
				for k := range m {
					if r.IntN(10) != 0 {
						if err := s.Delete(ctx, k); err != nil {
							t.Fatal(err)
						}
						delete(m, k)
					}
				}
			}
		default:
			got, err := s.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := get(k); !slices.Equal(got, want) {
				t.Fatalf("step %d: Get(%v) = %v, model %v", i, k, got, want)
			}
		}
		if i%500 == 0 {
			if err := s.Validate(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// A quiet phase, with extra ticks run from here concurrently with the
	// scheduler's own, lets small spilled keys settle and demote.
	for i := 0; i < 2000 && s.Stats().Maintenance.Demotions.Runs == 0; i++ {
		if _, err := s.maintainStep(ctx, false); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := range m {
		got, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if want := get(k); !slices.Equal(got, want) {
			t.Fatalf("after the quiet phase: Get(%v) = %v, model %v", k, got, want)
		}
	}
	st := s.Stats()
	t.Logf("maintenance: %+v", st.Maintenance)
	if st.Maintenance.Ticks == 0 || st.Maintenance.TailMerges.Runs == 0 {
		t.Fatalf("the scheduler did not run: %+v", st.Maintenance)
	}
	s.abandon() // a crash: the backend has the last checkpoint, the WAL the rest
	s = openGC(t, b.reopen(), opts)
	defer s.Close()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 600; i++ {
		got, err := s.Get(ctx, e(i))
		if err != nil {
			t.Fatal(err)
		}
		if want := get(e(i)); !slices.Equal(got, want) {
			t.Fatalf("after reopen: Get(%v) = %v, model %v", e(i), got, want)
		}
	}
	if got := s.Stats(); got.Keys != uint64(len(m)) {
		t.Fatalf("after reopen: %d keys, model %d", got.Keys, len(m))
	}
}

// BenchmarkNoteRead is the scheduler's cost on the Get path: one sampled
// read count, from every goroutine on one bucket (the worst case).
func BenchmarkNoteRead(b *testing.B) {
	s, err := Open(newTestBackend(), Options{HashSeed: 1, MaintenanceInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bk := s.buckets[0]
	b.RunParallel(func(pb *testing.PB) {
		h := uint64(0x9E3779B97F4A7C15)
		for pb.Next() {
			h += 0x9E3779B97F4A7C15
			s.noteRead(bk, h)
		}
	})
}

// Gets are sampled about one in readSampleMask+1, and a hot key is counted
// on some ticks whatever its hash.
func TestReadSampling(t *testing.T) {
	ctx := context.Background()
	s, _ := openStepped(t, newTestBackend(), Options{BucketCapacity: 4096})
	for i := uint64(1); i <= 2000; i++ {
		mustInsertQuiet(t, s, e(i), e(1))
	}
	b := s.buckets[0]
	for i := uint64(1); i <= 2000; i++ {
		if _, err := s.Get(ctx, e(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.maint.reads.Load(); n < 2000/(readSampleMask+1)/2 || n > 2*2000/(readSampleMask+1) {
		t.Fatalf("%d of 2000 Gets sampled, want about %d", n, 2000/(readSampleMask+1))
	}
	var n uint32
	for range readSampleMask + 1 {
		step(t, s) // scores the bucket: takes its count
		for range 10 {
			if _, err := s.Get(ctx, e(7)); err != nil {
				t.Fatal(err)
			}
		}
		n += b.maint.reads.Load()
	}
	if n != 10 {
		t.Fatalf("a hot key was sampled %d times over %d ticks, want 10", n, readSampleMask+1)
	}
}

func TestMaintenanceOptions(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.MaintenanceInterval != DefaultMaintenanceInterval || o.MaintenanceIngestLimit != DefaultMaintenanceIngestLimit ||
		o.MaintenanceAgeSaturation != DefaultMaintenanceAgeSaturation || o.GCInterval != DefaultGCInterval {
		t.Fatalf("defaults %+v", o)
	}
	o.MaintenanceIngestLimit = -1
	if err := o.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative ingest limit: %v", err)
	}
	// A read-only store runs no scheduler and refuses GC.
	b := newTestBackend()
	s := openTest(t, b, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, b.reopen(), Options{ReadOnly: true, MaintenanceInterval: time.Millisecond})
	defer r.Close()
	if _, err := r.GC(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("GC on a read-only store: %v", err)
	}
}

// The first GC pass (a full scan, which reads every evicted bucket back)
// comes a GCInterval after Open, not at the first tick: right after a
// reopen nothing is loaded, and the first lookups should not compete with
// reading the whole store.
func TestFirstGCAfterInterval(t *testing.T) {
	s, advance := openStepped(t, newTestBackend(), Options{BucketCapacity: 16})
	for i := uint64(1); i <= 100; i++ {
		mustInsertQuiet(t, s, e(i), e(i+1))
	}
	advance(DefaultMaintenanceInterval)
	if rep := step(t, s); rep.gc {
		t.Fatalf("GC ran at the first tick after Open: %+v", rep)
	}
	advance(DefaultGCInterval - DefaultMaintenanceInterval)
	if rep := step(t, s); !rep.gc {
		t.Fatalf("no GC a GCInterval after Open: %+v", rep)
	}
	advance(DefaultMaintenanceInterval)
	if rep := step(t, s); rep.gc {
		t.Fatalf("GC ran again one tick later: %+v", rep)
	}
}
