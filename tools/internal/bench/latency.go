package bench

import (
	"math"
	"slices"
	"time"
)

// latencyExactNs is the range Latency counts in one bucket per nanosecond;
// slower operations are kept individually. 1 ms covers every in-process
// GET; the overflow list stays short unless the engine stalls.
const latencyExactNs = 1 << 20

// Latency is an exact histogram of operation durations: one counter per
// nanosecond below ~1 ms, each slower duration stored as is. Quantiles are
// therefore exact (nearest rank over every recorded operation). The zero
// value is not ready: use NewLatency. Not safe for concurrent use; give each
// goroutine its own and Merge them.
type Latency struct {
	counts []uint32
	over   []int64
	n      uint64
	sumNs  float64
	maxNs  int64
}

// NewLatency returns an empty histogram (4 MiB).
func NewLatency() *Latency { return &Latency{counts: make([]uint32, latencyExactNs)} }

// Record adds one operation of duration d.
func (l *Latency) Record(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	if ns < latencyExactNs {
		l.counts[ns]++
	} else {
		l.over = append(l.over, ns)
	}
	l.n++
	l.sumNs += float64(ns)
	if ns > l.maxNs {
		l.maxNs = ns
	}
}

// Merge adds every operation of o to l.
func (l *Latency) Merge(o *Latency) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.over = append(l.over, o.over...)
	l.n += o.n
	l.sumNs += o.sumNs
	l.maxNs = max(l.maxNs, o.maxNs)
}

// Count returns the number of recorded operations.
func (l *Latency) Count() uint64 { return l.n }

// Mean returns the average duration, 0 when empty.
func (l *Latency) Mean() time.Duration {
	if l.n == 0 {
		return 0
	}
	return time.Duration(math.Round(l.sumNs / float64(l.n)))
}

// Max returns the longest duration.
func (l *Latency) Max() time.Duration { return time.Duration(l.maxNs) }

// Quantile returns the nearest-rank q-quantile: the smallest recorded
// duration d such that at least ceil(q·n) operations took d or less. 0 when
// empty.
func (l *Latency) Quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.n)))
	rank = min(max(rank, 1), l.n)
	var seen uint64
	for ns, c := range l.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(ns)
		}
	}
	slices.Sort(l.over)
	return time.Duration(l.over[rank-seen-1])
}

// Median returns the median of v (the mean of the middle two for even n),
// 0 when empty.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
