package bench

import (
	"fmt"
	"slices"
	"testing"
)

// TestEngines is the contract suite every adapter passes: set semantics,
// ascending results, absent keys, and data kept across Close for durable
// engines, in both sync modes.
func TestEngines(t *testing.T) {
	for _, spec := range Engines() {
		for _, sync := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sync=%v", spec.Name, sync), func(t *testing.T) {
				testEngine(t, spec, sync)
			})
		}
	}
}

func testEngine(t *testing.T, spec EngineSpec, sync bool) {
	dir := t.TempDir()
	eng, err := spec.Open(dir, sync)
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := e(1, 1), e(1, 2), e(^uint64(0), ^uint64(0))
	v := e
	batches := [][]Pair{
		{{Key: k1, Value: v(5, 0)}, {Key: k1, Value: v(1, 9)}, {Key: k2, Value: v(3, 3)}, {Key: k1, Value: v(5, 0)}}, // duplicate within a batch
		{{Key: k1, Value: v(1, 9)}, {Key: k1, Value: v(0, 7)}, {Key: k3, Value: v(2, 2)}, {Key: k3, Value: v(1, 1)}}, // duplicate across batches
		{},
		{{Key: k2, Value: v(^uint64(0), 1)}, {Key: k2, Value: v(3, 2)}},
	}
	for i, b := range batches {
		if err := eng.InsertBatch(b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	want := map[E][]E{
		k1:      {v(0, 7), v(1, 9), v(5, 0)},
		k2:      {v(3, 2), v(3, 3), v(^uint64(0), 1)},
		k3:      {v(1, 1), v(2, 2)},
		e(1, 3): nil, // absent, between present keys
		e(0, 1): nil,
		e(1, 0): nil, // prefix-adjacent to k1
	}
	check := func(eng Engine, when string) {
		t.Helper()
		for k, w := range want {
			got, err := eng.Get(k)
			if err != nil {
				t.Fatalf("%s: get %v: %v", when, k, err)
			}
			if !slices.Equal(got, w) {
				t.Errorf("%s: get %v = %v, want %v", when, k, got, w)
			}
		}
	}
	check(eng, "open")
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if !spec.Durable(sync) {
		return
	}
	eng, err = spec.Open(dir, sync)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	check(eng, "reopened")
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		name string
		k    E
		want []byte
	}{
		{"low", e(1, 1), []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}},
		{"carry", e(1, ^uint64(0)), []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"top", e(^uint64(0), ^uint64(0)), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := prefixEnd(tc.k); !slices.Equal(got, tc.want) {
				t.Errorf("prefixEnd(%v) = %x, want %x", tc.k, got, tc.want)
			}
		})
	}
}

func e(hi, lo uint64) E { return E{High: hi, Low: lo} }
