package h5store

import (
	"maps"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestOverlayModel checks the overlay against a plain map under random
// puts (new ids and rewrites), drops and resets: get after every step,
// and after a sort, order naming every present id once, ascending, with
// its latest entry. Ids are small, huge (the comparison sort's path) or
// repeated.
func TestOverlayModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var o overlay
		model := map[uint64]loc{}
		ids := rapid.OneOf(rapid.Uint64Range(0, 3000), rapid.Uint64Range(math.MaxUint64-4, math.MaxUint64), rapid.Uint64())
		for step := range rapid.IntRange(1, 300).Draw(rt, "steps") {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 6:
				id := ids.Draw(rt, "id")
				l := loc{ref: ref(step + 1), gen: uint64(op), state: stDirty}
				o.put(id, l)
				model[id] = l
			case op < 8:
				if len(model) == 0 {
					continue
				}
				keys := slices.Sorted(maps.Keys(model))
				id := keys[rapid.IntRange(0, len(keys)-1).Draw(rt, "drop")]
				o.drop(id)
				delete(model, id)
			case op == 8:
				o.sort()
				if len(o.order) != len(model) {
					rt.Fatalf("step %d: order has %d entries, the model %d", step, len(o.order), len(model))
				}
				want := slices.Sorted(maps.Keys(model))
				for k, e := range o.order {
					if got := o.ents[e]; got.id != want[k] || got.l != model[want[k]] {
						rt.Fatalf("step %d: order[%d] names %d %+v, want %d %+v", step, k, got.id, got.l, want[k], model[want[k]])
					}
				}
			default:
				if rapid.IntRange(0, 9).Draw(rt, "reset") == 0 {
					o.reset()
					clear(model)
				}
			}
			if o.len() != len(model) {
				rt.Fatalf("step %d: %d entries, the model %d", step, o.len(), len(model))
			}
			for id, want := range model {
				if got, ok := o.get(id); !ok || got != want {
					rt.Fatalf("step %d: get(%d) = %+v, %v; want %+v", step, id, got, ok, want)
				}
			}
		}
	})
}

// TestOverlayEntryAcrossReset checks that a walk's reference to an entry
// of a commit that ended gives what a lookup gives now, not the entry
// that took its index.
func TestOverlayEntryAcrossReset(t *testing.T) {
	var o overlay
	o.put(7, loc{ref: 1, state: stLive | stDirty})
	gen, r := o.gen, overRef{7, o.at[7]}
	if got := o.entry(gen, r); got.ref != 1 {
		t.Fatalf("entry before the reset: %+v", got)
	}
	o.reset()
	o.put(9, loc{ref: 2, state: stLive | stDirty}) // takes index 0
	if got := o.entry(gen, r); got != (loc{}) {
		t.Fatalf("entry of a reset overlay gives %+v, want nothing", got)
	}
	o.put(7, loc{ref: 3, state: stDirty})
	if got := o.entry(gen, r); got.ref != 3 {
		t.Fatalf("entry of an id staged again gives %+v, want its new entry", got)
	}
}

// TestOverlayEntryDropped checks that a walk's reference to an entry
// dropped since gives nothing, as the map does.
func TestOverlayEntryDropped(t *testing.T) {
	var o overlay
	o.put(7, loc{ref: 1, state: stDirty})
	o.put(8, loc{ref: 2, state: stLive | stDirty})
	gen, r7, r8 := o.gen, overRef{7, o.at[7]}, overRef{8, o.at[8]}
	o.drop(7)
	if got := o.entry(gen, r7); got != (loc{}) {
		t.Fatalf("entry of a dropped id gives %+v, want nothing", got)
	}
	if got := o.entry(gen, r8); got.ref != 2 {
		t.Fatalf("entry of a kept id gives %+v", got)
	}
}
