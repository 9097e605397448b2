package h5store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// pagingModel drives a store whose value sets spread over many index
// pages, with an index cache of a few pages: commits add, rewrite and free
// sets at random over the pages, so that every commit's resolve and
// writeIndex read evicted pages back, the delta list fills, merges and is
// replaced by snapshots.
type pagingModel struct {
	t    *testing.T
	r    *rand.Rand
	lsn  uint64
	sets map[uint64][]byte // id → its one value
	next uint64
}

const pagingSpan = 24 * pageSize // ids used: 24 pages

// openPaging opens a new store with an 8 KiB index budget (most pages
// not resident) and a paging model seeded with seed, closed with the test.
func openPaging(t *testing.T, seed uint64) (*Store, *pagingModel) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "s.h5"), Options{IndexCacheBytes: 8 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustClose(t, s) })
	return s, &pagingModel{t: t, r: rand.New(rand.NewPCG(seed, seed+1)), sets: map[uint64][]byte{}}
}

func (m *pagingModel) checkpoint() *port.Checkpoint {
	m.lsn++
	cp := &port.Checkpoint{
		Meta: port.Meta{FormatVersion: 1, GlobalDepth: 0, BucketCapacity: 64, CheckpointLSN: m.lsn,
			NumBuckets: 1, NextBucketID: 1, NextValueSetID: pagingSpan + 1},
		Directory: []uint32{0},
	}
	if m.lsn == 1 {
		cp.Full = true
		cp.Buckets = []port.BucketRecord{{ID: 0}}
	}
	ids := slices.Sorted(maps.Keys(m.sets))
	for range m.r.IntN(min(len(ids)/8, 20) + 1) { // free some
		id := ids[m.r.IntN(len(ids))]
		if _, ok := m.sets[id]; ok {
			cp.FreedValueSets = append(cp.FreedValueSets, id)
			delete(m.sets, id)
		}
	}
	put := map[uint64]bool{}
	n := 1 + m.r.IntN(40)
	if m.lsn <= 4 || m.r.IntN(10) == 0 {
		n = 1 + m.r.IntN(4000)
	}
	for range n { // add or rewrite, anywhere in the span
		id := 1 + m.r.Uint64N(pagingSpan)
		if slices.Contains(cp.FreedValueSets, id) || put[id] {
			continue
		}
		put[id] = true
		v := make([]byte, port.ValueSize)
		le.PutUint64(v, m.r.Uint64()|1)
		le.PutUint64(v[8:], id)
		m.sets[id] = v
		cp.ValueSets = append(cp.ValueSets, port.ValueSetRecord{ID: id, SortedCount: 1, Values: bytes.Clone(v)})
	}
	// A freed id that was never live: a no-op the store must not record.
	for {
		id := 1 + m.r.Uint64N(pagingSpan)
		if _, live := m.sets[id]; !live && !put[id] && !slices.Contains(cp.FreedValueSets, id) {
			cp.FreedValueSets = append(cp.FreedValueSets, id)
			break
		}
	}
	cp.Meta.SpilledKeys = uint64(len(m.sets))
	return cp
}

func (m *pagingModel) verify(b port.Backend, all bool) error {
	ids := slices.Sorted(maps.Keys(m.sets))
	got, err := port.ListValueSetIDs(b.(port.Lister))
	if err != nil {
		return err
	}
	if !slices.Equal(got, ids) {
		return fmt.Errorf("lsn %d: ValueSetIDs has %d ids, want %d", m.lsn, len(got), len(ids))
	}
	check := ids
	if !all {
		check = nil
		for range 200 {
			check = append(check, 1+m.r.Uint64N(pagingSpan))
		}
	}
	for _, id := range check {
		v, err := b.ReadValueSet(id)
		want, live := m.sets[id]
		switch {
		case !live && !errors.Is(err, port.ErrNotFound):
			return fmt.Errorf("lsn %d: value set %d is not live, read gives %v", m.lsn, id, err)
		case live && err != nil:
			return fmt.Errorf("lsn %d: value set %d: %w", m.lsn, id, err)
		case live && !bytes.Equal(v.Values, want):
			return fmt.Errorf("lsn %d: value set %d holds %x, want %x", m.lsn, id, v.Values, want)
		}
	}
	return nil
}

// TestIndexPaging runs the paging model against a store that keeps a few
// index pages (and, for comparison, one that keeps them all), checks every
// read against the model after each commit and after reopening, and checks
// that pages were evicted and read back and that resident pages stayed
// within the budget between commits.
func TestIndexPaging(t *testing.T) {
	for _, budget := range []int64{8 << 10, 64 << 20} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.h5")
			opts := Options{IndexCacheBytes: budget, ReuseDelayCommits: -1, NoSync: true}
			s, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			m := &pagingModel{t: t, r: rand.New(rand.NewPCG(3, 4)), sets: map[uint64][]byte{}}
			snapshots, merges := 0, 0
			for i := range 120 {
				before := s.st.root
				if err := s.Commit(m.checkpoint()); err != nil {
					t.Fatal(err)
				}
				after := &s.st.root
				if after.snap[kindValueSet] != before.snap[kindValueSet] {
					snapshots++
				} else if len(after.deltas[kindValueSet]) < len(before.deltas[kindValueSet]) {
					merges++
				}
				if err := m.verify(s, i%20 == 19); err != nil {
					t.Fatal(err)
				}
				for _, tab := range s.st.tabs {
					checkResident(t, tab)
				}
				// The page a read just loaded stays even when it alone
				// passes a table's share of the budget.
				const maxPage = pageHeaderBytes + pageSize*recBytes + extBytes
				if st := s.Stats(); st.IndexBytes > budget+maxPage {
					t.Fatalf("commit %d: %d bytes of index pages resident, budget %d", i, st.IndexBytes, budget)
				}
			}
			st := s.Stats()
			t.Logf("index: %d snapshots, %d merged deltas; %d pages resident (%d bytes), %d loads, %d evictions, %d lookups",
				snapshots, merges, st.IndexPages, st.IndexBytes, st.IndexLoads, st.IndexEvictions, st.IndexLookups)
			if snapshots < 2 || merges < 1 {
				t.Errorf("the model made %d snapshots and %d merged deltas; want both paths", snapshots, merges)
			}
			if budget < 1<<20 && (st.IndexEvictions == 0 || st.IndexLoads == 0 || st.IndexLookups == 0 || st.IndexFinds == 0) {
				t.Errorf("%d loads, %d evictions, %d lookups, %d finds with a budget of %d bytes: nothing paged",
					st.IndexLoads, st.IndexEvictions, st.IndexLookups, st.IndexFinds, budget)
			}
			if budget > 1<<20 && st.IndexFinds != 0 {
				t.Errorf("%d pages resolved unbuilt with a budget that holds them all", st.IndexFinds)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			checkLookups(t, s.st.tabs[kindValueSet].src, pagingSpan+2)
			mustClose(t, s)
			for _, b := range []int64{8 << 10, 64 << 20} {
				s, err := Open(path, Options{IndexCacheBytes: b})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.verify(s, true); err != nil {
					t.Fatalf("reopened with budget %d: %v", b, err)
				}
				mustClose(t, s)
			}
			r, err := OpenReader(path, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.verify(r, true); err != nil {
				t.Fatalf("reader: %v", err)
			}
			mustClose(t, r)
		})
	}
}

// TestFindMatchesLoad checks that tsrc.find, which a commit's resolve uses
// for a page the budget would not keep, gives for any sorted subset of a
// page's ids (present or not) exactly the entries a page built by
// tsrc.load holds, over snapshots, deltas and tombstones.
func TestFindMatchesLoad(t *testing.T) {
	s, m := openPaging(t, 9)
	r := rand.New(rand.NewPCG(11, 12))
	checked, tombs := 0, 0
	for c := range 40 {
		if err := s.Commit(m.checkpoint()); err != nil {
			t.Fatal(err)
		}
		src := s.st.tabs[kindValueSet].src
		for pn := uint64(0); pn <= pagingSpan>>pageBits; pn++ {
			p, err := src.load(pn)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for sl := range pageSize {
				if r.IntN(8) == 0 {
					ids = append(ids, pn<<pageBits|uint64(sl))
				}
			}
			out, has := make([]loc, len(ids)), make([]bool, len(ids))
			for i := range has {
				has[i] = true // find must clear what it does not set
			}
			if err := src.find(ids, out, has); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				want, ok := p.get(int(id & (pageSize - 1)))
				if has[i] != ok || (ok && out[i] != want) {
					t.Fatalf("commit %d, id %d: find gives %+v, %v; the loaded page %+v, %v", c, id, out[i], has[i], want, ok)
				}
				if ok {
					checked++
					if !want.live() {
						tombs++
					}
				}
			}
		}
	}
	if checked < 1000 || tombs == 0 {
		t.Errorf("compared %d present entries, %d of them tombstones: the model did not exercise find", checked, tombs)
	}
}

// TestIndexCommitCounts checks that a paged table's live and dirty counts,
// kept across commits without reading every page, match a full count of
// the committed entries.
func TestIndexCommitCounts(t *testing.T) {
	s, m := openPaging(t, 5)
	for i := range 60 {
		if err := s.Commit(m.checkpoint()); err != nil {
			t.Fatal(err)
		}
		tab := s.st.tabs[kindValueSet]
		var live, dirty int
		err := tab.each(func(_ uint64, l *loc) error {
			if l.live() {
				live++
			}
			if l.state&stDirty != 0 {
				dirty++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if tab.live != live || tab.dirty != dirty || live != len(m.sets) {
			t.Fatalf("commit %d: table counts live %d dirty %d; entries say %d, %d; model %d",
				i, tab.live, tab.dirty, live, dirty, len(m.sets))
		}
	}
}

// TestIndexLoadsCountRebuilds checks that Stats.IndexLoads counts every
// page rebuilt from the index extents, also one the budget is too small
// to keep (a commit's resolve over a table far past its budget rebuilds
// pages it then drops; counting only the kept ones hid that work).
func TestIndexLoadsCountRebuilds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.h5")
	s, err := Open(path, Options{IndexCacheBytes: 8 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	m := &pagingModel{t: t, r: rand.New(rand.NewPCG(7, 8)), sets: map[uint64][]byte{}}
	for range 10 {
		if err := s.Commit(m.checkpoint()); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, s)

	s, err = Open(path, Options{IndexCacheBytes: 1, NoSync: true}) // no page fits
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	tab := s.st.tabs[kindValueSet]
	var pns []uint64
	tab.mu.RLock()
	for pn, p := range tab.pages {
		if p == nil {
			pns = append(pns, pn)
		}
	}
	tab.mu.RUnlock()
	if len(pns) < 2 {
		t.Fatalf("%d pages not resident; the model should spread sets over many", len(pns))
	}
	before := s.Stats()
	for _, pn := range pns[:2] {
		p, err := tab.page(pn)
		if err != nil || p == nil {
			t.Fatalf("page %d: %v, %v", pn, p, err)
		}
	}
	after := s.Stats()
	if after.IndexLoads != before.IndexLoads+2 {
		t.Errorf("two pages rebuilt: IndexLoads %d → %d", before.IndexLoads, after.IndexLoads)
	}
	if after.IndexBytes != before.IndexBytes || after.IndexPages != before.IndexPages {
		t.Errorf("a budget of 1 byte kept pages: %d → %d bytes, %d → %d pages",
			before.IndexBytes, after.IndexBytes, before.IndexPages, after.IndexPages)
	}
}

// TestSortRecords covers extents written before deltas were sorted: they
// are sorted in memory, and an id twice is corruption.
func TestSortRecords(t *testing.T) {
	rs := metaRecord[kindValueSet].Size
	ids := []uint64{9, 3, 2000, 7, 1}
	b := make([]byte, len(ids)*rs)
	for i, id := range ids {
		encodeMeta[kindValueSet](b[i*rs:], id, &loc{count: id, state: stLive})
	}
	if err := sortRecords(b, kindValueSet); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for o := 0; o < len(b); o += rs {
		id, l := decodeMeta[kindValueSet](b[o : o+rs])
		if l.count != id {
			t.Fatalf("record of %d carries count %d: records were mixed", id, l.count)
		}
		got = append(got, id)
	}
	if want := []uint64{1, 3, 7, 9, 2000}; !slices.Equal(got, want) {
		t.Fatalf("sorted ids %v, want %v", got, want)
	}
	x := srcExtent{e: extent{count: uint64(len(ids))}, mem: b, fences: []uint64{1}}
	src := &tsrc{kind: kindValueSet, exts: []srcExtent{x}}
	p, err := src.load(0)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := p.get(7); !ok || l.count != 7 {
		t.Fatalf("page 0 slot 7 = %+v, %v", l, ok)
	}
	if p1, _ := src.load(1); len(p1.recs) != 1 {
		t.Fatalf("page 1 has %d records, want 1 (id 2000)", len(p1.recs))
	}
	encodeMeta[kindValueSet](b[rs:], 1, &loc{state: stLive})
	if err := sortRecords(b, kindValueSet); err == nil {
		t.Fatal("an id twice sorted without error")
	}
}

// TestFenceSpan checks span against a linear scan over sorted ids.
func TestFenceSpan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n := r.IntN(3000)
		ids := make([]uint64, 0, n)
		id := r.Uint64N(5000)
		for range n {
			id += 1 + r.Uint64N(uint64(1+r.IntN(3000)))
			ids = append(ids, id)
		}
		var f fencer
		for _, id := range ids {
			f.add(id)
		}
		x := srcExtent{e: extent{count: uint64(n)}, fences: f.fences}
		for range 20 {
			pn := r.Uint64N(id>>pageBits + 2)
			lo, hi := pn<<pageBits, (pn+1)<<pageBits
			i, j := x.span(lo, hi)
			for k, id := range ids {
				if id >= lo && id < hi && (uint64(k) < i || uint64(k) >= j) {
					t.Fatalf("id %d (record %d) of page %d outside span [%d, %d)", id, k, pn, i, j)
				}
			}
			if j > i && j-i > uint64(pageSize+2*fenceEvery) {
				t.Fatalf("span [%d, %d) of page %d is too wide", i, j, pn)
			}
		}
	}
}

// checkResident recomputes a table's resident bytes from its pages.
func checkResident(t *testing.T, tab *table) {
	t.Helper()
	var n int64
	for _, p := range tab.pages {
		if p != nil {
			n += p.size()
		}
	}
	if n != tab.resident {
		t.Fatalf("table counts %d resident bytes; its pages hold %d", tab.resident, n)
	}
}

// checkLookups compares the point lookup of every id below n with the
// entry the id's page, built from the same extents, holds.
func checkLookups(t *testing.T, src *tsrc, n uint64) {
	t.Helper()
	var p *page
	for id := range n {
		pn, s := split(id)
		if s == 0 || p == nil {
			var err error
			if p, err = src.load(pn); err != nil {
				t.Fatal(err)
			}
		}
		want, wok := p.get(s)
		var reads uint64
		got, ok, err := src.lookup(id, &reads)
		if err != nil || got != want || ok != wok {
			t.Fatalf("lookup(%d) = %+v, %v, %v; its page has %+v, %v", id, got, ok, err, want, wok)
		}
		if reads > uint64(len(src.exts)) {
			t.Fatalf("lookup(%d) read %d blocks of %d extents", id, reads, len(src.exts))
		}
	}
}

// memExtent builds an in-memory extent of kind holding ids (ascending),
// each with a distinct loc, and its fences and filter.
func memExtent(kind int, ids []uint64, delta bool, gen uint64) srcExtent {
	rs := metaRecord[kind].Size
	mem := make([]byte, len(ids)*rs)
	f := newFencer(delta, uint64(len(ids)))
	for i, id := range ids {
		l := loc{ref: ref(id + 1), count: 1, gen: gen, state: stLive}
		encodeMeta[kind](mem[i*rs:], id, &l)
		f.add(id)
	}
	return srcExtent{e: extent{count: uint64(len(ids)), gen: gen}, delta: delta, mem: mem, fences: f.fences, filter: f.filter}
}

// A lookup of an id that no delta holds reads the snapshot's block and
// almost never a delta's: each delta's filter rules it out. Ids a delta
// holds are still found in the newest delta that holds them (the filters
// have no false negatives), and a delta past filterMax has no filter.
func TestDeltaFilters(t *testing.T) {
	const n = 8 * pageSize
	src := &tsrc{kind: kindValueSet}
	var all []uint64
	for id := range uint64(n) {
		all = append(all, id)
	}
	src.exts = append(src.exts, memExtent(kindValueSet, all, false, 1))
	inDelta := map[uint64]uint64{} // id → gen of the newest delta holding it
	r := rand.New(rand.NewPCG(5, 6))
	for d := range uint64(maxDeltas) {
		var ids []uint64
		for id := r.Uint64N(97); id < n; id += 50 + r.Uint64N(100) {
			ids = append(ids, id)
			inDelta[id] = d + 2
		}
		src.exts = append(src.exts, memExtent(kindValueSet, ids, true, d+2))
		if src.exts[len(src.exts)-1].filter == nil {
			t.Fatal("a small delta has no filter")
		}
	}
	var reads, missReads uint64
	misses := 0
	for id := range uint64(n) {
		before := reads
		l, ok, err := src.lookup(id, &reads)
		if err != nil || !ok {
			t.Fatalf("lookup(%d): %v, %v", id, ok, err)
		}
		want, held := inDelta[id]
		if !held {
			want = 1
			misses++
			missReads += reads - before
		}
		if l.gen != want {
			t.Fatalf("lookup(%d) found generation %d, want %d", id, l.gen, want)
		}
	}
	// Without filters every delta whose fences span the id is read: ~17
	// blocks per lookup. With them: the snapshot's, plus ~1 % of 16.
	if avg := float64(missReads) / float64(misses); avg > 1.5 {
		t.Fatalf("a lookup of an id in no delta read %.2f blocks on average", avg)
	}
	if f := newFencer(true, filterMax+1); f.filter != nil {
		t.Fatal("a delta past filterMax got a filter")
	}
	if f := newFencer(false, 10); f.filter != nil {
		t.Fatal("a snapshot got a filter")
	}
}

// TestEachDirtyMatchesEach checks the merged delta's source: eachDirty
// (the deltas merged with the overlay, snapshot unread) against each
// filtered to the dirty entries, after each of 60 commits of the paging
// model, with a resolved overlay of random rewrites, new ids and
// tombstones staged on top.
func TestEachDirtyMatchesEach(t *testing.T) {
	s, m := openPaging(t, 13)
	r := rand.New(rand.NewPCG(15, 16))
	merges, compared := 0, 0
	for c := range 60 {
		if err := s.Commit(m.checkpoint()); err != nil {
			t.Fatal(err)
		}
		tab := s.st.tabs[kindValueSet]
		if tab.src == nil || !tab.src.deltas() {
			t.Fatalf("commit %d: the table's source is not a snapshot and deltas", c)
		}
		if len(tab.src.exts) > 2 {
			merges++
		}
		live, dirty := tab.live, tab.dirty
		for range r.IntN(300) {
			l := loc{ref: ref(1 + r.Uint64N(1<<20)), gen: uint64(c + 2), count: 1, state: stDirty}
			if r.IntN(4) > 0 {
				l.state |= stLive
			}
			tab.stage(1+r.Uint64N(pagingSpan+pageSize), l) // a page past the span: new ids
		}
		if err := tab.resolve(func(loc) {}); err != nil {
			t.Fatal(err)
		}
		type rec struct {
			id uint64
			l  loc
		}
		var want, got []rec
		if err := tab.each(func(id uint64, l *loc) error {
			if l.state&stDirty != 0 {
				want = append(want, rec{id, *l})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := tab.eachDirty(func(id uint64, l *loc) error {
			got = append(got, rec{id, *l})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("commit %d: eachDirty gives %d entries, each %d dirty ones; first difference at %d", c, len(got), len(want),
				firstDiff(len(got), len(want), func(i int) bool { return got[i] == want[i] }))
		}
		if len(want) != tab.dirty {
			t.Fatalf("commit %d: %d dirty entries, the table counts %d", c, len(want), tab.dirty)
		}
		compared += len(want)
		tab.discard(live, dirty)
	}
	if merges < 10 || compared < 10000 {
		t.Errorf("%d commits had two deltas or more, %d entries compared: the model did not exercise the merge", merges, compared)
	}
}

// firstDiff returns the first index below min(n, m) where eq is false, or
// that minimum.
func firstDiff(n, m int, eq func(int) bool) int {
	for i := range min(n, m) {
		if !eq(i) {
			return i
		}
	}
	return min(n, m)
}

// TestMergeMatchesEach compares tsrc.merge, which the scan after Open
// walks, with each over the pages, after every commit of the paging
// model: snapshots, deltas, merged deltas, freed ids.
func TestMergeMatchesEach(t *testing.T) {
	s, m := openPaging(t, 17)
	type rec struct {
		id uint64
		l  loc
	}
	extents, compared := 0, 0
	for c := range 40 {
		if err := s.Commit(m.checkpoint()); err != nil {
			t.Fatal(err)
		}
		for k, tab := range s.st.tabs {
			var want, got []rec
			if err := tab.each(func(id uint64, l *loc) error {
				want = append(want, rec{id, *l})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := tab.src.merge(func(id uint64, l *loc) error {
				got = append(got, rec{id, *l})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("commit %d, %s table: merge gives %d entries, each %d; first difference at %d", c, kindName[k], len(got), len(want),
					firstDiff(len(got), len(want), func(i int) bool { return got[i] == want[i] }))
			}
			extents = max(extents, len(tab.src.exts))
			compared += len(want)
		}
	}
	if extents < 3 || compared < 10000 {
		t.Errorf("at most %d extents per table, %d entries compared: the model did not exercise the merge", extents, compared)
	}
}
