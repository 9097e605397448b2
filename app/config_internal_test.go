package app

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "0", want: 0},
		{in: "1073741824", want: 1 << 30},
		{in: "1GiB", want: 1 << 30},
		{in: "64MiB", want: 64 << 20},
		{in: "512 KiB", want: 512 << 10},
		{in: "2TiB", want: 2 << 40},
		{in: "1GB", want: 1e9},
		{in: "10MB", want: 10e6},
		{in: "100B", want: 100},
		{in: "", err: true},
		{in: "-1", err: true},
		{in: "1.5GiB", err: true},
		{in: "1 GB extra", err: true},
		{in: "9999999TiB", err: true},
		{in: "lots", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBytes(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}
