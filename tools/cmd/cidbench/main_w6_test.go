package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

func TestPlanW6(t *testing.T) {
	f, err := parseFlags([]string{"--workload", "W6"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := plan(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []job{
		{"W6", "zmq-echo", "none", 1}, {"W6", "cidstore-zmq", "always", 1},
		{"W6", "redis-everysec", "always", 1}, {"W6", "redis-always", "always", 1},
	}
	if len(got) != len(want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("job %d = %v, want %v", i, got[i], want[i])
		}
	}
	if f.service.Window != 4 || f.service.Clients != 8 || f.service.Lookups != 100_000 {
		t.Errorf("service defaults = %+v", f.service)
	}

	for _, args := range [][]string{
		{"--workload", "W6", "--engines", "pebble"},
		{"--workload", "W1", "--engines", "redis-always"},
	} {
		f, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan(f); err == nil || !strings.Contains(err.Error(), "does not run workload") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	if _, err := parseFlags([]string{"--workload", "W6", "--window", "0"}, io.Discard); err == nil {
		t.Error("--window 0 accepted")
	}
}

func TestServiceSummary(t *testing.T) {
	fig := func(p50 float64) *bench.ServiceFigures {
		return &bench.ServiceFigures{Lookup8P50Us: p50, Clients: 8, Window: 4}
	}
	rs := []bench.Result{
		{Workload: "W6", Engine: "zmq-echo", Sync: "none", Keys: 10, InsertPairsPerS: 4e6, LookupP50Us: 100, ServiceFigures: fig(300)},
		{Workload: "W6", Engine: "redis-everysec", Sync: "everysec", Keys: 10, InsertPairsPerS: 2e5, LookupP50Us: 40, ServiceFigures: fig(200)},
		{Workload: "W6", Engine: "cidstore-zmq", Sync: "always", Keys: 10, InsertPairsPerS: 1.5e6, LookupP50Us: 120, LookupP99Us: 150, ServiceFigures: fig(350)},
		{Workload: "W1", Engine: "gomap", Sync: "none", Keys: 10, InsertPairsPerS: 1e6},
	}
	var b bytes.Buffer
	writeServiceSummary(&b, rs)
	out := b.String()
	for _, want := range []string{"1.20× zmq-echo", "(target ≤ 1.25×): met", "7.50× redis-everysec", "floor ≥ 1M): met", "(floor < 100µs): NOT met", "7.5×"} {
		if !strings.Contains(out, want) {
			t.Errorf("W6 summary lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	writeServiceSummary(&b, rs[3:])
	if b.Len() != 0 {
		t.Errorf("W6 summary without W6 results: %q", b.String())
	}
}
