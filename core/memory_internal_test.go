package cidstore

import (
	"testing"
	"unsafe"
)

// A resident value set is one allocation of a malloc size class: growing
// the struct past it costs 16 bytes on every set (6M sets at 10M W1 keys).
func TestValueSetSize(t *testing.T) {
	if n := unsafe.Sizeof(valueSet{}); n > 160 {
		t.Fatalf("valueSet is %d bytes, want at most 160", n)
	}
	// The flags every write reads share id's line (warm touches id).
	if end := unsafe.Offsetof(valueSet{}.maint) + unsafe.Sizeof(setMaint{}); end > 32 {
		t.Fatalf("valueSet's flags end at byte %d, want at most 32", end)
	}
	// Sets of up to smallInline values live in the struct.
	vs := new(valueSet)
	vals := make([]E, smallInline)
	for i := range vals {
		vals[i] = e(uint64(i + 1))
	}
	vs.init(vals)
	if &vs.vals[0] != &vs.small[0] {
		t.Fatalf("a set of %d values is not held inline", smallInline)
	}
}

// Bucket arrays are sized to what the bucket holds, not to its capacity:
// after splits and appends, every bucket's arrays are within a quarter
// (plus a few entries) of its length, never past the capacity while the
// bucket is within it. Arrays of the capacity (the old split) would be
// ~1.5× the entries on average.
func TestBucketArraysRightSized(t *testing.T) {
	const capacity = 64
	s := openTest(t, newTestBackend(), Options{BucketCapacity: capacity, HashSeed: 3})
	want := cacheModel(t, s, 20000, 2, 7)
	var entries, slots int
	for _, b := range s.buckets {
		if b == nil || b.retired {
			continue
		}
		n, c := len(b.entries), cap(b.entries)
		if c > n+max(n/4, 8) || cap(b.tags) != c {
			t.Fatalf("bucket %d: %d entries in arrays of %d and %d", b.id, n, c, cap(b.tags))
		}
		if n <= capacity && c > capacity {
			t.Fatalf("bucket %d: %d entries in an array of %d, capacity %d", b.id, n, c, capacity)
		}
		entries += n
		slots += c
	}
	if r := float64(slots) / float64(entries); r > 1.3 {
		t.Fatalf("arrays hold %d slots for %d entries (%.2f×)", slots, entries, r)
	}
	checkModel(t, s, want)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
