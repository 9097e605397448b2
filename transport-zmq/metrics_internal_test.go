package zmqserver

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want float64 // upper bound of its bucket, seconds
	}{
		{0, 1e-6},
		{999 * time.Nanosecond, 1e-6},
		{time.Microsecond, 1.25e-6},
		{3 * time.Microsecond, 3.5e-6},
		{100 * time.Microsecond, 112e-6},
		{time.Millisecond, 1.024e-3},
		{time.Second, 1.048576},
		{time.Hour * 1000, histUpper(histBuckets - 1)},
	}
	for _, tc := range tests {
		i := histIndex(tc.d)
		got := histUpper(i)
		if diff := got - tc.want; diff > 1e-12 || diff < -1e-12 {
			t.Errorf("histUpper(histIndex(%v)) = %g (bucket %d), want %g", tc.d, got, i, tc.want)
		}
		if tc.d < time.Hour && got < tc.d.Seconds() {
			t.Errorf("bucket %d upper bound %g below %v", i, got, tc.d)
		}
	}
}

func TestWindow(t *testing.T) {
	start := time.Unix(1000, 0)
	w := newWindow(start)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	// 100 requests over 2 s: 99 fast, 1 slow, 10 failed, 5 contended, 1000 ops.
	for i := range 100 {
		lat := 50 * time.Microsecond
		if i >= 99 {
			lat = 20 * time.Millisecond
		}
		w.record(at(i*20), lat, i%10 == 0, 10, i%20 == 0)
	}
	st := w.snapshot(at(2000))
	if st.errorRate != 0.1 || st.contentionRatio != 0.05 {
		t.Errorf("error rate %v, contention %v", st.errorRate, st.contentionRatio)
	}
	if st.p99Seconds < 50e-6 || st.p99Seconds > 64e-6 {
		t.Errorf("p99 = %v, want the 50µs bucket (99th of 100 is fast)", st.p99Seconds)
	}
	if st.throughputOps != 500 {
		t.Errorf("throughput = %v, want 1000 ops / 2 s", st.throughputOps)
	}
	// Ten seconds later everything has left the window.
	if st := w.snapshot(at(12500)); st != (windowStats{}) {
		t.Errorf("stale window = %+v", st)
	}
}
