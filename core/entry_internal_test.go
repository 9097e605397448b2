package cidstore

import (
	"errors"
	"testing"
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
