package h5store

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// Every data pool's padding fits zeroPad: put pads objects to whole
// granules.
func TestZeroPadFitsGranules(t *testing.T) {
	for _, pi := range dataPool {
		sp := poolSpecs[pi]
		if need := (sp.granule - 1) * uint64(sp.rec.Size); need > uint64(len(zeroPad)) {
			t.Errorf("%s: padding up to %d bytes, zeroPad has %d", sp.name, need, len(zeroPad))
		}
	}
}

func TestIDSet(t *testing.T) {
	s := newIDSet(1000)
	model := map[uint64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		id := r.Uint64N(3000) // a third below the limit's bitmap, the rest in the map
		if r.IntN(50) == 0 {
			id = r.Uint64()
		}
		if got := s.has(id); got != model[id] {
			t.Fatalf("has(%d) = %v, want %v", id, got, model[id])
		}
		s.add(id)
		model[id] = true
	}
	for id := range model {
		if !s.has(id) {
			t.Fatalf("has(%d) = false after add", id)
		}
	}
}

// Small objects committed one after another are cut from one run of free
// space, back to back, and a freed hole smaller than a run is not used
// while a run exists.
func TestAllocRuns(t *testing.T) {
	p := newPool(poolValues)
	p.addSegment(nil, 0, 1<<16, true)
	var last ref
	for i := range 100 {
		r, ok := p.alloc(3)
		if !ok {
			t.Fatal("alloc failed")
		}
		if i > 0 && r.rec() != last.rec()+p.granule {
			t.Fatalf("alloc %d at record %d, want %d (right after the previous)", i, r.rec(), last.rec()+p.granule)
		}
		last = r
	}
	hole := mkRef(0, 10*p.granule)
	p.release(hole, 3)
	if r, _ := p.alloc(3); r == hole {
		t.Fatal("a one-granule hole was reused while the run had room")
	}
}

// Rebuilding the free space at Open refuses extents that overlap, are
// misaligned or lie outside their segment: a corrupt index must not make
// two objects share rows.
func TestMarkUsedRefusesBadExtents(t *testing.T) {
	p := newPool(poolValues)
	p.addSegment(nil, 0, 1<<10, true)
	g := p.granule
	if err := p.markUsed(mkRef(0, 4*g), 2*g); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    ref
		n    uint64
	}{
		{"overlapping", mkRef(0, 5*g), g},
		{"misaligned", mkRef(0, 8*g+1), g},
		{"past the segment", mkRef(0, 1<<10-g), 2 * g},
		{"in a missing segment", mkRef(3, 0), g},
	} {
		if err := p.markUsed(c.r, c.n); !errors.Is(err, port.ErrCorrupt) {
			t.Errorf("%s extent %v+%d: err = %v, want ErrCorrupt", c.name, c.r, c.n, err)
		}
	}
	if err := p.markUsed(mkRef(0, 6*g), g); err != nil {
		t.Fatalf("the extent right after a used one: %v", err)
	}
}
