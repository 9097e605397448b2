package app

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
)

func TestImportPairs(t *testing.T) {
	const k1, v1 = "0123456789abcdef0123456789abcdef", "00000000-0000-0000-0000-000000000001"
	const v2 = "0X00000000000000000000000000000002"
	for _, tc := range []struct {
		name, in string
		batch    int
		batches  string // sizes of the batches sent
		pairs    int64
		skipped  int64
		err      string
	}{
		{name: "empty", in: "", batch: 2, batches: "[]"},
		{name: "one batch", in: k1 + " " + v1 + "\n", batch: 2, batches: "[1]", pairs: 1},
		{name: "split in batches", in: strings.Repeat(k1+" "+v1+"\n", 5), batch: 2, batches: "[2 2 1]", pairs: 5},
		{name: "exact batches, no final line break", in: k1 + " " + v1 + "\n" + k1 + "\t" + v2, batch: 2, batches: "[2]", pairs: 2},
		{name: "comments and blanks", in: "# header\n\n  \n" + k1 + "   " + v1 + "  \n", batch: 2, batches: "[1]", pairs: 1, skipped: 3},
		{name: "three fields", in: k1 + " " + v1 + " x\n", batch: 2, batches: "[]", err: "line 1: want KEY VALUE, got 3 fields"},
		{name: "bad key after a batch", in: k1 + " " + v1 + "\n" + k1 + " " + v1 + "\nzz " + v1 + "\n", batch: 2,
			batches: "[2]", pairs: 2, err: "line 3: key"},
		{name: "zero value", in: k1 + " 00000000000000000000000000000000\n", batch: 2, batches: "[]", err: "line 1: value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sizes []int
			send := func(p []cidstore.Pair) error { sizes = append(sizes, len(p)); return nil }
			res, err := importPairs(strings.NewReader(tc.in), tc.batch, send, func(importResult) {})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if got := fmt.Sprint(sizes); got != tc.batches && !(got == "[]" && tc.batches == "[]") {
				t.Fatalf("batches %s, want %s", got, tc.batches)
			}
			if res.pairs != tc.pairs || res.skipped != tc.skipped {
				t.Fatalf("pairs %d skipped %d, want %d %d", res.pairs, res.skipped, tc.pairs, tc.skipped)
			}
		})
	}

	t.Run("send error stops", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		send := func([]cidstore.Pair) error { calls++; return boom }
		_, err := importPairs(strings.NewReader(strings.Repeat(k1+" "+v1+"\n", 5)), 2, send, func(importResult) {})
		if !errors.Is(err, boom) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
}
