package cidstore

import (
	"errors"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

func TestEntryRoundTrip(t *testing.T) {
	cases := map[string]entry{
		"one inline": {key: E{1, 2}, s0: E{3, 4}},
		"two inline": {key: E{1, 2}, s0: E{3, 4}, s1: E{3, 5}},
		"spilled":    {key: E{^uint64(0), 9}, s1: spillPointer(77)},
		"max values": {key: E{^uint64(0), ^uint64(0)}, s0: E{^uint64(0) - 1, 0}, s1: E{^uint64(0), ^uint64(0)}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			var b [64]byte
			encodeEntry(b[:], &e)
			got, err := decodeEntry(b[:])
			if err != nil || got != e {
				t.Fatalf("decode = %+v, %v; want %+v", got, err, e)
			}
			// Into a destination that held another entry (a reused array).
			into := entry{key: E{5, 5}, s0: E{6, 6}, s1: E{7, 7}}
			if err := decodeEntryInto(&into, b[:]); err != nil || into != e {
				t.Fatalf("decode into = %+v, %v; want %+v", into, err, e)
			}
			for i := 0; i < 64; i++ {
				c := b
				c[i] ^= 0x10
				if _, err := decodeEntry(c[:]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("flipped byte %d: err %v, want ErrCorrupt", i, err)
				}
			}
		})
	}
}

func TestEntryRejectsImpossible(t *testing.T) {
	cases := map[string]entry{
		"zero key":         {s0: E{1, 1}},
		"slots unordered":  {key: E{1, 1}, s0: E{5, 5}, s1: E{4, 4}},
		"slots equal":      {key: E{1, 1}, s0: E{5, 5}, s1: E{5, 5}},
		"spill without id": {key: E{1, 1}},
		"spill low not 0":  {key: E{1, 1}, s1: E{3, 1}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			var b [64]byte
			encodeEntry(b[:], &e)
			if _, err := decodeEntry(b[:]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := decodeEntry(make([]byte, 63)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short entry: %v", err)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	var b [64]byte
	encodeEntry(b[:], &entry{key: E{1, 2}, s0: E{3, 4}, s1: E{5, 6}})
	f.Add(b[:])
	encodeEntry(b[:], &entry{key: E{7, 8}, s1: spillPointer(9)})
	f.Add(b[:])
	f.Add(make([]byte, 64))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var out [64]byte
		encodeEntry(out[:], &e)
		if string(out[:]) != string(data) {
			t.Fatal("accepted entry does not re-encode to the same bytes")
		}
	})
}

// BenchmarkDecodeBucket decodes the entries of a 200-entry bucket in
// place, as a bucket load does (ns/op over 200 is the cost per entry).
func BenchmarkDecodeBucket(b *testing.B) {
	const n = 200
	buf := make([]byte, n*port.EntrySize)
	for i := range n {
		e := entry{key: E{uint64(i)*7 + 1, uint64(i) * 13}, s0: E{1, uint64(i)}, s1: E{2, uint64(i)}}
		if i%3 == 0 {
			e.s0, e.s1 = E{}, spillPointer(uint64(i+1))
		}
		encodeEntry(buf[i*port.EntrySize:], &e)
	}
	entries := make([]entry, n)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		for k := range entries {
			if err := decodeEntryInto(&entries[k], buf[k*port.EntrySize:(k+1)*port.EntrySize]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
