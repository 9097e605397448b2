package bench

import (
	"testing"
	"time"
)

func TestLatencyQuantile(t *testing.T) {
	tests := []struct {
		name   string
		ns     []int64
		q      float64
		wantNs int64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []int64{7}, 0.99, 7},
		{"median of 1..100", seq(1, 100), 0.5, 50},
		{"p99 of 1..100", seq(1, 100), 0.99, 99},
		{"p999 of 1..1000", seq(1, 1000), 0.999, 999},
		{"p100", seq(1, 100), 1, 100},
		{"overflow", []int64{1, 2, 3, 5e6, 2e6}, 0.8, 2e6},
		{"overflow max", []int64{1, 2, 3, 5e6, 2e6}, 1, 5e6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLatency()
			for _, ns := range tc.ns {
				l.Record(time.Duration(ns))
			}
			if got := l.Quantile(tc.q); got != time.Duration(tc.wantNs) {
				t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.wantNs)
			}
		})
	}
}

func TestLatencyMerge(t *testing.T) {
	a, b := NewLatency(), NewLatency()
	for _, ns := range seq(1, 50) {
		a.Record(time.Duration(ns))
	}
	for _, ns := range seq(51, 100) {
		b.Record(time.Duration(ns))
	}
	b.Record(3 * time.Millisecond)
	a.Merge(b)
	if a.Count() != 101 || a.Max() != 3*time.Millisecond || a.Quantile(0.5) != 51 {
		t.Errorf("merged: n=%d max=%v p50=%v", a.Count(), a.Max(), a.Quantile(0.5))
	}
}

func seq(lo, hi int64) []int64 {
	var s []int64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}
