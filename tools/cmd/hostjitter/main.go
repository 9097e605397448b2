// Command hostjitter measures how often, and for how long, the machine
// takes the CPU away from a running thread: it times a fixed CPU-bound
// loop many times on a locked OS thread, with no allocation, system call
// or lock inside, so that whatever makes one run slower than the median
// is the host (interrupts, the hypervisor, other tenants), not the code.
// A store's operation of the same length sees the same tail.
//
//	go run ./tools/cmd/hostjitter [-runs 40000] [-iters 5000,20000,60000]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	runs := flag.Int("runs", 40000, "timed runs per loop length")
	iters := flag.String("iters", "5000,20000,60000", "loop lengths (iterations of a multiply-add), comma-separated")
	extra := flag.Duration("extra", 50*time.Microsecond, "a run is interrupted when it takes this much longer than the median")
	flag.Parse()
	runtime.LockOSThread()
	for _, f := range strings.Split(*iters, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "hostjitter: bad loop length %q\n", f)
			os.Exit(2)
		}
		lat := make([]time.Duration, *runs)
		for i := range lat {
			t := time.Now()
			spin(n)
			lat[i] = time.Since(t)
		}
		fmt.Println(summarize(n, lat, *extra))
	}
}

var sink uint64

// spin runs n dependent multiply-adds (an LCG step): pure CPU work.
func spin(n int) {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink += x
}

// summary describes the latencies of one loop length.
type summary struct {
	iters            int
	p50, p99, p999   time.Duration
	interrupted      int           // runs longer than p50 + extra
	busy             time.Duration // total time of all runs
	interruptEveryMs float64       // busy time per interrupted run
}

func summarize(iters int, lat []time.Duration, extra time.Duration) summary {
	s := summary{iters: iters}
	if len(lat) == 0 {
		return s
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	q := func(f float64) time.Duration { return sorted[int(f*float64(len(sorted)-1))] }
	s.p50, s.p99, s.p999 = q(0.5), q(0.99), q(0.999)
	for _, l := range lat {
		s.busy += l
		if l > s.p50+extra {
			s.interrupted++
		}
	}
	if s.interrupted > 0 {
		s.interruptEveryMs = float64(s.busy.Microseconds()) / 1000 / float64(s.interrupted)
	}
	return s
}

func (s summary) String() string {
	every := "never"
	if s.interrupted > 0 {
		every = fmt.Sprintf("one per %.1f ms of work", s.interruptEveryMs)
	}
	return fmt.Sprintf("iters %d: p50 %v p99 %v p999 %v; %d runs interrupted (%s)",
		s.iters, s.p50, s.p99, s.p999, s.interrupted, every)
}
