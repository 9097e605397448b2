package h5store

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
)

// TestScanAfterOpen reopens a store whose tables' counts commits kept up
// to date, and checks that the scan after Open counts the same, and that
// commits allocating from the free space it rebuilt leave every object
// intact (an object it missed would be overwritten: verifyState and Check
// would see it).
func TestScanAfterOpen(t *testing.T) {
	s, w, path := commitN(t, 60, workloadOptions())
	var counts [numKinds][2]int
	for k, tab := range s.st.tabs {
		counts[k] = [2]int{tab.live, tab.dirty}
	}
	if counts[kindBucket][0] == 0 || counts[kindValueSet][0] == 0 {
		t.Fatalf("counts %v: the workload made no buckets or sets", counts)
	}
	mustClose(t, s)

	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if err := s.waitScan(); err != nil {
		t.Fatal(err)
	}
	for k, tab := range s.st.tabs {
		if got := [2]int{tab.live, tab.dirty}; got != counts[k] {
			t.Errorf("%s table after reopen: live, dirty = %v, want %v", kindName[k], got, counts[k])
		}
	}
	// The data pools' used granules are exactly the live objects'
	// extents, computed here from the tables granule by granule.
	want := map[int][][]bool{}
	for k := range numKinds {
		p := s.st.pools[dataPool[k]]
		if want[p.id] == nil {
			want[p.id] = make([][]bool, len(p.segs))
			for i, sg := range p.segs {
				want[p.id][i] = make([]bool, sg.free.n)
			}
		}
		err := s.st.tabs[k].each(func(id uint64, l *loc) error {
			if l.live() && l.records() > 0 {
				for g := l.ref.rec() / p.granule; g < (l.ref.rec()+l.records()+p.granule-1)/p.granule; g++ {
					want[p.id][l.ref.seg()][g] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for pid, segs := range want {
		p := s.st.pools[pid]
		for i, used := range segs {
			for g, u := range used {
				if got := p.segs[i].free.get(uint64(g)); got != u {
					t.Fatalf("%s segment %d granule %d: used %v, want %v", poolSpecs[pid].name, i, g, got, u)
				}
			}
		}
	}
	if s.Stats().FreeSpaceScan <= 0 {
		t.Error("Stats.FreeSpaceScan not set after the scan")
	}
	for range 40 {
		if err := s.Commit(w.next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadsDuringScan reads every object while the scan after Open may
// still run (the race detector checks the sharing), then closes at once
// the store it opens next, stopping its scan: Close must not wait for the
// whole walk or deadlock with it, and the store must open again whole.
func TestReadsDuringScan(t *testing.T) {
	s, w, path := commitN(t, 60, workloadOptions())
	mustClose(t, s)
	s, err := Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	for range 5 {
		s, err := Open(path, workloadOptions())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Close did not return while the scan after Open ran")
		}
	}
	s, err = Open(path, workloadOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if err := s.Commit(w.next()); err != nil {
		t.Fatal(err)
	}
	if err := verifyState(s, w); err != nil {
		t.Fatal(err)
	}
}

// TestWarmOrder checks that the scan after Open builds every page of the
// bucket and bucket-delta tables before any page of the value sets': a
// read of a bucket looks both up, and the value sets' pages, by far the
// most, take the longest to build (with the delta table last, a 10M-key
// reopen's first GETs each read the delta's index entry from the file).
func TestWarmOrder(t *testing.T) {
	s, w, _ := commitN(t, 60, Options{SegmentBytes: minSegmentBytes})
	defer mustClose(t, s)
	// Enough value sets for two pages.
	r := rand.New(rand.NewPCG(1, 2))
	cp := &port.Checkpoint{}
	for range pageSize + 100 {
		v := w.valueSet(r, w.nextV, 3)
		w.sets[v.ID] = v
		cp.ValueSets = append(cp.ValueSets, v)
		w.nextV++
	}
	if err := s.Commit(w.seal(cp)); err != nil {
		t.Fatal(err)
	}
	// A state as Open loads it, before its scan: no page resident.
	st, err := loadState(s.st.root, true, s.openSegment, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	pages := func(k int) (resident, known int) {
		tab := st.tabs[k]
		tab.mu.RLock()
		defer tab.mu.RUnlock()
		for _, p := range tab.pages {
			if p != nil {
				resident++
			}
		}
		return resident, len(tab.pages)
	}
	for k, atLeast := range [numKinds]int{kindBucket: 1, kindBucketDelta: 1, kindValueSet: 2} {
		if r, n := pages(k); r != 0 || n < atLeast {
			t.Fatalf("%s table before the scan: %d of %d pages resident; want none of at least %d", kindName[k], r, n, atLeast)
		}
	}
	setPagesSeen := false
	err = st.markData(func() bool {
		if r, _ := pages(kindValueSet); r == 0 || setPagesSeen {
			return false
		}
		setPagesSeen = true
		for _, k := range []int{kindBucket, kindBucketDelta} {
			if r, n := pages(k); r != n {
				t.Errorf("a value-set page was built with %d of the %d %s pages", r, n, kindName[k])
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range numKinds {
		if r, n := pages(k); r != n {
			t.Errorf("%s table after the scan: %d of %d pages resident", kindName[k], r, n)
		}
	}
	if !setPagesSeen {
		t.Error("the scan built no value-set page")
	}
}
