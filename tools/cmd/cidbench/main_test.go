package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []job
		wantErr string
	}{
		{
			name: "default sync and override",
			args: []string{"--engines", "pebble,cidstore-mem:none,gomap", "--sync", "always"},
			want: []job{
				{"W1", "pebble", "always", 1},
				{"W1", "cidstore-mem", "none", 1},
				{"W1", "gomap", "none", 1}, // keeps nothing: always none
			},
		},
		{
			name: "runs and workloads",
			args: []string{"--engines", "bbolt", "--workload", "W1,W2", "--runs", "2", "--sync", "none"},
			want: []job{
				{"W1", "bbolt", "none", 1}, {"W2", "bbolt", "none", 1},
				{"W1", "bbolt", "none", 2}, {"W2", "bbolt", "none", 2},
			},
		},
		{name: "unknown engine", args: []string{"--engines", "leveldb"}, wantErr: `unknown engine "leveldb"`},
		{name: "bad sync", args: []string{"--engines", "pebble:sometimes"}, wantErr: `sync mode "sometimes"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			got, err := plan(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("plan = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("job %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	_, err := parseFlags([]string{"--keys", "0", "--batch", "0", "--workload", "W9"}, io.Discard)
	for _, want := range []string{"--keys 0", "--batch 0", `unknown workload "W9"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}

func TestSummary(t *testing.T) {
	reopen := 5.0
	rs := []bench.Result{
		{Workload: "W1", Engine: "gomap", Sync: "none", Keys: 10, Pairs: 30, InsertPairsPerS: 1000, LookupP99Us: 1},
		{Workload: "W1", Engine: "pebble", Sync: "always", Keys: 10, Pairs: 30, InsertPairsPerS: 100, LookupP99Us: 50, ReopenMs: &reopen},
		{Workload: "W1", Engine: "bbolt", Sync: "always", Keys: 10, Pairs: 30, InsertPairsPerS: 20, LookupP99Us: 10, ReopenMs: &reopen},
		{Workload: "W1", Engine: "cidstore-mem", Sync: "always", Keys: 10, Pairs: 30, InsertPairsPerS: 400, LookupP99Us: 2, ReopenMs: &reopen},
		{Workload: "W1", Engine: "cidstore-mem", Sync: "always", Keys: 10, Pairs: 30, InsertPairsPerS: 600, LookupP99Us: 4, ReopenMs: &reopen, Run: 2},
	}
	var b bytes.Buffer
	writeSummary(&b, rs)
	out := b.String()
	for _, want := range []string{"5× pebble", "0.3× bbolt", "0.5×"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestChildEnv checks that with several jobs each child's diagnostic files
// are named after its job (so that none replaces another's), that a single
// job keeps the names it was given, and that other variables pass
// through.
func TestChildEnv(t *testing.T) {
	env := []string{"HOME=/root", "CIDBENCH_CPUPROFILE=/tmp/p.prof", "CIDBENCH_MEMTRACE=/tmp/dir.d/mem", "CIDBENCH_COLDTRACE="}
	j := job{workload: "W1", engine: "pebble", sync: "always", run: 2}
	if got := childEnv(env, j, false); !slices.Equal(got, env) {
		t.Errorf("one job: %q, want %q", got, env)
	}
	want := []string{"HOME=/root", "CIDBENCH_CPUPROFILE=/tmp/p.W1-pebble-always-2.prof", "CIDBENCH_MEMTRACE=/tmp/dir.d/mem.W1-pebble-always-2", "CIDBENCH_COLDTRACE="}
	if got := childEnv(env, j, true); !slices.Equal(got, want) {
		t.Errorf("several jobs: %q, want %q", got, want)
	}
}
