package bench

import (
	"encoding/json"
	"testing"
)

// TestWorkloads runs each workload end to end on a small data set with
// every engine and checks the answers and the JSON line.
func TestWorkloads(t *testing.T) {
	for _, wl := range WorkloadNames() {
		if wl == "W6" {
			continue // service engines only: TestW6
		}
		for _, spec := range Engines() {
			t.Run(wl+"/"+spec.Name, func(t *testing.T) {
				cfg := Config{
					Workload: wl, Engine: spec, Keys: 2000, Lookups: 2000, Batch: 100,
					Sync: false, Seed: 42, Readers: 2, Dir: t.TempDir(),
					BigValues: 3000, WALRecords: 3000,
				}
				if wl == "W3" {
					cfg.Keys = 10 // light keys of W3ValuesPerKey values each
				}
				if wl == "W5" && !spec.Durable(true) {
					t.Skip("W5 needs an engine that persists (TestW5Volatile)")
				}
				if wl == "W5" {
					// Acknowledged must mean durable: a peer without sync
					// (pebble NoSync) may lose acknowledged batches to kill -9.
					cfg.Sync = true
				}
				r, err := Workloads[wl](cfg)
				if err != nil {
					t.Fatal(err)
				}
				if r.Mismatches != 0 {
					t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
				}
				if r.Pairs == 0 || r.InsertPairsPerS <= 0 || r.Lookups == 0 || r.PeakRSSBytes <= 0 {
					t.Errorf("empty figures: %+v", r)
				}
				if wl == "W1" && r.Lookups != 2200 {
					t.Errorf("lookups = %d, want 2200", r.Lookups)
				}
				checkJSONFields(t, r)
			})
		}
	}
}

// requiredFields are the fields BENCH.md's output format requires, plus
// those cidbench promises.
var requiredFields = []string{
	"workload", "engine", "keys", "pairs", "batch", "sync", "insert_pairs_per_s",
	"lookup_avg_us", "lookup_p50_us", "lookup_p99_us", "lookup_p999_us", "mismatches",
	"disk_bytes", "peak_rss_bytes", "reopen_ms", "cores", "go", "date", "host", "run",
}

func checkJSONFields(t *testing.T, r Result) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range requiredFields {
		if _, ok := m[f]; !ok {
			t.Errorf("JSON line lacks %q: %s", f, b)
		}
	}
}

func TestResultJSONFields(t *testing.T) {
	checkJSONFields(t, newResult(Config{Workload: "W1", Engine: EngineSpec{Name: "gomap"}}))
}
