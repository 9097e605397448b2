package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

// Profiling hooks for one child run, off unless the environment names a
// file: CIDBENCH_CPUPROFILE profiles the whole child, CIDBENCH_HEAPPROFILE
// takes a heap profile right after W1's insert phase (the memory peak),
// CIDBENCH_MEMTRACE writes a line of memory figures every 5 s and at each
// new peak of RSS (sampled every 100 ms): the kernel's view (VmRSS,
// RssAnon, RssFile) beside the Go runtime's (heap in use, free heap not yet
// returned, stacks, runtime metadata, the GC goal, the heap marked live by
// the last collection), so that a peak RSS can be split into Go and non-Go
// (C) memory, and the Go heap into live objects and garbage; with
// CIDBENCH_HEAPPEAK it also writes a heap profile to that file at each new
// peak of the live heap (by 16 MiB or more), so the peak's owners can be
// named. CIDBENCH_COLDTRACE writes one line per cold lookup after the
// reopen (start, latency, Go collections so far; see coldTrace).
// CIDBENCH_EXECTRACE writes a Go execution trace of the whole child (`go
// tool trace -pprof=sched` then names where goroutines waited for a
// processor). When a
// cidbench command runs several children, each gets these paths with its
// job's name before the extension (cmd/cidbench childEnv).

// StartCPUProfile starts a CPU profile if CIDBENCH_CPUPROFILE is set and
// an execution trace if CIDBENCH_EXECTRACE is, and returns the function
// that stops them.
func StartCPUProfile() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, f := range stops {
			f()
		}
	}
	if path := os.Getenv("CIDBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("CIDBENCH_EXECTRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			stop()
			return nil, fmt.Errorf("execution trace: %w", err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			stop()
			return nil, fmt.Errorf("execution trace: %w", err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return stop, nil
}

func writeHeapProfile() error {
	if path := os.Getenv("CIDBENCH_HEAPPROFILE"); path != "" {
		return writeHeapProfileTo(path)
	}
	return nil
}

func writeHeapProfileTo(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// StartMemTrace starts the CIDBENCH_MEMTRACE sampler, if the variable is
// set, and returns the function that stops it.
func StartMemTrace() (stop func(), err error) {
	path := os.Getenv("CIDBENCH_MEMTRACE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("memory trace: %w", err)
	}
	const mib = 1 << 20
	fmt.Fprintln(f, "secs vmrss_mib rss_anon_mib rss_file_mib heap_inuse_mib heap_free_mib stacks_mib runtime_meta_mib next_gc_mib heap_live_mib")
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	done, exited := make(chan struct{}), make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(exited)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var peak int64
		var livePeak uint64
		peakPath := os.Getenv("CIDBENCH_HEAPPEAK")
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(live)
			if l := live[0].Value.Uint64(); peakPath != "" && l > livePeak+16<<20 {
				livePeak = l
				if err := writeHeapProfileTo(peakPath); err != nil {
					fmt.Fprintln(f, "#", err)
				}
			}
			rss := RSSBytes()
			if rss <= peak && n%50 != 0 {
				continue
			}
			peak = max(peak, rss)
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Fprintf(f, "%.1f %d %d %d %d %d %d %d %d %d\n", time.Since(t0).Seconds(),
				rss/mib, procStatusBytes("RssAnon:")/mib, procStatusBytes("RssFile:")/mib,
				m.HeapInuse/mib, (m.HeapIdle-m.HeapReleased)/mib, m.StackSys/mib,
				(m.MSpanSys+m.MCacheSys+m.GCSys+m.OtherSys+m.BuckHashSys)/mib, m.NextGC/mib, live[0].Value.Uint64()/mib)
		}
	}()
	return func() { close(done); <-exited; f.Close() }, nil
}

// coldTrace, when CIDBENCH_COLDTRACE names a file, records each cold
// lookup: its start (µs since the first), its latency (µs), the Go
// collector's cycles completed so far, and the process's minor page faults
// and bytes read from storage (/proc/self/io read_bytes, not the page
// cache) since the previous lookup's note (its own and the other
// threads'), so that slow lookups can be matched with collections, faults
// and disk reads.
type coldTrace struct {
	path    string
	t0      time.Time
	lines   []string
	samples []metrics.Sample
	faults  int64
	read    int64
}

func newColdTrace() *coldTrace {
	path := os.Getenv("CIDBENCH_COLDTRACE")
	if path == "" {
		return nil
	}
	return &coldTrace{path: path, samples: []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}, faults: MinorFaults(), read: readBytes()}
}

func (c *coldTrace) note(start time.Time, el time.Duration) {
	if c == nil {
		return
	}
	if c.t0.IsZero() {
		c.t0 = start
	}
	metrics.Read(c.samples)
	f, rd := MinorFaults(), readBytes()
	c.lines = append(c.lines, fmt.Sprintf("%.1f %.2f %d %d %d", float64(start.Sub(c.t0).Nanoseconds())/1e3,
		float64(el.Nanoseconds())/1e3, c.samples[0].Value.Uint64(), f-c.faults, rd-c.read))
	c.faults, c.read = f, rd
}

func (c *coldTrace) write() error {
	if c == nil {
		return nil
	}
	data := "# start_us latency_us gc_cycles minor_faults read_bytes\n" + strings.Join(c.lines, "\n") + "\n"
	if err := os.WriteFile(c.path, []byte(data), 0o644); err != nil {
		return fmt.Errorf("cold trace: %w", err)
	}
	return nil
}

func readBytes() int64 {
	rd, _ := IOBytes()
	return rd
}
