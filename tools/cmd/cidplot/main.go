// Command cidplot draws PNG bar charts from cidbench's JSON lines: insert
// pairs/s per engine and GET p99 per engine, one pair of charts per
// workload and key count, medians over runs.
//
//	cidplot --outdir docs/img bench.jsonl
//
// With no file arguments it reads standard input.
//
// With --tune FILE.png it draws instead cidtune's JSON lines (the
// auto-tuner under a load step, app/cmd/cidtune) as one chart of stacked
// panels against time, one line per run label:
//
//	cidplot --tune docs/img/autotune.png tune.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/cidstore/cidstore/tools/internal/bench"
)

func main() {
	outdir := flag.String("outdir", ".", "directory for the PNG files")
	tune := flag.String("tune", "", "draw cidtune JSON lines into this PNG file instead")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cidplot [--outdir DIR] [FILE.jsonl ...]\n       cidplot --tune OUT.png FILE.jsonl ...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var err error
	if *tune != "" {
		err = tuneChart(*tune, flag.Args())
	} else {
		err = run(*outdir, flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cidplot:", err)
		os.Exit(1)
	}
}

func run(outdir string, files []string) error {
	var results []bench.Result
	if len(files) == 0 {
		rs, err := readLines(os.Stdin)
		if err != nil {
			return err
		}
		results = rs
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		rs, err := readLines(f)
		err = errors.Join(err, f.Close())
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, rs...)
	}
	if len(results) == 0 {
		return errors.New("no results")
	}
	if err := os.MkdirAll(outdir, 0o755); err != nil {
		return err
	}
	for _, s := range seriesOf(results) {
		base := filepath.Join(outdir, fmt.Sprintf("%s-%dk", s.workload, s.keys/1000))
		title := fmt.Sprintf("%s, %d keys", s.workload, s.keys)
		if err := bars(base+"-insert.png", title+": insert pairs/s (higher is better)", "pairs/s", s.labels, s.insert); err != nil {
			return err
		}
		if err := bars(base+"-p99.png", title+": GET p99 µs (lower is better)", "µs", s.labels, s.p99); err != nil {
			return err
		}
		fmt.Println(base + "-insert.png")
		fmt.Println(base + "-p99.png")
	}
	return scaleCharts(outdir, results)
}

// scaleCharts draws the W1 scale curve when the results hold W1 at more
// than one key count: insert pairs/s, GET p99 and peak RSS against keys,
// one line per engine (medians over runs), log-scaled key axis.
func scaleCharts(outdir string, results []bench.Result) error {
	lines := map[string]map[int][]bench.Result{}
	var engines []string
	sizes := map[int]bool{}
	for _, r := range results {
		if r.Workload != "W1" {
			continue
		}
		label := r.Engine
		if r.Sync == "none" && r.Engine != "gomap" {
			label += " (none)"
		}
		if lines[label] == nil {
			lines[label] = map[int][]bench.Result{}
			engines = append(engines, label)
		}
		lines[label][r.Keys] = append(lines[label][r.Keys], r)
		sizes[r.Keys] = true
	}
	if len(sizes) < 2 {
		return nil
	}
	for _, c := range []struct {
		file, title, unit string
		f                 func(bench.Result) float64
	}{
		{"W1-scale-insert.png", "W1 scale: insert pairs/s", "pairs/s", func(r bench.Result) float64 { return r.InsertPairsPerS }},
		{"W1-scale-p99.png", "W1 scale: GET p99 µs", "µs", func(r bench.Result) float64 { return r.LookupP99Us }},
		{"W1-scale-rss.png", "W1 scale: peak RSS MB", "MB", func(r bench.Result) float64 { return float64(r.PeakRSSBytes) / 1e6 }},
	} {
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = "keys"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = c.unit
		p.Y.Min = 0
		p.Legend.Top = true
		var args []any
		for _, e := range engines {
			var xys plotter.XYs
			for _, k := range slices.Sorted(mapsKeys(lines[e])) {
				xys = append(xys, plotter.XY{X: float64(k), Y: median(lines[e][k], c.f)})
			}
			args = append(args, e, xys)
		}
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return err
		}
		file := filepath.Join(outdir, c.file)
		if err := p.Save(6*vg.Inch, 4*vg.Inch, file); err != nil {
			return err
		}
		fmt.Println(file)
	}
	return nil
}

func mapsKeys(m map[int][]bench.Result) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// readLines decodes JSON lines, skipping blank ones and lines of failed runs.
func readLines(r io.Reader) ([]bench.Result, error) {
	var out []bench.Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var res bench.Result
		if err := json.Unmarshal(line, &res); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if res.Error == "" && res.Pairs > 0 {
			out = append(out, res)
		}
	}
	return out, sc.Err()
}

// series is the bars of one chart pair: one workload and key count, one
// bar per engine and sync mode, in order of first appearance.
type series struct {
	workload    string
	keys        int
	labels      []string
	insert, p99 []float64
}

func seriesOf(results []bench.Result) []*series {
	type key struct {
		workload string
		keys     int
	}
	var order []key
	byKey := map[key]map[string][]bench.Result{}
	labels := map[key][]string{}
	for _, r := range results {
		k := key{r.Workload, r.Keys}
		if byKey[k] == nil {
			byKey[k] = map[string][]bench.Result{}
			order = append(order, k)
		}
		label := r.Engine
		if r.Sync == "none" && r.Engine != "gomap" {
			label += " (none)"
		}
		if _, ok := byKey[k][label]; !ok {
			labels[k] = append(labels[k], label)
		}
		byKey[k][label] = append(byKey[k][label], r)
	}
	var out []*series
	for _, k := range order {
		s := &series{workload: k.workload, keys: k.keys, labels: labels[k]}
		for _, l := range s.labels {
			rs := byKey[k][l]
			s.insert = append(s.insert, median(rs, func(r bench.Result) float64 { return r.InsertPairsPerS }))
			s.p99 = append(s.p99, median(rs, func(r bench.Result) float64 { return r.LookupP99Us }))
		}
		out = append(out, s)
	}
	return out
}

func median(rs []bench.Result, f func(bench.Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return bench.Median(v)
}

// bars draws one bar chart with each bar's value printed above it.
func bars(file, title, unit string, labels []string, values []float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Y.Min = 0
	bc, err := plotter.NewBarChart(plotter.Values(values), vg.Points(28))
	if err != nil {
		return err
	}
	p.Add(bc)
	var xy plotter.XYLabels
	for i, v := range values {
		xy.XYs = append(xy.XYs, plotter.XY{X: float64(i), Y: v})
		xy.Labels = append(xy.Labels, humanize(v))
	}
	lab, err := plotter.NewLabels(xy)
	if err != nil {
		return err
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i].XAlign = -0.5 // centred on the bar
		lab.TextStyle[i].YAlign = 0    // above the value
	}
	p.Add(lab)
	p.NominalX(labels...)
	p.Y.Max = slices.Max(values) * 1.12
	width := vg.Length(max(4, 1.1*float64(len(labels)))) * vg.Inch
	return p.Save(width, 4*vg.Inch, file)
}

// humanize prints v with a k or M suffix and three significant digits.
func humanize(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
