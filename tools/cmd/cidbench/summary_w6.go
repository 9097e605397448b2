package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// writeServiceSummary prints the W6 table (medians over runs): ingest with
// its ratio to redis-everysec, GETs of one client with the p50 ratio to the
// zmq-echo floor, GETs of the concurrent clients, and the BENCH.md targets
// of cidstore-zmq. Nothing is printed without W6 results.
func writeServiceSummary(w io.Writer, results []bench.Result) {
	var groups []*group
	for _, r := range results {
		if r.Workload != "W6" || r.Error != "" || r.ServiceFigures == nil {
			continue
		}
		i := slices.IndexFunc(groups, func(g *group) bool {
			return g.engine == r.Engine && g.sync == r.Sync && g.keys == r.Keys
		})
		if i < 0 {
			groups = append(groups, &group{workload: r.Workload, engine: r.Engine, sync: r.Sync, keys: r.Keys})
			i = len(groups) - 1
		}
		groups[i].runs = append(groups[i].runs, r)
	}
	if len(groups) == 0 {
		return
	}
	ref := func(g *group, engine string, f func(bench.Result) float64) float64 {
		for _, o := range groups {
			if o.engine == engine && o.keys == g.keys {
				return o.median(f)
			}
		}
		return 0
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3g×", a/b)
	}
	p50 := func(r bench.Result) float64 { return r.LookupP50Us }
	fig := func(f func(*bench.ServiceFigures) float64) func(bench.Result) float64 {
		return func(r bench.Result) float64 { return f(r.ServiceFigures) }
	}

	fmt.Fprintf(w, "\nW6 (service): medians over runs. GET = one client; GETn = the concurrent clients; /echo = p50 / zmq-echo p50; /everysec = insert / redis-everysec.\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tsync\tkeys\truns\twindow\tinsert pairs/s\t/everysec\tGET p50 µs\t/echo\tp99 µs\tp999 µs\tavg µs\tops/s\tclients\tGETn p50 µs\tp99 µs\tp999 µs\tops/s\tserver RSS MB\tdisk MB\tmismatches\t")
	for _, g := range groups {
		var mism int64
		for _, r := range g.runs {
			mism += r.Mismatches
		}
		ins, lp50 := g.median(insertRate), g.median(p50)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.0f\t%s\t%.1f\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.1f\t%d\t\n",
			g.engine, g.sync, g.keys, len(g.runs), g.runs[0].Window,
			ins, ratio(ins, ref(g, "redis-everysec", insertRate)),
			lp50, ratio(lp50, ref(g, "zmq-echo", p50)),
			g.median(p99),
			g.median(func(r bench.Result) float64 { return r.LookupP999Us }),
			g.median(func(r bench.Result) float64 { return r.LookupAvgUs }),
			g.median(fig(func(f *bench.ServiceFigures) float64 { return f.LookupOpsPerS })),
			g.runs[0].Clients,
			g.median(fig(func(f *bench.ServiceFigures) float64 { return f.Lookup8P50Us })),
			g.median(fig(func(f *bench.ServiceFigures) float64 { return f.Lookup8P99Us })),
			g.median(fig(func(f *bench.ServiceFigures) float64 { return f.Lookup8P999Us })),
			g.median(fig(func(f *bench.ServiceFigures) float64 { return f.Lookup8OpsPerS })),
			g.median(func(r bench.Result) float64 { return float64(r.PeakRSSBytes) })/1e6,
			g.median(func(r bench.Result) float64 { return float64(r.DiskBytes) })/1e6,
			mism)
	}
	tw.Flush()

	// The targets of BENCH.md for the service, where the run has the figures.
	for _, g := range groups {
		if !strings.HasPrefix(g.engine, "cidstore") {
			continue
		}
		var lines []string
		check := func(ok bool) string {
			if ok {
				return "met"
			}
			return "NOT met"
		}
		lp50, ins := g.median(p50), g.median(insertRate)
		if e := ref(g, "zmq-echo", p50); e > 0 {
			lines = append(lines, fmt.Sprintf("GET p50 %.1fµs = %.2f× zmq-echo %.1fµs (target ≤ 1.25×): %s", lp50, lp50/e, e, check(lp50 <= 1.25*e)))
		}
		p := g.median(p99)
		lines = append(lines, fmt.Sprintf("GET p99 %.1fµs (floor < 100µs): %s", p, check(p < 100)))
		if g.sync == "always" {
			lines = append(lines, fmt.Sprintf("durable ingest %.0f pairs/s (floor ≥ 1M): %s", ins, check(ins >= 1e6)))
		}
		if e := ref(g, "redis-everysec", insertRate); e > 0 {
			lines = append(lines, fmt.Sprintf("ingest = %.2f× redis-everysec %.0f pairs/s (≥ 1× floor, ≥ 5× goal): %s / %s",
				ins/e, e, check(ins >= e), check(ins >= 5*e)))
		}
		fmt.Fprintf(w, "%s (sync %s, %d keys):\n", g.engine, g.sync, g.keys)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}
