package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

// persists reports whether engine keeps data across a close (with sync),
// which W5 needs.
func persists(engine string) bool {
	spec, err := bench.LookupEngine(engine)
	return err == nil && spec.Durable(true)
}

// writeW345Summary prints one table per workload of W3 (heavy keys), W4
// (deletes and reclamation) and W5 (recovery), medians over runs, with the
// figures the common table lacks. Nothing is printed for a workload without
// results.
func writeW345Summary(w io.Writer, results []bench.Result) {
	groupsOf := func(wl string, has func(bench.Result) bool) []*group {
		var groups []*group
		for _, r := range results {
			if r.Workload != wl || r.Error != "" || !has(r) {
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
		return groups
	}
	mism := func(g *group) int64 {
		var n int64
		for _, r := range g.runs {
			n += r.Mismatches
		}
		return n
	}
	mb := func(b int64) float64 { return float64(b) / 1e6 }

	if gs := groupsOf("W3", func(r bench.Result) bool { return r.W3Figures != nil && r.ReclaimFigures != nil }); len(gs) > 0 {
		fmt.Fprintf(w, "\nW3 (heavy keys): medians over runs. big GET = the big key before / after deleting half / after maintenance; light GET = a light key (1000 values).\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "engine\tsync\tlight keys\tbig values\truns\tinsert pairs/s\tbig GET ms\tdeleted ms\tafter ms\tdelete pairs/s\tcompact ms\tlight GET p50 µs\tp99 µs\tp99 after µs\tdisk MB before\tafter\tRSS MB\tmismatches\t")
		for _, g := range gs {
			f := func(x func(bench.Result) float64) float64 { return g.median(x) }
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t\n",
				g.engine, g.sync, g.keys, g.runs[0].BigValues, len(g.runs),
				f(insertRate),
				f(func(r bench.Result) float64 { return r.BigGetMsBefore }),
				f(func(r bench.Result) float64 { return r.BigGetMsDeleted }),
				f(func(r bench.Result) float64 { return r.BigGetMsAfter }),
				f(func(r bench.Result) float64 { return r.DeletePairsPerS }),
				f(func(r bench.Result) float64 { return r.CompactMs }),
				f(func(r bench.Result) float64 { return r.HeavyGetP50Us }),
				f(func(r bench.Result) float64 { return r.HeavyGetP99Us }),
				f(func(r bench.Result) float64 { return r.HeavyGetP99UsAfter }),
				f(func(r bench.Result) float64 { return mb(r.DiskBytesBefore) }),
				f(func(r bench.Result) float64 { return mb(r.DiskBytesAfter) }),
				f(func(r bench.Result) float64 { return mb(r.PeakRSSBytes) }),
				mism(g))
		}
		tw.Flush()
	}

	if gs := groupsOf("W4", func(r bench.Result) bool { return r.W4Figures != nil && r.ReclaimFigures != nil }); len(gs) > 0 {
		fmt.Fprintf(w, "\nW4 (deletes and reclamation): medians over runs. GET before = after the inserts; after = after the deletes and the maintenance (each on a reopened engine).\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "engine\tsync\tkeys\truns\tinsert pairs/s\tdelete pairs/s\tgc ms\tGET p50 before µs\tp99 before µs\tp50 after µs\tp99 after µs\tdisk MB before\tafter\tafter/before\tRSS MB\tmismatches\t")
		for _, g := range gs {
			f := func(x func(bench.Result) float64) float64 { return g.median(x) }
			before := f(func(r bench.Result) float64 { return mb(r.DiskBytesBefore) })
			after := f(func(r bench.Result) float64 { return mb(r.DiskBytesAfter) })
			shrink := "—"
			if before > 0 {
				shrink = fmt.Sprintf("%.2f", after/before)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%s\t%.0f\t%d\t\n",
				g.engine, g.sync, g.keys, len(g.runs),
				f(insertRate),
				f(func(r bench.Result) float64 { return r.DeletePairsPerS }),
				f(func(r bench.Result) float64 { return r.GCMs }),
				f(func(r bench.Result) float64 { return r.LookupP50UsBefore }),
				f(func(r bench.Result) float64 { return r.LookupP99UsBefore }),
				f(func(r bench.Result) float64 { return r.LookupP50Us }),
				f(func(r bench.Result) float64 { return r.LookupP99Us }),
				before, after, shrink,
				f(func(r bench.Result) float64 { return mb(r.PeakRSSBytes) }),
				mism(g))
		}
		tw.Flush()
	}

	if gs := groupsOf("W5", func(r bench.Result) bool { return r.W5Figures != nil }); len(gs) > 0 {
		fmt.Fprintf(w, "\nW5 (recovery): medians over runs. recovery = Open to the first GET answered after kill -9 (target ≤ 2000 ms for 1M WAL records); reopen = after a clean close.\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "engine\tsync\twal records\truns\tfill pairs/s\trecovery ms\trecovered records\tverify GET p99 µs\tclose ms\treopen ms\tdisk MB\tRSS MB\tmismatches\t")
		for _, g := range gs {
			f := func(x func(bench.Result) float64) float64 { return g.median(x) }
			rec := "—"
			if v := g.runs[0].RecoveredRecords; v != nil {
				rec = fmt.Sprint(*v)
			}
			reopen := "—"
			if g.runs[0].ReopenMs != nil {
				reopen = fmt.Sprintf("%.1f", f(func(r bench.Result) float64 { return *r.ReopenMs }))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.1f\t%s\t%.2f\t%.1f\t%s\t%.1f\t%.0f\t%d\t\n",
				g.engine, g.sync, g.runs[0].WALRecords, len(g.runs),
				f(insertRate),
				f(func(r bench.Result) float64 { return r.RecoveryMs }),
				rec,
				f(p99),
				f(func(r bench.Result) float64 { return r.CloseMs }),
				reopen,
				f(func(r bench.Result) float64 { return mb(r.DiskBytes) }),
				f(func(r bench.Result) float64 { return mb(r.PeakRSSBytes) }),
				mism(g))
		}
		tw.Flush()
	}
}
