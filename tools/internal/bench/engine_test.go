package bench

import (
	"fmt"
	"slices"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
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

// TestEngineDeletes is the deletion contract of the engines that implement
// Deleter (every engine today): whole keys and single values, absent ones
// as no-ops, a key emptied value by value reads as absent, deletes made
// durable by Close, and the same answers after Maintain.
func TestEngineDeletes(t *testing.T) {
	for _, spec := range Engines() {
		for _, sync := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sync=%v", spec.Name, sync), func(t *testing.T) {
				testEngineDeletes(t, spec, sync)
			})
		}
	}
}

func testEngineDeletes(t *testing.T, spec EngineSpec, sync bool) {
	dir := t.TempDir()
	eng, err := spec.Open(dir, sync)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if eng != nil {
			eng.Close()
		}
	}()
	if _, ok := eng.(Deleter); !ok {
		t.Skip("no Deleter")
	}
	k1, k2, k3, k4 := e(1, 1), e(1, 2), e(^uint64(0), ^uint64(0)), e(1, 0)
	v := e
	err = eng.InsertBatch([]Pair{
		{Key: k1, Value: v(1, 1)}, {Key: k1, Value: v(2, 2)}, {Key: k1, Value: v(3, 3)},
		{Key: k2, Value: v(5, 5)}, {Key: k2, Value: v(6, 6)},
		{Key: k3, Value: v(7, 7)}, {Key: k3, Value: v(8, 8)},
		{Key: k4, Value: v(9, 9)},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = eng.(Deleter).DeleteBatch([]Deletion{
		{Key: k1, Value: v(2, 2)}, // one value
		{Key: k1, Value: v(4, 4)}, // absent value
		{Key: k2},                 // whole key, prefix-adjacent to k1
		{Key: k3},                 // whole key with no prefix upper bound
		{Key: e(5, 5)},            // absent key
		{Key: k4, Value: v(9, 9)}, // its only value
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[E][]E{k1: {v(1, 1), v(3, 3)}, k2: nil, k3: nil, k4: nil}
	check := func(when string) {
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
	check("deleted")
	// A deleted key can come back.
	if err := eng.InsertBatch([]Pair{{Key: k2, Value: v(6, 7)}}); err != nil {
		t.Fatal(err)
	}
	want[k2] = []E{v(6, 7)}
	check("reinserted")
	if m, ok := eng.(Maintainer); ok {
		if err := m.Maintain(); err != nil {
			t.Fatalf("maintain: %v", err)
		}
		check("maintained")
	}
	if !spec.Durable(sync) {
		return
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	eng = nil
	if eng, err = spec.Open(dir, sync); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	check("reopened")
	err, eng = eng.Close(), nil
	if err != nil {
		t.Fatal(err)
	}
}

// --wal-bytes (WALBytes) sizes the WAL of the durable cidstore engines.
func TestWALBytes(t *testing.T) {
	defer func(w int64) { WALBytes = w }(WALBytes)
	for _, name := range []string{"cidstore-hdf5", "cidstore-mem"} {
		spec, err := LookupEngine(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int64{0, 3 << 20} {
			WALBytes = size
			eng, err := spec.Open(t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			got := eng.(Statser).Stats()["wal_capacity_bytes"]
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			want := size
			if want == 0 {
				want = cidstore.DefaultWALSizeBytes
			}
			if c, ok := got.(int64); !ok || c > want || c < want-want/64 {
				t.Errorf("%s, --wal-bytes %d: WAL capacity %v, want about %d", name, size, got, want)
			}
		}
	}
}
