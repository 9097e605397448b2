package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.jsonl")
	lines := `{"workload":"W1","engine":"gomap","keys":1000,"pairs":3000,"sync":"none","insert_pairs_per_s":1000000,"lookup_p99_us":1.1}
{"workload":"W1","engine":"pebble","keys":1000,"pairs":3000,"sync":"always","insert_pairs_per_s":200000,"lookup_p99_us":60}

{"workload":"W1","engine":"bbolt","keys":1000,"sync":"always","error":"killed"}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, []string{in}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "W1-scale-insert.png")); err == nil {
		t.Error("a scale chart from a single key count")
	}
	for _, name := range []string{"W1-1k-insert.png", "W1-1k-p99.png"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s is not a PNG", name)
		}
	}
}

func TestScaleCurve(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.jsonl")
	lines := `{"workload":"W1","engine":"cidstore-mem","keys":1000000,"pairs":3000000,"sync":"always","insert_pairs_per_s":700000,"lookup_p99_us":2,"peak_rss_bytes":1000000000}
{"workload":"W1","engine":"cidstore-mem","keys":10000000,"pairs":30000000,"sync":"always","insert_pairs_per_s":600000,"lookup_p99_us":3,"peak_rss_bytes":9000000000}
{"workload":"W1","engine":"pebble","keys":1000000,"pairs":3000000,"sync":"always","insert_pairs_per_s":300000,"lookup_p99_us":80,"peak_rss_bytes":300000000}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, []string{in}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"W1-scale-insert.png", "W1-scale-p99.png", "W1-scale-rss.png"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s is not a PNG", name)
		}
	}
}

func TestTuneChart(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "tune.jsonl")
	lines := `{"t_s":0.25,"writers":4,"batch_size":32,"flush_interval_us":10,"pairs_per_s":4000,"delay_p99_us":90,"demand":4,"label":"hybrid"}
{"t_s":0.5,"writers":64,"batch_size":96,"flush_interval_us":80,"pairs_per_s":60000,"delay_p99_us":120,"demand":64,"label":"hybrid"}

{"t_s":0.25,"writers":4,"batch_size":256,"flush_interval_us":100,"pairs_per_s":3000,"delay_p99_us":0,"demand":4,"label":"fixed"}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "autotune.png")
	if err := tuneChart(out, []string{in}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "\x89PNG") {
		t.Error("not a PNG")
	}
	if err := tuneChart(out, []string{filepath.Join(dir, "missing.jsonl")}); err == nil {
		t.Error("no error for a missing file")
	}
}
