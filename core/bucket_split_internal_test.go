package cidstore

import (
	"context"
	"fmt"
	"testing"
)

// highHash makes a key's directory hash its high word, so tests choose
// exactly which directory bits a key has.
func highHash(k E) uint64 { return k.High }

func openHashed(t *testing.T, capacity int) *Store {
	t.Helper()
	s, err := Open(newTestBackend(), Options{BucketCapacity: capacity, HashSeed: 1, hash: highHash, MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate at cleanup: %v", err)
		}
		s.Close()
	})
	return s
}

// k returns a key whose hash starts with the given bit string.
func k(bits string, low uint64) E {
	var h uint64
	for i, c := range bits {
		if c == '1' {
			h |= 1 << (63 - i)
		}
	}
	return E{High: h, Low: low + 1000} // never zero
}

func mustInsert(t *testing.T, s *Store, key E, vals ...E) {
	t.Helper()
	for _, v := range vals {
		if err := s.Insert(context.Background(), key, v); err != nil {
			t.Fatalf("Insert(%v, %v): %v", key, v, err)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate after inserting %v: %v", key, err)
	}
}

func mustGet(t *testing.T, s *Store, key E, want ...E) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%v): %v", key, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Get(%v) = %v, want %v", key, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Get(%v) = %v, want %v", key, got, want)
		}
	}
}

func TestSplitDoublesDirectory(t *testing.T) {
	s := openHashed(t, 4)
	v := E{0, 1}
	for i, bits := range []string{"00", "01", "10", "11"} {
		mustInsert(t, s, k(bits, uint64(i)), v)
	}
	if st := s.Stats(); st.GlobalDepth != 0 || st.Buckets != 1 {
		t.Fatalf("before overflow: depth %d, buckets %d", st.GlobalDepth, st.Buckets)
	}
	mustInsert(t, s, k("001", 9), v) // fifth key: split at depth 0 → doubling
	st := s.Stats()
	if st.GlobalDepth != 1 || st.Buckets != 2 || st.Splits != 1 || st.DirectoryDoublings != 1 {
		t.Fatalf("after overflow: %+v", st)
	}
	for i, bits := range []string{"00", "01", "10", "11"} {
		mustGet(t, s, k(bits, uint64(i)), v)
	}
}

func TestSplitWithoutDoubling(t *testing.T) {
	s := openHashed(t, 4)
	v := E{0, 1}
	// Fill the left half (bit 0 = 0) past capacity twice: the directory
	// goes to depth 2 while the right bucket stays at local depth 1.
	for i, bits := range []string{"000", "001", "010", "011", "1"} {
		mustInsert(t, s, k(bits, uint64(i)), v)
	}
	mustInsert(t, s, k("0001", 10), v)
	st := s.Stats()
	if st.GlobalDepth != 2 || st.Buckets != 3 {
		t.Fatalf("want depth 2 and 3 buckets, got %+v", st)
	}
	right := s.dir.Load().lookup(k("1", 0).High)
	if right.depth != 1 {
		t.Fatalf("right bucket local depth %d, want 1", right.depth)
	}
	// Now overflow the right bucket: it splits without doubling.
	for i, bits := range []string{"100", "101", "110", "111"} {
		mustInsert(t, s, k(bits, uint64(20+i)), v)
	}
	st2 := s.Stats()
	if st2.GlobalDepth != 2 || st2.DirectoryDoublings != st.DirectoryDoublings || st2.Buckets != 4 {
		t.Fatalf("right split doubled the directory: %+v", st2)
	}
}

func TestSkewedKeysSplitRepeatedly(t *testing.T) {
	s := openHashed(t, 4)
	v := E{0, 1}
	// Five keys agreeing on their first 5 bits: separating them needs
	// local depth 6, so the directory doubles six times.
	for i, bits := range []string{"000000", "000001", "0000001", "00000001", "000000001"} {
		mustInsert(t, s, k(bits, uint64(i)), v)
	}
	if st := s.Stats(); st.GlobalDepth != 6 {
		t.Fatalf("global depth %d, want 6 (%+v)", st.GlobalDepth, st)
	}
}

func TestUnsplittableBucketGrows(t *testing.T) {
	s := openHashed(t, 4)
	v := E{0, 1}
	// 50 keys with the same hash (same high word): no split can separate
	// them, so the bucket grows past its capacity without doubling.
	for i := uint64(1); i <= 50; i++ {
		mustInsert(t, s, E{High: 42 << 32, Low: i}, v)
	}
	st := s.Stats()
	if st.GlobalDepth != 0 || st.Buckets != 1 || st.Keys != 50 {
		t.Fatalf("want one overflowing bucket, got %+v", st)
	}
	for i := uint64(1); i <= 50; i++ {
		mustGet(t, s, E{High: 42 << 32, Low: i}, v)
	}
	// A key with a different hash still splits the bucket away.
	mustInsert(t, s, k("1", 1), v)
	if st := s.Stats(); st.Buckets != 2 || st.GlobalDepth != 1 {
		t.Fatalf("after a distinct hash: %+v", st)
	}
}

func TestMaxDepthCapsDoubling(t *testing.T) {
	s, err := Open(newTestBackend(), Options{BucketCapacity: 4, HashSeed: 1, hash: highHash, MaxGlobalDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := E{0, 1}
	// Keys that agree on 10 bits would need depth 11: capped at 3, the
	// bucket grows instead.
	for i, bits := range []string{"0000000000", "00000000001", "000000000001", "0000000000001", "00000000000001"} {
		mustInsert(t, s, k(bits, uint64(i)), v)
	}
	if st := s.Stats(); st.GlobalDepth > 3 {
		t.Fatalf("global depth %d beyond the cap 3", st.GlobalDepth)
	}
}

func TestMergeAndHalve(t *testing.T) {
	s := openHashed(t, 4)
	ctx := context.Background()
	v := E{0, 1}
	keys := []E{}
	for i := 0; i < 16; i++ {
		key := k(fmt.Sprintf("%04b", i), uint64(i))
		keys = append(keys, key)
		mustInsert(t, s, key, v)
	}
	before := s.Stats()
	if before.GlobalDepth < 2 {
		t.Fatalf("setup: global depth %d", before.GlobalDepth)
	}
	for _, key := range keys[1:] {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.GlobalDepth != 0 || st.Buckets != 1 || st.Merges == 0 || st.DirectoryHalvings != uint64(before.GlobalDepth) {
		t.Fatalf("after deletes and compaction: %+v (before %+v)", st, before)
	}
	mustGet(t, s, keys[0], v)
	for _, key := range keys[1:] {
		mustGet(t, s, key)
	}
}

func TestMergeKeepsBuddyOfDifferentDepth(t *testing.T) {
	s := openHashed(t, 4)
	ctx := context.Background()
	v := E{0, 1}
	// Left half splits to depth 2 (00, 01); right stays at depth 1.
	for i, bits := range []string{"000", "001", "010", "011", "0001", "1"} {
		mustInsert(t, s, k(bits, uint64(i)), v)
	}
	// Empty "01": it merges with "00", then the merged "0" with "1".
	for i, bits := range []string{"010", "011"} {
		if err := s.Delete(ctx, k(bits, uint64(i+2))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Keys != 4 {
		t.Fatalf("keys %d, want 4", st.Keys)
	}
	for i, bits := range []string{"000", "001", "0001", "1"} {
		idx := []int{0, 1, 4, 5}[i]
		mustGet(t, s, k(bits, uint64(idx)), v)
	}
}
