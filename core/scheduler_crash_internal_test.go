package cidstore

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// crashHere is what an armed failpoint panics with: the test stops the
// store where it stands, as a kill would.
type crashHere string

// TestMaintenanceCrash kills the store inside each maintenance task (a
// failpoint panics; the in-memory state is then abandoned, as by a crash)
// and checks that reopening from the last checkpoint plus the WAL loses
// nothing, passes Validate, that maintenance then completes, and that GC
// leaves no orphan. The tests module's crash tests kill real processes at
// the same failpoints (except maint.buddy, which their workload never
// reaches).
func TestMaintenanceCrash(t *testing.T) {
	for _, fp := range []string{"maint.merge", "maint.compact", "maint.demote", "maint.buddy", "maint.gc"} {
		t.Run(fp, func(t *testing.T) { maintenanceCrash(t, fp) })
	}
}

func maintenanceCrash(t *testing.T, failpoint string) {
	ctx := context.Background()
	var mu sync.Mutex
	armed := false
	opts := Options{
		BucketCapacity: 16, WALPath: filepath.Join(t.TempDir(), "wal"), WALSizeBytes: 4 << 20,
		Sync: SyncNone, CheckpointInterval: -1, GCInterval: time.Nanosecond,
		Failpoint: func(name string) {
			mu.Lock()
			defer mu.Unlock()
			if armed && name == failpoint {
				armed = false
				panic(crashHere(name))
			}
		},
	}
	b := newGCBackend()
	s := openGC(t, b, opts)
	var clk time.Time
	s.maint.now = func() time.Time { return clk }
	clk = time.Unix(0, s.maint.opened)
	m := map[E]map[E]struct{}{}
	ins := func(k, v E) {
		mustInsertQuiet(t, s, k, v)
		if m[k] == nil {
			m[k] = map[E]struct{}{}
		}
		m[k][v] = struct{}{}
	}
	del := func(k, v E) {
		if err := s.DeleteValue(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		if delete(m[k], v); len(m[k]) == 0 {
			delete(m, k)
		}
	}
	for i := uint64(1); i <= 800; i++ {
		for j := uint64(0); j < 1+i%5; j++ {
			ins(e(i), e(5000+j))
		}
	}
	mustCheckpoint(t, s)
	// After the checkpoint, in the WAL only: tombstones, keys shrunk to two
	// values, a mass delete that leaves the store sparse, new tails.
	for i := uint64(1); i <= 800; i++ {
		switch {
		case i%5 == 3: // four values: two are left, to demote
			del(e(i), e(5000))
			del(e(i), e(5001))
		case i%5 == 4: // five values: a tombstone to compact
			del(e(i), e(5002))
		case i%4 != 0:
			if err := s.Delete(ctx, e(i)); err != nil {
				t.Fatal(err)
			}
			delete(m, e(i))
		}
	}
	for i := uint64(900); i <= 920; i++ {
		ins(e(i), e(1))
	}
	mu.Lock()
	armed = true
	mu.Unlock()
	crashed := false
	for n := 0; n < 500 && !crashed; n++ {
		clk = clk.Add(DefaultMaintenanceAgeSaturation)
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(crashHere); !ok {
						panic(r)
					}
					crashed = true
				}
			}()
			if _, err := s.maintainStep(ctx, false); err != nil {
				t.Fatal(err)
			}
		}()
	}
	if !crashed {
		t.Fatalf("failpoint %s never fired", failpoint)
	}
	s.abandon()

	s = openGC(t, b.reopen(), opts)
	defer s.Close()
	clk = time.Unix(0, s.maint.opened)
	s.maint.now = func() time.Time { return clk }
	check := func(when string) {
		t.Helper()
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for i := uint64(1); i <= 920; i++ {
			got, err := s.Get(ctx, e(i))
			if err != nil {
				t.Fatal(err)
			}
			want := slices.SortedFunc(maps.Keys(m[e(i)]), E.Compare)
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("%s: Get(%v) = %v, want %v", when, e(i), got, want)
			}
		}
		if st := s.Stats(); st.Keys != uint64(len(m)) {
			t.Fatalf("%s: %d keys, model %d", when, st.Keys, len(m))
		}
	}
	check("after the crash")
	// The task is redone: maintenance completes, and GC leaves nothing.
	for range 50 {
		clk = clk.Add(DefaultMaintenanceAgeSaturation)
		step(t, s)
	}
	mustGC(t, s)
	mustCheckpoint(t, s)
	check("after maintenance and gc")
	if st := mustGC(t, s); st.OrphanValueSets != 0 || st.OrphanBuckets != 0 {
		t.Fatalf("second gc %+v", st)
	}
	buckets, sets := liveIDs(s)
	if got, _ := b.BucketIDs(); !slices.Equal(got, buckets) || !slices.Equal(b.setIDs(), sets) {
		t.Fatalf("backend holds buckets %v sets %v; live %v %v", got, b.setIDs(), buckets, sets)
	}
}
