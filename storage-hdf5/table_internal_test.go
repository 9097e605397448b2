package h5store

import (
	"maps"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestTableModel checks a resident table against a plain map under random
// set, del and clean (as a full checkpoint and applyIndex use them), after
// every step: get, each's order, ids, live and dirty, and the table's own
// invariants (the paged mode is TestIndexPaging's). Ids are dense (filling and emptying pages), around page
// boundaries and huge; counts cross the uint32 limit of a rec.
func TestTableModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tab, model := newTable(), map[uint64]loc{}
		idGen := rapid.Custom(func(rt *rapid.T) uint64 {
			gens := []*rapid.Generator[uint64]{
				rapid.Uint64Range(0, 3*pageSize),
				rapid.SampledFrom([]uint64{0, pageSize - 1, pageSize, pageSize + 1, 2*pageSize - 1,
					1<<40 - 1, 1 << 40, 1<<40 + 1, math.MaxUint64 - 1, math.MaxUint64}),
				rapid.Uint64(),
			}
			if len(model) > 0 {
				gens = append(gens, rapid.SampledFrom(slices.Sorted(maps.Keys(model))))
			}
			return rapid.OneOf(gens...).Draw(rt, "id")
		})
		count := rapid.OneOf(rapid.Uint64Range(0, 20), rapid.Uint64Range(bigCount-2, bigCount+2), rapid.Uint64())
		locGen := rapid.Custom(func(rt *rapid.T) loc {
			return loc{
				ref:           ref(rapid.OneOf(rapid.Uint64(), rapid.Just(uint64(nilRef))).Draw(rt, "ref")),
				gen:           rapid.Uint64().Draw(rt, "gen"),
				count:         count.Draw(rt, "count"),
				tombs:         count.Draw(rt, "tombs"),
				lastCompacted: rapid.OneOf(rapid.Just(int64(0)), rapid.Int64()).Draw(rt, "lastCompacted"),
				sorted:        rapid.Uint32().Draw(rt, "sorted"),
				crc:           rapid.Uint32().Draw(rt, "crc"),
				depth:         rapid.OneOf(rapid.Just(uint8(0)), rapid.Uint8()).Draw(rt, "depth"),
				state:         rapid.Uint8Range(0, stLive|stDirty).Draw(rt, "state"),
			}
		})
		set := func(id uint64, l loc) {
			tab.set(id, l)
			model[id] = l
		}
		rt.Repeat(map[string]func(*rapid.T){
			"set": func(rt *rapid.T) { set(idGen.Draw(rt, "id"), locGen.Draw(rt, "loc")) },
			"del": func(rt *rapid.T) {
				id := idGen.Draw(rt, "id")
				tab.del(id)
				delete(model, id)
			},
			// A run of ids, as a snapshot load or a batch of new value
			// sets makes: fills pages, grows their recs.
			"setRun": func(rt *rapid.T) {
				from, n := idGen.Draw(rt, "from"), rapid.Uint64Range(1, 2*pageSize).Draw(rt, "n")
				l := locGen.Draw(rt, "loc")
				for id := from; id-from < n && id >= from; id++ {
					l.gen++
					set(id, l)
				}
			},
			// Tombstones over a run of ids, as freeing them does; a clean
			// then empties pages.
			"freeRun": func(rt *rapid.T) {
				from, n := idGen.Draw(rt, "from"), rapid.Uint64Range(1, 2*pageSize).Draw(rt, "n")
				for id := from; id-from < n && id >= from; id++ {
					if _, ok := model[id]; ok {
						set(id, loc{state: stDirty})
					}
				}
			},
			"delRun": func(rt *rapid.T) {
				from, n := idGen.Draw(rt, "from"), rapid.Uint64Range(1, 2*pageSize).Draw(rt, "n")
				for id := from; id-from < n && id >= from; id++ {
					tab.del(id)
					delete(model, id)
				}
			},
			"clean": func(rt *rapid.T) {
				tab.clean()
				for id, l := range model {
					if !l.live() {
						delete(model, id)
						continue
					}
					l.state &^= stDirty
					model[id] = l
				}
			},
			"get": func(rt *rapid.T) {
				id := idGen.Draw(rt, "id")
				want, wok := model[id]
				if got, ok, err := tab.get(id); err != nil || got != want || ok != wok {
					rt.Fatalf("get(%d) = %+v, %v; want %+v, %v", id, got, ok, want, wok)
				}
			},
			"": func(rt *rapid.T) { checkTable(rt, tab, model) },
		})
	})
}

// checkTable compares tab with model through every read method and checks
// tab's internal invariants.
func checkTable(rt *rapid.T, tab *table, model map[uint64]loc) {
	var live, dirty, big int
	var liveIDs []uint64
	for id, want := range model {
		if got, ok, err := tab.get(id); err != nil || !ok || got != want {
			rt.Fatalf("get(%d) = %+v, %v; want %+v", id, got, ok, want)
		}
		if want.live() {
			live++
			liveIDs = append(liveIDs, id)
		}
		if want.state&stDirty != 0 {
			dirty++
		}
		if want.count >= bigCount || want.tombs >= bigCount {
			big++
		}
	}
	if tab.live != live || tab.dirty != dirty {
		rt.Fatalf("live, dirty = %d, %d; want %d, %d", tab.live, tab.dirty, live, dirty)
	}
	var order []uint64
	err := tab.each(func(id uint64, l *loc) error {
		if *l != model[id] {
			rt.Fatalf("each: %d: %+v; want %+v", id, *l, model[id])
		}
		order = append(order, id)
		return nil
	})
	if err != nil {
		rt.Fatal(err)
	}
	if want := slices.Sorted(maps.Keys(model)); !slices.Equal(order, want) {
		rt.Fatalf("each visited %v; want %v", order, want)
	}
	slices.Sort(liveIDs)
	if got, err := tab.ids(); err != nil || !slices.Equal(got, liveIDs) {
		rt.Fatalf("ids() = %v, %v; want %v", got, err, liveIDs)
	}
	// Pages of ids from around a few live ids and a page further on.
	for i, id := range liveIDs[:min(len(liveIDs), 4)] {
		for _, after := range []uint64{id - 1, id, id + pageSize} {
			limit := 1 + i*3
			from, found := slices.BinarySearch(liveIDs, after)
			if found {
				from++
			}
			want := liveIDs[from:min(len(liveIDs), from+limit)]
			if got, err := tab.idsAfter(after, limit); err != nil || !slices.Equal(got, want) {
				rt.Fatalf("idsAfter(%d, %d) = %v, %v; want %v", after, limit, got, err, want)
			}
		}
	}
	// Internal: nothing leaks into big, pages are never empty, and the
	// bitmaps agree with recs.
	nbig := 0
	for _, p := range tab.pages {
		nbig += len(p.big)
	}
	if nbig != big {
		rt.Fatalf("big holds %d entries; want %d", nbig, big)
	}
	for pn, p := range tab.pages {
		n := 0
		for w := range p.has {
			n += bits.OnesCount64(p.has[w])
			if p.live[w]&^p.has[w] != 0 || p.dirty[w]&^p.has[w] != 0 {
				rt.Fatalf("page %d: state bits of absent slots", pn)
			}
		}
		if n == 0 || n != len(p.recs) || cap(p.recs) > pageSize {
			rt.Fatalf("page %d: %d slots, %d recs (cap %d)", pn, n, len(p.recs), cap(p.recs))
		}
	}
}

func TestTableRejectsUnknownState(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("set with state bit 4 did not panic")
		}
	}()
	newTable().set(1, loc{state: 4})
}

// TestTableMemory fills a value-set table as a large store has it after a
// snapshot (dense ids from 1, clean live entries) and guards the heap it
// takes per entry. The Go map it replaced took 95-150 bytes (150 at this
// size, 100 at 6M).
func TestTableMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 1M entries")
	}
	const n = 1_000_000
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	tab := newTable()
	for id := uint64(1); id <= n; id++ {
		c := id%7 + 3
		tab.set(id, loc{ref: mkRef(int(id%3), id*4), gen: 1 + id/5000, count: c, sorted: uint32(c),
			crc: uint32(id * 2654435761), state: stLive | stDirty})
	}
	tab.clean()
	per := float64(heap()-before) / n
	runtime.KeepAlive(tab)
	t.Logf("%d value-set entries: %.1f bytes per entry", n, per)
	if per > 48 {
		t.Errorf("table takes %.1f bytes per entry, want at most 48", per)
	}
}
