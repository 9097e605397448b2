package cidstore

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// The set table against a map: adds, replacements, removes (tombstones),
// growth and shrinking, with ids dense like the store's and scattered. The
// slot array is always between 3/16 and 3/4 full (or at its minimum size).
func TestSetTableModel(t *testing.T) {
	for _, dense := range []bool{true, false} {
		var tab setTable
		model := map[uint64]*valueSet{}
		r := rand.New(rand.NewPCG(3, 4))
		id := func() uint64 {
			if dense {
				return 1 + r.Uint64N(20_000)
			}
			return 1 + r.Uint64N(1<<62)*4
		}
		var ids []uint64
		for step := range 200_000 {
			switch op := r.IntN(10); {
			case op < 5 || len(ids) == 0: // add (or replace)
				k := id()
				if _, ok := model[k]; !ok {
					ids = append(ids, k)
				}
				model[k] = tab.alloc(k)
			case op < 8: // remove a present id
				i := r.IntN(len(ids))
				k := ids[i]
				ids[i] = ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				vs := model[k]
				delete(model, k)
				if step%2 == 0 {
					tab.free(vs)
				} else {
					tab.release(vs)
				}
				if tab.lookup(k) != nil {
					t.Fatalf("step %d: id %d found after removal", step, k)
				}
			default: // look up a present and a random id
				if k := ids[r.IntN(len(ids))]; tab.lookup(k) != model[k] || model[k].id != k {
					t.Fatalf("step %d: id %d: wrong set", step, k)
				}
				if k := id(); tab.lookup(k) != model[k] {
					t.Fatalf("step %d: id %d: got %p, want %p", step, k, tab.lookup(k), model[k])
				}
			}
			checkLoad(t, &tab, step)
			if step%50_000 == 0 || step == 199_999 {
				if tab.live() != len(model) {
					t.Fatalf("step %d: %d sets, want %d", step, tab.live(), len(model))
				}
				n := 0
				tab.each(func(vs *valueSet) {
					if model[vs.id] != vs {
						t.Fatalf("step %d: each: stray set %d", step, vs.id)
					}
					n++
				})
				if n != len(model) {
					t.Fatalf("step %d: each saw %d sets, want %d", step, n, len(model))
				}
			}
		}
		// Removing nearly everything shrinks the slots: memory follows the
		// resident sets.
		for i, k := range ids[:len(ids)-10] {
			tab.release(model[k])
			checkLoad(t, &tab, 200_000+i)
		}
		if n := len(tab.tab.Load().slot); n > setMinSlots {
			t.Fatalf("%d slots hold 10 sets", n)
		}
	}
}

// checkLoad fails unless tab's slots are 3/16 to 3/4 full (or at their
// minimum number).
func checkLoad(t *testing.T, tab *setTable, step int) {
	t.Helper()
	slots := len(tab.tab.Load().slot)
	if n := tab.live(); n*4 > slots*3 || (slots > setMinSlots && n*16 < slots*3) {
		t.Fatalf("step %d: %d sets in %d slots", step, n, slots)
	}
}

// Readers look ids up without locks while another goroutine adds and
// removes other ids (and so resizes): each reader's own ids, which no one
// else touches, stay found (run it under -race).
func TestSetTableConcurrentReaders(t *testing.T) {
	var tab setTable
	const readers, own = 2, 500
	mine := make([][]*valueSet, readers)
	for r := range readers {
		for i := range own {
			mine[r] = append(mine[r], tab.alloc(uint64(1+r*own+i)))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				vs := mine[r][n%own]
				if got := tab.lookup(vs.id); got != vs {
					t.Errorf("reader %d: id %d: got %p, want %p", r, vs.id, got, vs)
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var churn []*valueSet
	for range 20 {
		for range 5_000 {
			churn = append(churn, tab.alloc(1_000_000+rng.Uint64N(1<<40)))
		}
		for _, vs := range churn {
			tab.release(vs)
		}
		churn = churn[:0]
	}
	close(stop)
	wg.Wait()
}

// A resize moves the sets over setMigrateStep slots per add or remove,
// not all at once, and every set stays found meanwhile.
func TestSetTableIncrementalResize(t *testing.T) {
	var tab setTable
	var all []*valueSet
	next := uint64(1)
	add := func() {
		all = append(all, tab.alloc(next))
		next++
	}
	for tab.tab.Load() == nil || tab.tab.Load().prev.Load() == nil || len(tab.tab.Load().slot) < 1<<14 {
		add()
	}
	ts := tab.tab.Load()
	old := len(ts.prev.Load().slot)
	ops := 0
	for ts.prev.Load() != nil {
		add()
		ops++
		if tab.tab.Load() != ts {
			t.Fatal("resized again before the move ended")
		}
		if ops%97 == 0 {
			for _, vs := range all {
				if tab.lookup(vs.id) != vs {
					t.Fatalf("after %d adds: set %d not found", ops, vs.id)
				}
			}
		}
	}
	if want := (old + setMigrateStep - 1) / setMigrateStep; ops < want-1 || ops > want {
		t.Fatalf("a move of %d slots took %d adds, want %d", old, ops, want)
	}
	for _, vs := range all {
		if tab.lookup(vs.id) != vs {
			t.Fatalf("set %d not found", vs.id)
		}
	}
	if tab.live() != len(all) {
		t.Fatalf("%d sets, want %d", tab.live(), len(all))
	}
}
