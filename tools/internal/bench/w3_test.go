package bench

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestW3Data(t *testing.T) {
	tests := []struct {
		name       string
		light, big int
	}{
		{"light and big", 7, 5003},
		{"big only", 0, 1},
		{"light only", 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewW3(42, tc.light, tc.big)
			if err != nil {
				t.Fatal(err)
			}
			if w.P != tc.light*W3ValuesPerKey+tc.big {
				t.Fatalf("P = %d", w.P)
			}
			// Every pair is inserted exactly once, under its key.
			seen := make(map[Pair]bool, w.P)
			perKey := map[E]int{}
			for p := range w.P {
				pr := w.PairAt(p)
				if pr.Key.IsZero() || pr.Value.IsZero() {
					t.Fatalf("position %d: zero identifier", p)
				}
				if seen[pr] {
					t.Fatalf("position %d: pair inserted twice", p)
				}
				seen[pr] = true
				perKey[pr.Key]++
			}
			if tc.big > 0 && perKey[w.BigKey] != tc.big {
				t.Errorf("big key has %d values, want %d", perKey[w.BigKey], tc.big)
			}
			for j := range tc.light {
				k := w.LightKey(j)
				if perKey[k] != W3ValuesPerKey {
					t.Errorf("light key %d has %d values", j, perKey[k])
				}
				for _, v := range w.LightValues(j) {
					if !seen[Pair{Key: k, Value: v}] {
						t.Fatalf("light key %d: value %v never inserted", j, v)
					}
				}
			}
			half := w.BigValues(func(i int) bool { return !w3Deleted(i) })
			if len(half) != tc.big/2 {
				t.Errorf("%d values kept of %d", len(half), tc.big)
			}
		})
	}
	if _, err := NewW3(42, 1_000_000, DefaultBigValues); err == nil || !strings.Contains(err.Error(), "--keys 10000") {
		t.Errorf("W3 at W1's default --keys: err = %v", err)
	}
}

func TestW3(t *testing.T) {
	for _, tc := range []struct {
		engine string
		sync   bool
	}{{"cidstore-mem", true}, {"cidstore-mem", false}, {"gomap", false}, {"pebble", true}} {
		t.Run(tc.engine+syncName(tc.sync), func(t *testing.T) {
			spec, err := LookupEngine(tc.engine)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Workload: "W3", Engine: spec, Keys: 4, BigValues: 4001, Batch: 500, Sync: tc.sync, Seed: 7, Dir: t.TempDir()}
			r, err := runW3(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Mismatches != 0 {
				t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
			}
			f, rf := r.W3Figures, r.ReclaimFigures
			if r.Pairs != 4*W3ValuesPerKey+4001 || f.BigValues != 4001 || f.LightKeys != 4 {
				t.Errorf("sizes: pairs %d, %+v", r.Pairs, f)
			}
			if rf.DeletedPairs != 2001 || rf.Deletions != 2001 || rf.DeletePairsPerS <= 0 {
				t.Errorf("deletes: %+v", rf)
			}
			if f.BigGetMsBefore <= 0 || f.BigGetMsAfter <= 0 || f.BigGetMsDeleted <= 0 || f.HeavyGetP99Us <= 0 || r.Lookups != 4 {
				t.Errorf("figures: %+v, %d lookups", f, r.Lookups)
			}
			durable := spec.Durable(tc.sync)
			if durable != (rf.DiskBytesBefore > 0 && rf.DiskBytesAfter == r.DiskBytes && r.DiskBytes > 0 && r.ReopenMs != nil && r.CloseMs > 0) {
				t.Errorf("durable %v: disk %d → %d (%d), close %v ms, reopen %v", durable, rf.DiskBytesBefore, rf.DiskBytesAfter, r.DiskBytes, r.CloseMs, r.ReopenMs)
			}
			checkJSONFields(t, r)
			checkFigureFields(t, r, []string{"big_get_ms_before", "big_get_ms_after", "delete_pairs_per_s", "compact_ms",
				"heavy_get_p99_us", "disk_bytes_before", "disk_bytes_after"}, []string{"gc_ms", "recovery_ms"})
		})
	}
}

func syncName(sync bool) string {
	if sync {
		return "/always"
	}
	return "/none"
}

// checkFigureFields checks that r's JSON line has every field of has and
// none of hasNot (the figures of other workloads stay out of a line), and
// that the line reads back into the same figures.
func checkFigureFields(t *testing.T, r Result, has, hasNot []string) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range has {
		if _, ok := m[f]; !ok {
			t.Errorf("JSON line lacks %q: %s", f, b)
		}
	}
	for _, f := range hasNot {
		if _, ok := m[f]; ok {
			t.Errorf("JSON line has %q: %s", f, b)
		}
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Errorf("JSON line does not read back:\n%s\n%s", b, b2)
	}
}
