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
