package zmqserver

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// The METRICS op reports figures over a sliding window kept inside the
// server (independent of Prometheus, which the app scrapes separately):
//
//	latency_p99            99th percentile of request latency (receipt to
//	                       reply), seconds, from a log-linear histogram with
//	                       4 buckets per octave (≤ 19 % over-estimate)
//	throughput_ops         store operations per second: a batch counts its
//	                       entries, every other successful request counts 1
//	error_rate             error replies / requests, 0..1
//	lock_contention_ratio  requests that had to wait behind another request
//	                       before being executed / requests, 0..1 — the
//	                       transport's view of contention; core exposes no
//	                       lock statistics
//
// buffer_occupancy (Stats().WALUsedBytes: WAL bytes not yet checkpointed,
// 0 without a WAL) and flush_duration (Stats().LastCheckpointDuration) come
// from the store. The request queue depth goes to the Observer instead.

const (
	windowSlots  = 10 // one per second: a 10 s window
	histBuckets  = 4 * 36
	histMinNanos = 1000 // bucket 0 holds everything below 1 µs
)

// window is a ring of per-second slots. record and snapshot are safe for
// concurrent use; the mutex is held for a few dozen nanoseconds.
type window struct {
	mu    sync.Mutex
	start time.Time
	slots [windowSlots]slot
}

type slot struct {
	sec       int64 // unix second this slot holds; stale slots are reset
	requests  uint64
	errors    uint64
	ops       uint64
	contended uint64
	hist      [histBuckets]uint32
}

func newWindow(now time.Time) *window { return &window{start: now} }

// histIndex maps a latency to its bucket: 4 buckets per power of two of
// microseconds.
func histIndex(d time.Duration) int {
	ns := d.Nanoseconds()
	if ns < histMinNanos {
		return 0
	}
	us := uint64(ns / 1000) // >= 1
	e := bits.Len64(us) - 1 // 2^e <= us < 2^(e+1)
	var frac uint64
	if e >= 2 {
		frac = (us >> (e - 2)) & 3
	} else {
		frac = (us << (2 - e)) & 3
	}
	i := 1 + 4*e + int(frac)
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histUpper is the upper bound of bucket i in seconds.
func histUpper(i int) float64 {
	if i == 0 {
		return float64(histMinNanos) / 1e9
	}
	e, frac := (i-1)/4, (i-1)%4
	return math.Ldexp(float64(4+frac+1)/4, e) / 1e6
}

func (w *window) slotFor(sec int64) *slot {
	s := &w.slots[uint64(sec)%windowSlots]
	if s.sec != sec {
		*s = slot{sec: sec}
	}
	return s
}

// record adds one request: its latency, whether it failed, the store
// operations it performed and whether it waited behind another request.
func (w *window) record(now time.Time, latency time.Duration, failed bool, ops int, contended bool) {
	i := histIndex(latency)
	w.mu.Lock()
	s := w.slotFor(now.Unix())
	s.requests++
	if failed {
		s.errors++
	}
	s.ops += uint64(ops)
	if contended {
		s.contended++
	}
	s.hist[i]++
	w.mu.Unlock()
}

// windowStats is what snapshot computes.
type windowStats struct {
	p99Seconds      float64
	throughputOps   float64
	errorRate       float64
	contentionRatio float64
}

func (w *window) snapshot(now time.Time) windowStats {
	var total slot
	sec := now.Unix()
	w.mu.Lock()
	for i := range w.slots {
		s := &w.slots[i]
		if s.sec <= sec-windowSlots || s.sec > sec {
			continue
		}
		total.requests += s.requests
		total.errors += s.errors
		total.ops += s.ops
		total.contended += s.contended
		for j, c := range s.hist {
			total.hist[j] += c
		}
	}
	start := w.start
	w.mu.Unlock()

	var st windowStats
	// The window covers the current partial second and the windowSlots-1
	// before it, or less right after start, but at least one second so that
	// the first requests do not extrapolate to absurd rates.
	span := float64(windowSlots-1) + float64(now.Nanosecond())/1e9
	if since := now.Sub(start).Seconds(); since < span {
		span = max(since, 1)
	}
	st.throughputOps = float64(total.ops) / span
	if total.requests == 0 {
		return st
	}
	st.errorRate = float64(total.errors) / float64(total.requests)
	st.contentionRatio = float64(total.contended) / float64(total.requests)
	rank := uint64(math.Ceil(0.99 * float64(total.requests)))
	var cum uint64
	for j, c := range total.hist {
		cum += uint64(c)
		if cum >= rank {
			st.p99Seconds = histUpper(j)
			break
		}
	}
	return st
}
