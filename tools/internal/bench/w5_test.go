package bench

import (
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as W5's filler process.
func TestMain(m *testing.M) {
	Subprocess()
	os.Exit(m.Run())
}

func TestW5Keys(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 1000, 12345} {
		k := w5Keys(n)
		w, err := NewW1(1, k, 100)
		if err != nil {
			t.Fatal(err)
		}
		if w.P() < n {
			t.Errorf("n %d: %d keys give %d pairs", n, k, w.P())
		}
		if k > 1 {
			if w1, _ := NewW1(1, k-1, 100); w1.P() >= n {
				t.Errorf("n %d: %d keys are enough, not %d", n, k-1, k)
			}
		}
	}
	if got := w5WALBytes(DefaultWALRecords, 1000); got < 80<<20 {
		t.Errorf("WAL for 1M records: %d bytes, want at least 80 MiB", got)
	}
}

func TestW5(t *testing.T) {
	for _, tc := range []struct {
		engine string
		sync   bool
	}{{"cidstore-mem", true}, {"cidstore-mem", false}, {"pebble", true}} {
		t.Run(tc.engine+syncName(tc.sync), func(t *testing.T) {
			spec, err := LookupEngine(tc.engine)
			if err != nil {
				t.Fatal(err)
			}
			const n = 5003 // not a multiple of the batch: the last batch is short
			cfg := Config{Workload: "W5", Engine: spec, Keys: 1, WALRecords: n, Batch: 500, Sync: tc.sync, Seed: 42, Dir: t.TempDir()}
			r, err := runW5(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Mismatches != 0 {
				t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
			}
			f := r.W5Figures
			if f.WALRecords != n || r.Pairs != n || r.Keys != w5Keys(n) || f.VerifiedKeys != r.Keys || f.RecoveryMs <= 0 || r.ReopenMs == nil {
				t.Errorf("figures: %+v, keys %d, pairs %d", f, r.Keys, r.Pairs)
			}
			if r.InsertPairsPerS <= 0 || r.Lookups != uint64(r.Keys) {
				t.Errorf("insert %v pairs/s, %d lookups", r.InsertPairsPerS, r.Lookups)
			}
			if spec.OpenDurable != nil {
				if f.RecoveredRecords == nil || *f.RecoveredRecords != n {
					t.Errorf("recovered records %v, want %d", f.RecoveredRecords, n)
				}
				if f.FillEngineStats["checkpoints"] != float64(1) {
					t.Errorf("the filler checkpointed %v times, want once (before the fill)", f.FillEngineStats["checkpoints"])
				}
			} else if f.RecoveredRecords != nil {
				t.Errorf("a peer reports recovered records")
			}
			checkJSONFields(t, r)
			checkFigureFields(t, r, []string{"wal_records", "recovery_ms", "mismatches"}, []string{"gc_ms", "compact_ms"})
		})
	}
}

// TestW5Volatile: an engine that keeps nothing cannot be recovered.
func TestW5Volatile(t *testing.T) {
	spec, err := LookupEngine("gomap")
	if err != nil {
		t.Fatal(err)
	}
	_, err = runW5(Config{Workload: "W5", Engine: spec, WALRecords: 10, Batch: 5, Seed: 1, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "keeps nothing") {
		t.Fatalf("err = %v", err)
	}
}
