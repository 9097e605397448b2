package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// TestMain lets the test binary serve as W5's filler, as main does for
// cidbench.
func TestMain(m *testing.M) {
	bench.Subprocess()
	os.Exit(m.Run())
}

// TestChildW345 runs W3, W4 and W5 through the child path, flags included,
// and checks each line's workload fields.
func TestChildW345(t *testing.T) {
	tests := []struct {
		workload string
		args     []string
		fields   []string
	}{
		{"W3", []string{"--keys", "3", "--big-values", "2000"},
			[]string{"big_get_ms_before", "big_get_ms_after", "delete_pairs_per_s", "compact_ms", "heavy_get_p99_us", "disk_bytes_before", "disk_bytes_after"}},
		{"W4", []string{"--keys", "1000", "--lookups", "500"},
			[]string{"disk_bytes_before", "disk_bytes_after", "lookup_p99_us_before", "lookup_p99_us_after", "delete_pairs_per_s", "gc_ms"}},
		{"W5", []string{"--wal-records", "2500"},
			[]string{"wal_records", "recovery_ms", "recovered_records", "mismatches"}},
	}
	for _, tc := range tests {
		t.Run(tc.workload, func(t *testing.T) {
			args := append([]string{"--child", "cidstore-mem", "--child-dir", t.TempDir(), "--workload", tc.workload,
				"--batch", "250", "--quiet"}, tc.args...)
			f, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := runChild(f, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(out.Bytes(), &m); err != nil {
				t.Fatalf("%v: %s", err, out.Bytes())
			}
			if m["mismatches"] != float64(0) {
				t.Errorf("mismatches: %s", out.Bytes())
			}
			for _, k := range tc.fields {
				if _, ok := m[k]; !ok {
					t.Errorf("line lacks %q: %s", k, out.Bytes())
				}
			}
		})
	}
}

func TestParseFlagsW345(t *testing.T) {
	_, err := parseFlags([]string{"--big-values", "0", "--wal-records", "-1"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--big-values 0, --wal-records -1") {
		t.Errorf("err = %v", err)
	}
	f, err := parseFlags([]string{"--workload", "W3,W4,W5", "--engines", "cidstore-mem,pebble"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.bigValues != bench.DefaultBigValues || f.walRecords != bench.DefaultWALRecords {
		t.Errorf("defaults: %d, %d", f.bigValues, f.walRecords)
	}
	jobs, err := plan(f)
	if err != nil || len(jobs) != 6 {
		t.Errorf("plan = %v, %v", jobs, err)
	}
	// W5 skips engines that keep nothing.
	f, err = parseFlags([]string{"--workload", "W4,W5", "--engines", "gomap,bbolt"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err = plan(f)
	want := []job{{"W4", "gomap", "none", 1}, {"W4", "bbolt", "always", 1}, {"W5", "bbolt", "always", 1}}
	if err != nil || !slices.Equal(jobs, want) {
		t.Errorf("plan = %v, %v; want %v", jobs, err, want)
	}
}

func TestW345Summary(t *testing.T) {
	rec := uint64(1000)
	reopen := 3.0
	rs := []bench.Result{
		{Workload: "W3", Engine: "cidstore-mem", Sync: "always", Keys: 10,
			W3Figures: &bench.W3Figures{BigValues: 5000, BigGetMsBefore: 4.25}, ReclaimFigures: &bench.ReclaimFigures{DiskBytesBefore: 2e6, DiskBytesAfter: 1e6}},
		{Workload: "W4", Engine: "pebble", Sync: "always", Keys: 10,
			W4Figures: &bench.W4Figures{GCMs: 12.5}, ReclaimFigures: &bench.ReclaimFigures{DiskBytesBefore: 4e6, DiskBytesAfter: 1e6}},
		{Workload: "W5", Engine: "cidstore-mem", Sync: "always", Keys: 10, ReopenMs: &reopen,
			W5Figures: &bench.W5Figures{WALRecords: 1000, RecoveryMs: 123.4, RecoveredRecords: &rec}},
		{Workload: "W5", Engine: "bbolt", Sync: "always", Keys: 10, Error: "failed"}, // left out
	}
	var b bytes.Buffer
	writeW345Summary(&b, rs)
	out := b.String()
	for _, want := range []string{"W3 (heavy keys)", "4.25", "W4 (deletes", "12.5", "0.25", "W5 (recovery)", "123.4", "1000"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bbolt") {
		t.Errorf("failed run in the summary:\n%s", out)
	}
	b.Reset()
	writeW345Summary(&b, rs[3:])
	if b.Len() != 0 {
		t.Errorf("summary without results: %q", b.String())
	}
}
