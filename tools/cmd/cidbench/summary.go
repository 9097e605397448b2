package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// group is the runs of one (workload, engine, sync, keys).
type group struct {
	workload, engine, sync string
	keys                   int
	runs                   []bench.Result
}

func (g *group) median(f func(bench.Result) float64) float64 {
	v := make([]float64, len(g.runs))
	for i, r := range g.runs {
		v[i] = f(r)
	}
	return bench.Median(v)
}

// isPeer reports whether engine is a competitor (not cidstore, not the
// gomap ceiling, not the zmq-echo transport floor of W6).
func isPeer(engine string) bool {
	return engine != "gomap" && engine != "zmq-echo" && !strings.HasPrefix(engine, "cidstore")
}

func insertRate(r bench.Result) float64 { return r.InsertPairsPerS }
func p99(r bench.Result) float64        { return r.LookupP99Us }

// writeSummary prints medians over runs, one row per (workload, engine,
// sync), with ratios: insert rate and GET p99 relative to gomap, and to the
// best peer (highest rate, lowest p99) of the same workload and sync mode.
func writeSummary(w io.Writer, results []bench.Result) {
	var groups []*group
	find := func(r bench.Result) *group {
		for _, g := range groups {
			if g.workload == r.Workload && g.engine == r.Engine && g.sync == r.Sync && g.keys == r.Keys {
				return g
			}
		}
		g := &group{workload: r.Workload, engine: r.Engine, sync: r.Sync, keys: r.Keys}
		groups = append(groups, g)
		return g
	}
	for _, r := range results {
		if r.Error != "" {
			continue
		}
		g := find(r)
		g.runs = append(g.runs, r)
	}
	if len(groups) == 0 {
		return
	}
	// bestPeer returns the best peer figure for g's workload and sync.
	bestPeer := func(g *group, f func(bench.Result) float64, higherBetter bool) (float64, string) {
		best, name := 0.0, ""
		for _, o := range groups {
			if !isPeer(o.engine) || o.workload != g.workload || o.sync != g.sync || o.keys != g.keys {
				continue
			}
			v := o.median(f)
			if name == "" || (higherBetter && v > best) || (!higherBetter && v < best) {
				best, name = v, o.engine
			}
		}
		return best, name
	}
	gomap := func(g *group) *group {
		for _, o := range groups {
			if o.engine == "gomap" && o.workload == g.workload && o.keys == g.keys {
				return o
			}
		}
		return nil
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3g×", a/b)
	}

	fmt.Fprintf(w, "Summary: medians over runs; ratios are this engine / reference (insert: higher is better, p99: lower is better).\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tengine\tsync\tkeys\truns\tinsert pairs/s\t/gomap\t/best peer\tGET avg µs\tp50 µs\tp99 µs\tp99 /gomap\tp99 /best peer\tp999 µs\treopen ms\tdisk MB\tRSS MB\tmismatches\t")
	slices.SortStableFunc(groups, func(a, b *group) int { return strings.Compare(a.workload, b.workload) })
	for _, g := range groups {
		ins, lat := g.median(insertRate), g.median(p99)
		gm := gomap(g)
		var gIns, gLat float64
		if gm != nil {
			gIns, gLat = gm.median(insertRate), gm.median(p99)
		}
		bIns, bInsName := bestPeer(g, insertRate, true)
		bLat, bLatName := bestPeer(g, p99, false)
		reopen := "—"
		if g.runs[0].ReopenMs != nil {
			reopen = fmt.Sprintf("%.1f", g.median(func(r bench.Result) float64 { return *r.ReopenMs }))
		}
		var mism int64
		for _, r := range g.runs {
			mism += r.Mismatches
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%s\t%.1f\t%.0f\t%d\t\n",
			g.workload, g.engine, g.sync, g.keys, len(g.runs),
			ins, ratio(ins, gIns), peerRatio(ins, bIns, bInsName, ratio),
			g.median(func(r bench.Result) float64 { return r.LookupAvgUs }),
			g.median(func(r bench.Result) float64 { return r.LookupP50Us }),
			lat, ratio(lat, gLat), peerRatio(lat, bLat, bLatName, ratio),
			g.median(func(r bench.Result) float64 { return r.LookupP999Us }),
			reopen,
			g.median(func(r bench.Result) float64 { return float64(r.DiskBytes) })/1e6,
			g.median(func(r bench.Result) float64 { return float64(r.PeakRSSBytes) })/1e6,
			mism)
	}
	tw.Flush()
}

func peerRatio(v, best float64, name string, ratio func(a, b float64) string) string {
	if name == "" {
		return "—"
	}
	return ratio(v, best) + " " + name
}
