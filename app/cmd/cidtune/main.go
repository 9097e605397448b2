// Command cidtune drives the write batcher and its auto-tuner in process
// under a load step and records how the knobs settle: the "auto-tuning"
// benchmark of issue 6. Closed-loop writers (each sends one INSERT, waits
// for its acknowledgement, sends the next) go through app.Batcher to a
// durable store (memory backend + WAL, sync always by default); the number
// of writers follows --phases. Every --interval the tool takes the
// batcher's window, steps the controller with it and writes one JSON line:
//
//	{"t_s":5.25,"writers":64,"batch_size":96,"flush_interval_us":88,
//	 "pairs_per_s":91000,"delay_p99_us":...,"delay_avg_us":...,
//	 "total_p99_us":...,"total_avg_us":...,"demand":63.2,"groups":...,
//	 "reason":"adjust","breaker_open":false}
//
// cidplot --tune draws the lines as a chart.
//
//	cidtune --phases 0s:4,5s:64,15s:4 --duration 20s --out tune.jsonl
//
// --fixed keeps the knobs at their initial values (auto-tuning off), and
// --direct bypasses the batcher (writers call the store's Insert
// directly), for comparison in the same conditions.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cidstore/cidstore/app"
	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

// phase is a number of writers from an offset on.
type phase struct {
	at      time.Duration
	writers int
}

// line is one JSON line of output.
type line struct {
	T           float64 `json:"t_s"`
	Writers     int     `json:"writers"`
	BatchSize   int     `json:"batch_size"`
	FlushUs     float64 `json:"flush_interval_us"`
	PairsPerS   float64 `json:"pairs_per_s"`
	DelayP99Us  float64 `json:"delay_p99_us"`
	DelayAvgUs  float64 `json:"delay_avg_us"`
	TotalP99Us  float64 `json:"total_p99_us"`
	TotalAvgUs  float64 `json:"total_avg_us"`
	Demand      float64 `json:"demand"`
	Groups      uint64  `json:"groups"`
	Reason      string  `json:"reason"`
	BreakerOpen bool    `json:"breaker_open"`
	Mode        string  `json:"mode"`
	Variant     string  `json:"variant"` // tuned, fixed or direct
	Label       string  `json:"label"`
}

func main() {
	var (
		phasesF  = flag.String("phases", "0s:4,5s:64,15s:4", "writers from each offset on: OFFSET:WRITERS,...")
		duration = flag.Duration("duration", 20*time.Second, "length of the run")
		interval = flag.Duration("interval", autotune.DefaultInterval, "auto-tuner period (100ms..1s)")
		modeF    = flag.String("mode", "hybrid", "auto-tuner mode: throughput, latency or hybrid")
		syncF    = flag.String("sync", "always", "WAL sync policy: always, interval or none")
		batch    = flag.Int("batch-size", autotune.DefaultBatchSize, "initial batch size")
		fixed    = flag.Bool("fixed", false, "do not tune: keep the initial knobs")
		direct   = flag.Bool("direct", false, "no batcher: writers call the store directly")
		dir      = flag.String("dir", "", "directory for the store files; empty = a temporary one, removed after")
		out      = flag.String("out", "", "JSON lines output; empty = standard output")
		seed     = flag.Uint64("seed", 42, "key generator seed")
		breaker  = flag.Duration("breaker-p99", autotune.DefaultBreakerP99, "circuit breaker's p99 batching-delay limit")
		label    = flag.String("label", "", "name of the run in the output (default: the variant)")
	)
	flag.Parse()
	err := run(config{phases: *phasesF, duration: *duration, interval: *interval, mode: *modeF, sync: *syncF,
		batch: *batch, fixed: *fixed, direct: *direct, dir: *dir, out: *out, seed: *seed,
		breaker: *breaker, label: *label})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cidtune:", err)
		os.Exit(1)
	}
}

type config struct {
	phases             string
	duration, interval time.Duration
	mode, sync         string
	batch              int
	fixed, direct      bool
	dir, out, label    string
	seed               uint64
	breaker            time.Duration
}

func parsePhases(s string) ([]phase, error) {
	var ps []phase
	for _, f := range strings.Split(s, ",") {
		at, n, ok := strings.Cut(strings.TrimSpace(f), ":")
		d, err1 := time.ParseDuration(at)
		w, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || w < 1 || d < 0 {
			return nil, fmt.Errorf("phase %q: want OFFSET:WRITERS like 5s:64", f)
		}
		ps = append(ps, phase{d, w})
	}
	slices.SortFunc(ps, func(a, b phase) int { return int(a.at - b.at) })
	if ps[0].at != 0 {
		return nil, errors.New("the first phase must start at 0s")
	}
	return ps, nil
}

func run(cfg config) (err error) {
	phases, err := parsePhases(cfg.phases)
	if err != nil {
		return err
	}
	mode, err := autotune.ParseMode(cfg.mode)
	if err != nil {
		return err
	}
	syncP, err := cidstore.ParseSyncPolicy(cfg.sync)
	if err != nil {
		return err
	}
	dir := cfg.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cidtune-"); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	}
	var w io.Writer = os.Stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, f.Close()) }()
		w = f
	}

	be, err := memstore.Open(filepath.Join(dir, "cidstore.snapshot"))
	if err != nil {
		return err
	}
	st, err := cidstore.Open(be, cidstore.Options{WALPath: filepath.Join(dir, "cidstore.wal"), Sync: syncP,
		WALSizeBytes: 256 << 20})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()

	ctrl, err := autotune.New(autotune.Options{Mode: mode, Disabled: cfg.fixed, InitialBatchSize: cfg.batch,
		Interval: cfg.interval, BreakerP99: cfg.breaker})
	if err != nil {
		return err
	}
	b := app.NewBatcher(st, ctrl, nil)
	var target interface {
		Insert(context.Context, cidstore.E, cidstore.E) error
	} = b
	variant := "tuned"
	switch {
	case cfg.direct:
		target, variant = st, "direct"
	case cfg.fixed:
		variant = "fixed"
	}
	if cfg.label == "" {
		cfg.label = variant
	}

	// Writers: the pool holds the largest phase; writer i runs while
	// i < active.
	maxW := 0
	for _, p := range phases {
		maxW = max(maxW, p.writers)
	}
	var active atomic.Int64
	active.Store(int64(phases[0].writers))
	var stop atomic.Bool
	var wg sync.WaitGroup
	var directDone atomic.Uint64 // pairs, --direct only (the batcher counts its own)
	var werr error
	var werrOnce sync.Once
	ctx := context.Background()
	for i := range maxW {
		wg.Go(func() {
			rng := splitmix(cfg.seed + uint64(i)*0x1000193)
			for !stop.Load() {
				if int64(i) >= active.Load() {
					time.Sleep(time.Millisecond) // parked writer
					continue
				}
				k := cidstore.E{High: rng.nonZero(), Low: rng.nonZero()}
				v := cidstore.E{High: rng.nonZero(), Low: rng.nonZero()}
				if err := target.Insert(ctx, k, v); err != nil {
					werrOnce.Do(func() { werr = err })
					stop.Store(true)
					return
				}
				directDone.Add(1)
			}
		})
	}

	enc := json.NewEncoder(w)
	start := time.Now()
	tick := time.NewTicker(cfg.interval)
	var lines []line
	next := 1
	b.TakeWindow() // start the first window now
	lastDirect, lastT := uint64(0), start
	for now := range tick.C {
		el := now.Sub(start)
		if el >= cfg.duration || stop.Load() {
			break
		}
		for next < len(phases) && el >= phases[next].at {
			active.Store(int64(phases[next].writers))
			next++
		}
		ws := b.TakeWindow()
		d := ctrl.Step(ws.Sample())
		l := line{
			T: el.Seconds(), Writers: int(active.Load()), BatchSize: d.BatchAfter,
			FlushUs: us(d.FlushAfter), PairsPerS: ws.Sample().Throughput,
			DelayP99Us: us(ws.DelayP99), DelayAvgUs: us(ws.DelayAvg),
			TotalP99Us: us(ws.TotalP99), TotalAvgUs: us(ws.TotalAvg),
			Demand: ws.Demand, Groups: ws.Groups, Reason: string(d.Reason), BreakerOpen: d.BreakerOpen,
			Mode: mode.String(), Variant: variant, Label: cfg.label,
		}
		if cfg.direct {
			n := directDone.Load()
			l.PairsPerS = float64(n-lastDirect) / now.Sub(lastT).Seconds()
			lastDirect = n
		}
		lastT = now
		lines = append(lines, l)
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()
	b.Close()
	if werr != nil {
		return fmt.Errorf("writer: %w", werr)
	}
	summarize(os.Stderr, phases, lines, cfg.duration)
	return nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// summarize prints, per phase, the step at which the batch size settled
// (the first after which it stays within 15 % of the phase's last-half
// median) and the medians of the phase's second half.
func summarize(w io.Writer, phases []phase, lines []line, total time.Duration) {
	for i, p := range phases {
		end := total
		if i+1 < len(phases) {
			end = phases[i+1].at
		}
		var ls []line
		for _, l := range lines {
			t := time.Duration(l.T * float64(time.Second))
			if t >= p.at && t < end {
				ls = append(ls, l)
			}
		}
		if len(ls) < 2 {
			continue
		}
		half := ls[len(ls)/2:]
		med := func(f func(line) float64) float64 {
			v := make([]float64, len(half))
			for j, l := range half {
				v[j] = f(l)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		mb := med(func(l line) float64 { return float64(l.BatchSize) })
		settle := ls[len(ls)-1].T
		for j := len(ls) - 1; j >= 0; j-- {
			if b := float64(ls[j].BatchSize); b < mb*0.85 || b > mb*1.15 {
				break
			}
			settle = ls[j].T
		}
		fmt.Fprintf(w, "phase %v..%v %d writers: batch settles at %.0f after %.2fs; second half medians: flush %.0fµs, %.0f pairs/s, delay p99 %.0fµs, total p99 %.0fµs avg %.0fµs, demand %.1f\n",
			p.at, end, p.writers, mb, settle-p.at.Seconds(),
			med(func(l line) float64 { return l.FlushUs }), med(func(l line) float64 { return l.PairsPerS }),
			med(func(l line) float64 { return l.DelayP99Us }), med(func(l line) float64 { return l.TotalP99Us }),
			med(func(l line) float64 { return l.TotalAvgUs }), med(func(l line) float64 { return l.Demand }))
	}
}

// splitmix is the splitmix64 stream of BENCH.md.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (s *splitmix) nonZero() uint64 {
	for {
		if v := s.next(); v != 0 {
			return v
		}
	}
}
