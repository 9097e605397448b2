package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
)

// Config is one run of one workload on one engine.
type Config struct {
	Workload string
	Engine   EngineSpec
	Keys     int
	Lookups  int // W1: L; T = L + L/10 GETs are made
	Batch    int
	Sync     bool
	Seed     uint64
	Readers  int    // W2 reader goroutines
	Dir      string // the engine's data directory, empty or absent
	Run      int
	Log      io.Writer      // progress lines; nil discards
	Service  ServiceOptions // W6 (w6.go)

	BigValues  int // W3: values of the big key; 0 means DefaultBigValues
	WALRecords int // W5: pairs logged past the last checkpoint; 0 means DefaultWALRecords
}

// RunFunc runs a workload and returns its result line. An error means the
// run could not complete; wrong answers are counted in Result.Mismatches.
type RunFunc func(cfg Config) (Result, error)

// Workloads maps a workload name to its runner.
var Workloads = map[string]RunFunc{
	"W1": runW1,
	"W2": runW2,
	"W3": runW3,
	"W4": runW4,
	"W5": runW5,
	"W6": runW6,
}

// WorkloadNames returns the known workload names, sorted.
func WorkloadNames() []string {
	var s []string
	for k := range Workloads {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "%s %s %s: "+format+"\n",
			append([]any{time.Now().Format("15:04:05"), c.Workload, c.Engine.Name}, args...)...)
	}
}

// prepare generates the W1 data set and opens the engine.
func prepare(cfg Config) (*W1, Engine, Result, error) {
	r := newResult(cfg)
	t := time.Now()
	w, err := NewW1(cfg.Seed, cfg.Keys, cfg.Batch)
	if err != nil {
		return nil, nil, r, err
	}
	r.Pairs = w.P()
	r.DatasetRSSBytes = DatasetRSSBytes()
	if CacheBytes > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// As the service does (app/store.go memoryLimit), on top of
		// the data set this process holds.
		debug.SetMemoryLimit(r.DatasetRSSBytes + cidstore.GoMemoryLimit(CacheBytes))
	}
	cfg.logf("generated %d keys, %d pairs in %v", w.K(), w.P(), time.Since(t).Round(time.Millisecond))
	eng, err := cfg.Engine.Open(cfg.Dir, cfg.Sync)
	if err != nil {
		return nil, nil, r, fmt.Errorf("open %s: %w", cfg.Engine.Name, err)
	}
	return w, eng, r, nil
}

// insertAll inserts every batch of w in order, calling published after each.
// progressEvery is how often a long ingest says how far it got.
const progressEvery = time.Minute

func insertAll(cfg Config, w *W1, eng Engine, r *Result, published func(done int)) error {
	bl := NewLatency()
	rd0, wr0 := IOBytes()
	wc0, dev0 := WrittenChars(), DeviceWrittenBytes(cfg.Dir)
	cpu0 := CPUSeconds()
	gcs0, gcCPU0 := GCWork()
	t0 := time.Now()
	tp, pairs, pairs0 := t0, 0, 0 // the last progress line (long ingests)
	var buf, batch []Pair
	for b := range w.NumBatches() {
		batch = w.BatchAt(b, buf)
		buf = batch[:0]
		tb := time.Now()
		if err := eng.InsertBatch(batch); err != nil {
			return fmt.Errorf("insert batch %d: %w", b, err)
		}
		end := time.Now()
		bl.Record(end.Sub(tb))
		published(b + 1)
		pairs += len(batch)
		if d := end.Sub(tp); d >= progressEvery {
			cfg.logf("inserted %d of %d pairs in %v: %.0f pairs/s over the last %v",
				pairs, w.P(), end.Sub(t0).Round(time.Second), float64(pairs-pairs0)/d.Seconds(), d.Round(time.Second))
			tp, pairs0 = end, pairs
		}
	}
	el := time.Since(t0)
	r.InsertSeconds = round3(el.Seconds())
	r.InsertPairsPerS = float64(int64(float64(w.P()) / el.Seconds()))
	r.setBatches(bl)
	if rd, wr := IOBytes(); rd0 >= 0 && rd >= 0 {
		r.InsertReadBytes, r.InsertWriteBytes = rd-rd0, wr-wr0
	}
	if wc := WrittenChars(); wc0 >= 0 && wc >= 0 {
		r.InsertWcharBytes = wc - wc0
	}
	if dev := DeviceWrittenBytes(cfg.Dir); dev0 >= 0 && dev >= 0 {
		r.InsertDeviceWriteBytes = dev - dev0
	}
	if cpu := CPUSeconds(); cpu0 >= 0 && cpu >= 0 {
		r.InsertCPUSeconds = round3(cpu - cpu0)
	}
	gcs, gcCPU := GCWork()
	r.InsertGCCycles, r.InsertGCCPUSeconds = gcs-gcs0, round3(gcCPU-gcCPU0)
	cfg.logf("inserted %d pairs in %v: %.0f pairs/s", w.P(), el.Round(time.Millisecond), r.InsertPairsPerS)
	return nil
}

// runW1 is BENCH.md's W1: ingest, then T single-threaded GETs, each timed
// alone and checked.
func runW1(cfg Config) (Result, error) {
	w, eng, r, err := prepare(cfg)
	if err != nil {
		return r, err
	}
	if err := insertAll(cfg, w, eng, &r, func(int) {}); err != nil {
		return r, errors.Join(err, eng.Close())
	}
	if err := writeHeapProfile(); err != nil {
		return r, errors.Join(err, eng.Close())
	}

	t := cfg.Lookups + cfg.Lookups/10
	lat := NewLatency()
	ls := w.Lookups()
	var firstErr error
	t0 := time.Now()
	for range t {
		lk := ls.Next()
		s := time.Now()
		got, err := eng.Get(lk.Key)
		lat.Record(time.Since(s))
		if err != nil || !w.Check(lk.J, got) {
			r.Mismatches++
			if firstErr == nil {
				firstErr = fmt.Errorf("get key %v (index %d): %d values, err %v", lk.Key, lk.J, len(got), err)
			}
		}
	}
	r.setLookups(lat)
	cfg.logf("%d lookups in %v: avg %.2fµs p99 %.2fµs, %d mismatches",
		t, time.Since(t0).Round(time.Millisecond), r.LookupAvgUs, r.LookupP99Us, r.Mismatches)
	if firstErr != nil {
		r.FirstMismatch = firstErr.Error()
	}
	return r, finish(cfg, w, eng, &r)
}

// finish takes the engine's stats, closes it, measures the disk, times a
// reopen with one verified lookup, verifies a sample of keys, and records
// the peak RSS.
func finish(cfg Config, w *W1, eng Engine, r *Result) error {
	if s, ok := eng.(Statser); ok {
		r.EngineStats = s.Stats()
	}
	t := time.Now()
	if err := eng.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	r.CloseMs = ms(time.Since(t))
	var err error
	if cfg.Dir != "" {
		r.DiskBytes, r.DiskApparentBytes, err = DiskBytes(cfg.Dir)
		if err != nil {
			return fmt.Errorf("disk usage: %w", err)
		}
	}
	if cfg.Engine.Durable(cfg.Sync) {
		// Collect the closed store's heap first: the cold lookups then
		// allocate from memory the process has already touched, as in a
		// long-running server, instead of from fresh pages or not
		// depending on where the last GC cycle fell (a fresh page faults
		// at ~13 µs on the measuring VM, and a cold bucket load fills two
		// or three: BENCHMARKS.md, session 10).
		runtime.GC()
		if err := reopen(cfg, w, r); err != nil {
			return err
		}
	}
	r.PeakRSSBytes = PeakRSSBytes()
	return nil
}

// reopenSample is the number of keys verified after the timed reopen.
const reopenSample = 1000

func reopen(cfg Config, w *W1, r *Result) error {
	// The key of the last pair inserted: the one most likely to be found
	// only in a log.
	j := int(w.PairKey[w.P()-1])
	t := time.Now()
	eng, err := cfg.Engine.Open(cfg.Dir, cfg.Sync)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	got, err := eng.Get(w.Keys[j])
	el := ms(time.Since(t))
	r.ReopenMs = &el
	bad := err != nil || !w.Check(j, got)
	rng := NewSplitMix64(cfg.Seed ^ 0xD1B54A32D192ED03)
	cold := NewLatency()
	ct := newColdTrace()
	rd0, _ := IOBytes()
	flt0 := MinorFaults()
	for range reopenSample {
		j := int(rng.Next() % uint64(w.K()))
		s := time.Now()
		got, err := eng.Get(w.Keys[j])
		el := time.Since(s)
		cold.Record(el)
		ct.note(s, el)
		bad = bad || err != nil || !w.Check(j, got)
	}
	if err := ct.write(); err != nil {
		return errors.Join(err, eng.Close())
	}
	r.ColdLookupAvgUs, r.ColdLookupP99Us = us(cold.Mean()), us(cold.Quantile(0.99))
	if flt := MinorFaults(); flt0 >= 0 && flt >= 0 {
		r.ColdMinorFaults = flt - flt0
	}
	if rd, _ := IOBytes(); rd0 >= 0 && rd >= 0 {
		r.ColdReadBytes = rd - rd0 // what the page cache did not have
	}
	if s, ok := eng.(Statser); ok {
		r.ColdEngineStats = s.Stats()
	}
	if bad {
		r.Mismatches++
		if r.FirstMismatch == "" {
			r.FirstMismatch = "data missing or wrong after reopen"
		}
	}
	if err := eng.Close(); err != nil {
		return fmt.Errorf("close after reopen: %w", err)
	}
	cfg.logf("reopened in %.1f ms; disk %d bytes", el, r.DiskBytes)
	return nil
}
