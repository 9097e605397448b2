package cidstore_test

import (
	"errors"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
)

func TestParseE(t *testing.T) {
	want := cidstore.E{High: 0x0123456789abcdef, Low: 0xfedcba9876543210}
	cases := []struct {
		name, in string
		want     cidstore.E
		ok       bool
	}{
		{"hex lower", "0123456789abcdeffedcba9876543210", want, true},
		{"hex upper", "0123456789ABCDEFFEDCBA9876543210", want, true},
		{"hex 0x", "0x0123456789abcdeffedcba9876543210", want, true},
		{"uuid", "01234567-89ab-cdef-fedc-ba9876543210", want, true},
		{"max", "ffffffffffffffffffffffffffffffff", cidstore.E{High: ^uint64(0), Low: ^uint64(0)}, true},
		{"one", "00000000000000000000000000000001", cidstore.E{Low: 1}, true},
		{"zero", "00000000000000000000000000000000", cidstore.E{}, false},
		{"zero uuid", "00000000-0000-0000-0000-000000000000", cidstore.E{}, false},
		{"short", "0123", cidstore.E{}, false},
		{"long", "0123456789abcdeffedcba98765432100", cidstore.E{}, false},
		{"bad char", "0123456789abcdeffedcba987654321g", cidstore.E{}, false},
		{"uuid misplaced dash", "0123456-789ab-cdef-fedc-ba9876543210", cidstore.E{}, false},
		{"empty", "", cidstore.E{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cidstore.ParseE(c.in)
			if c.ok {
				if err != nil || got != c.want {
					t.Fatalf("ParseE(%q) = %v, %v; want %v", c.in, got, err, c.want)
				}
				return
			}
			if err == nil || !errors.Is(err, cidstore.ErrInvalid) {
				t.Fatalf("ParseE(%q) = %v, %v; want ErrInvalid", c.in, got, err)
			}
		})
	}
}

func TestEFormats(t *testing.T) {
	e := cidstore.E{High: 0x0123456789abcdef, Low: 0xfedcba9876543210}
	if got := e.String(); got != "0123456789abcdeffedcba9876543210" {
		t.Fatalf("String = %s", got)
	}
	if got := e.UUID(); got != "01234567-89ab-cdef-fedc-ba9876543210" {
		t.Fatalf("UUID = %s", got)
	}
	b := e.Bytes()
	back, err := cidstore.EFromBytes16(b[:])
	if err != nil || back != e {
		t.Fatalf("EFromBytes16 = %v, %v", back, err)
	}
	if _, err := cidstore.EFromBytes16(b[:15]); !errors.Is(err, cidstore.ErrInvalid) {
		t.Fatalf("15 bytes: %v", err)
	}
}

func TestDeriveStable(t *testing.T) {
	// SHA3-256("hello") = 3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392
	got := cidstore.DeriveString("hello")
	want := cidstore.E{High: 0x3338be694f50c5f3, Low: 0x38814986cdf06864}
	if got != want {
		t.Fatalf("DeriveString(hello) = %v, want %v", got, want)
	}
	if cidstore.DeriveString("a") == cidstore.DeriveString("b") {
		t.Fatal("different inputs derived the same E")
	}
}

func TestCompare(t *testing.T) {
	a, b, c := cidstore.E{1, 5}, cidstore.E{1, 6}, cidstore.E{2, 0}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 || b.Compare(c) != -1 {
		t.Fatal("Compare order wrong")
	}
	if !a.Less(b) || b.Less(a) || !b.Less(c) || a.Less(a) {
		t.Fatal("Less order wrong")
	}
}

func FuzzParseE(f *testing.F) {
	for _, s := range []string{"0123456789abcdeffedcba9876543210", "01234567-89ab-cdef-fedc-ba9876543210", "0x0000000000000000000000000000000a", "", "zz", "00000000-0000-0000-0000-000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := cidstore.ParseE(s)
		if err != nil {
			if !errors.Is(err, cidstore.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if e.IsZero() {
			t.Fatal("parsed the zero E")
		}
		for _, form := range []string{e.String(), e.UUID()} {
			back, err := cidstore.ParseE(form)
			if err != nil || back != e {
				t.Fatalf("round trip of %q via %q: %v, %v", s, form, back, err)
			}
		}
	})
}
