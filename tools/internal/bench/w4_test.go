package bench

import (
	"slices"
	"testing"
)

func TestW4Deletes(t *testing.T) {
	w, err := NewW1(42, 3000, 100)
	if err != nil {
		t.Fatal(err)
	}
	d := NewW4Deletes(w, 42)
	p := w.P()
	if d.Pairs != p/2 {
		t.Errorf("deletes %d pairs of %d, want %d", d.Pairs, p, p/2)
	}
	whole := d.Pairs - d.Values
	if whole < p/4 || whole > p/4+5 {
		t.Errorf("whole keys remove %d pairs, want about %d", whole, p/4)
	}
	if len(d.Dels) != d.Keys+d.Values {
		t.Errorf("%d deletions, want %d + %d", len(d.Dels), d.Keys, d.Values)
	}
	again := NewW4Deletes(w, 42)
	if !slices.Equal(d.Dels, again.Dels) {
		t.Error("same seed, different deletions")
	}
	if other := NewW4Deletes(w, 43); slices.Equal(d.Dels, other.Dels) {
		t.Error("different seeds, same deletions")
	}

	// Apply them to a model; it must agree with Gone and Check.
	model := map[E][]E{}
	for j := range w.K() {
		model[w.Keys[j]] = slices.Clone(w.Values(j))
	}
	seen := map[Deletion]bool{}
	for _, del := range d.Dels {
		if seen[del] {
			t.Fatalf("deletion %v twice", del)
		}
		seen[del] = true
		if del.Value.IsZero() {
			delete(model, del.Key)
			continue
		}
		vs := model[del.Key]
		i, ok := slices.BinarySearchFunc(vs, del.Value, cmpE)
		if !ok {
			t.Fatalf("deletion of an absent value %v", del)
		}
		model[del.Key] = slices.Delete(vs, i, i+1)
	}
	gone := 0
	for _, g := range d.Gone {
		if g {
			gone++
		}
	}
	if gone != d.Pairs {
		t.Errorf("%d values gone, %d pairs deleted", gone, d.Pairs)
	}
	for j := range w.K() {
		got := model[w.Keys[j]]
		if !d.Check(w, j, got) {
			t.Fatalf("key %d: model %v rejected", j, got)
		}
		if len(w.Values(j)) > 0 && d.Check(w, j, w.Values(j)) != (len(got) == len(w.Values(j))) {
			t.Fatalf("key %d: the full set is accepted after deletions", j)
		}
	}
	if !d.Check(w, -1, nil) || d.Check(w, -1, []E{e(1, 1)}) {
		t.Error("absent key")
	}
}

func TestW4(t *testing.T) {
	for _, tc := range []struct {
		engine string
		sync   bool
	}{{"cidstore-mem", true}, {"cidstore-mem", false}, {"gomap", false}, {"badger", true}} {
		t.Run(tc.engine+syncName(tc.sync), func(t *testing.T) {
			spec, err := LookupEngine(tc.engine)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Workload: "W4", Engine: spec, Keys: 3000, Lookups: 3000, Batch: 200, Sync: tc.sync, Seed: 42, Dir: t.TempDir()}
			r, err := runW4(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Mismatches != 0 {
				t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
			}
			f, rf := r.W4Figures, r.ReclaimFigures
			if rf.DeletedPairs != r.Pairs/2 || f.DeletedKeys+f.DeletedValues != rf.Deletions || f.VerifiedKeys != 3000 {
				t.Errorf("deletes: %+v %+v of %d pairs", f, rf, r.Pairs)
			}
			if r.Lookups != 3300 || f.LookupP99UsBefore <= 0 || f.LookupP99UsAfter != r.LookupP99Us {
				t.Errorf("lookups: %d, %+v", r.Lookups, f)
			}
			durable := spec.Durable(tc.sync)
			if durable != (rf.DiskBytesBefore > 0 && rf.DiskBytesAfter == r.DiskBytes && r.DiskBytes > 0 && r.ReopenMs != nil && r.CloseMs > 0) {
				t.Errorf("durable %v: disk %d → %d (%d), close %v ms, reopen %v", durable, rf.DiskBytesBefore, rf.DiskBytesAfter, r.DiskBytes, r.CloseMs, r.ReopenMs)
			}
			checkJSONFields(t, r)
			checkFigureFields(t, r, []string{"disk_bytes_before", "disk_bytes_after", "lookup_p99_us_before",
				"lookup_p99_us_after", "delete_pairs_per_s", "gc_ms"}, []string{"compact_ms", "big_get_ms_before", "wal_records"})
		})
	}
}

// TestW4CompactFiles: cidstore-hdf5 compacts its closed files after the
// maintenance, and the lookups after run on the compacted store.
func TestW4CompactFiles(t *testing.T) {
	spec, err := LookupEngine("cidstore-hdf5")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Workload: "W4", Engine: spec, Keys: 3000, Lookups: 3000, Batch: 200, Sync: false, Seed: 42, Dir: t.TempDir()}
	r, err := runW4(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mismatches != 0 {
		t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
	}
	f, rf := r.W4Figures, r.ReclaimFigures
	t.Logf("disk %d → %d after GC → %d compacted (ratio %.3f) in %.1f ms", rf.DiskBytesBefore, rf.DiskBytesAfter,
		f.DiskBytesCompacted, f.DiskCompactedRatio, f.FileCompactMs)
	if f.DiskBytesCompacted <= 0 || f.DiskBytesCompacted >= rf.DiskBytesAfter || f.DiskCompactedRatio <= 0 || f.DiskCompactedRatio >= 1 {
		t.Errorf("compaction did not shrink the store: %+v %+v", f, rf)
	}
	checkJSONFields(t, r)
	checkFigureFields(t, r, []string{"disk_bytes_compacted", "disk_compacted_ratio", "file_compact_ms", "gc_ms"}, nil)
}
