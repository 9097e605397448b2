package main

import (
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	lat := make([]time.Duration, 1000)
	for i := range lat {
		lat[i] = 20 * time.Microsecond
	}
	lat[10] = 200 * time.Microsecond // two interruptions
	lat[500] = 90 * time.Microsecond
	lat[700] = 60 * time.Microsecond // less than p50 + 50 µs: not one
	s := summarize(7, lat, 50*time.Microsecond)
	if s.p50 != 20*time.Microsecond || s.p99 != 20*time.Microsecond || s.p999 != 90*time.Microsecond {
		t.Errorf("quantiles %v %v %v", s.p50, s.p99, s.p999)
	}
	if s.interrupted != 2 {
		t.Errorf("%d interrupted runs, want 2", s.interrupted)
	}
	busy := 997*20*time.Microsecond + 350*time.Microsecond
	if s.busy != busy || s.interruptEveryMs != float64(busy.Microseconds())/1000/2 {
		t.Errorf("busy %v, one interruption per %.3f ms", s.busy, s.interruptEveryMs)
	}
	if got := s.String(); !strings.Contains(got, "2 runs interrupted (one per 10.1 ms of work)") {
		t.Errorf("summary %q", got)
	}
	if got := summarize(1, nil, time.Microsecond).String(); !strings.Contains(got, "never") {
		t.Errorf("empty summary %q", got)
	}
}

// The loop is CPU work that takes longer with more iterations.
func TestSpinScales(t *testing.T) {
	best := func(n int) time.Duration {
		b := time.Hour
		for range 20 {
			t0 := time.Now()
			spin(n)
			b = min(b, time.Since(t0))
		}
		return b
	}
	if short, long := best(1000), best(100000); long < 10*short {
		t.Errorf("100 000 iterations took %v, 1 000 took %v", long, short)
	}
}
