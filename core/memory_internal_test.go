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

// The fields an insert uses lie in bucket's first 144 bytes, three lines
// wherever a 208-byte object starts, at the offsets warm touches (id, the
// tags header, maint.gen: warm.go); the struct stays in the 208-byte size
// class.
func TestBucketLayout(t *testing.T) {
	var b bucket
	if n := unsafe.Sizeof(b); n > 208 {
		t.Fatalf("bucket is %d bytes, want at most 208", n)
	}
	hot := map[string]uintptr{
		"mu":      unsafe.Offsetof(b.mu) + unsafe.Sizeof(b.mu),
		"entries": unsafe.Offsetof(b.entries) + unsafe.Sizeof(b.entries),
		"tags":    unsafe.Offsetof(b.tags) + unsafe.Sizeof(b.tags),
		"sorted":  unsafe.Offsetof(b.sorted) + unsafe.Sizeof(b.sorted),
		"adds":    unsafe.Offsetof(b.adds) + unsafe.Sizeof(b.adds),
		"loaded":  unsafe.Offsetof(b.loaded) + unsafe.Sizeof(b.loaded),
		"since":   unsafe.Offsetof(b.since) + unsafe.Sizeof(b.since),
		"whole":   unsafe.Offsetof(b.whole) + unsafe.Sizeof(b.whole),
		"maint.pending/gen": unsafe.Offsetof(b.maint) + unsafe.Offsetof(b.maint.gen) +
			unsafe.Sizeof(b.maint.gen),
	}
	for name, end := range hot {
		if end > 144 {
			t.Errorf("bucket.%s ends at byte %d, want at most 144", name, end)
		}
	}
	// Wherever the allocator puts a 208-byte object (16-byte aligned), each
	// cache line the first 144 bytes reach holds a field warm touches.
	touched := []uintptr{unsafe.Offsetof(b.id), unsafe.Offsetof(b.tags) + 8, unsafe.Offsetof(b.maint) + unsafe.Offsetof(b.maint.gen)}
	for start := uintptr(0); start < 64; start += 16 {
		for line := start / 64; line <= (start+143)/64; line++ {
			hit := false
			for _, off := range touched {
				hit = hit || (start+off)/64 == line
			}
			if !hit {
				t.Errorf("object at %d bytes into a line: line %d of its hot bytes is not touched (touches at %v)", start, line, touched)
			}
		}
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
