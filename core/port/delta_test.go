package port_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cidstore/cidstore/core/port"
)

// row returns an entry row of key (0, k) whose slots hold v.
func row(k, v uint64) []byte {
	r := make([]byte, port.EntrySize)
	binary.LittleEndian.PutUint64(r[8:], k)
	binary.LittleEndian.PutUint64(r[16:], v)
	return r
}

func removal(k uint64) []byte {
	r := make([]byte, port.EntrySize)
	port.PutRemovalRow(r, 0, k)
	return r
}

func rows(rs ...[]byte) []byte { return bytes.Join(rs, nil) }

func TestApplyBucketDelta(t *testing.T) {
	base := rows(row(2, 20), row(4, 40), row(6, 60), row(8, 80))
	delta := rows(row(1, 11), removal(4), removal(5), row(6, 61), row(9, 91))
	merged, keys, err := port.ApplyBucketDelta(nil, nil, base, delta)
	if err != nil {
		t.Fatal(err)
	}
	if want := rows(row(1, 11), row(2, 20), row(6, 61), row(8, 80), row(9, 91)); !bytes.Equal(merged, want) {
		t.Fatalf("merged %d rows, not the expected 5", len(merged)/port.EntrySize)
	}
	var want []byte
	for _, k := range []uint64{1, 4, 5, 6, 9} {
		want = append(want, make([]byte, 8)...)
		want = binary.LittleEndian.AppendUint64(want, k)
	}
	if !bytes.Equal(keys, want) {
		t.Fatalf("keys %x, want %x", keys, want)
	}
	if !port.IsRemovalRow(removal(3)) || port.IsRemovalRow(row(3, 1)) {
		t.Fatal("IsRemovalRow")
	}
	for name, c := range map[string][2][]byte{
		"unsorted base":  {rows(row(4, 1), row(2, 1)), nil},
		"repeated delta": {nil, rows(row(4, 1), row(4, 2))},
		"short row":      {nil, make([]byte, port.EntrySize-1)},
	} {
		if _, _, err := port.ApplyBucketDelta(nil, nil, c[0], c[1]); !errors.Is(err, port.ErrBadDelta) {
			t.Errorf("%s: err %v, want ErrBadDelta", name, err)
		}
	}
}

// Rows read from a file may be anything: ApplyBucketDelta either rejects
// them or returns sorted rows made of base and delta rows, without the
// removal rows, with one key per delta row.
func FuzzApplyBucketDelta(f *testing.F) {
	f.Add(rows(row(2, 20), row(4, 40)), rows(row(1, 11), removal(4)))
	f.Add([]byte{1, 2, 3}, []byte{})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		merged, keys, err := port.ApplyBucketDelta(nil, nil, base, delta)
		if err != nil {
			if !errors.Is(err, port.ErrBadDelta) {
				t.Fatalf("error %v does not wrap ErrBadDelta", err)
			}
			return
		}
		if len(keys) != len(delta)/port.EntrySize*port.KeySize {
			t.Fatalf("%d key bytes for %d delta rows", len(keys), len(delta)/port.EntrySize)
		}
		if len(merged) > len(base)+len(delta) || len(merged)%port.EntrySize != 0 {
			t.Fatalf("%d merged bytes from %d and %d", len(merged), len(base), len(delta))
		}
		if _, _, err := port.ApplyBucketDelta(nil, nil, merged, nil); err != nil {
			t.Fatalf("merged rows are not sorted: %v", err)
		}
		for i := 0; i < len(merged); i += port.EntrySize {
			r := merged[i : i+port.EntrySize]
			if port.IsRemovalRow(r) && !bytes.Contains(base, r) {
				t.Fatal("a removal row of the delta in the merged rows")
			}
			if !bytes.Contains(base, r) && !bytes.Contains(delta, r) {
				t.Fatal("a merged row from nowhere")
			}
		}
	})
}
