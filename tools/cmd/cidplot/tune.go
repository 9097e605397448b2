package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// tuneLine is one line of cidtune's output (app/cmd/cidtune).
type tuneLine struct {
	T           float64 `json:"t_s"`
	Writers     int     `json:"writers"`
	BatchSize   int     `json:"batch_size"`
	FlushUs     float64 `json:"flush_interval_us"`
	PairsPerS   float64 `json:"pairs_per_s"`
	DelayP99Us  float64 `json:"delay_p99_us"`
	TotalP99Us  float64 `json:"total_p99_us"`
	Demand      float64 `json:"demand"`
	BreakerOpen bool    `json:"breaker_open"`
	Label       string  `json:"label"`
}

// tuneChart draws cidtune's lines as one PNG of stacked panels against
// time, one line per run label: writers and demand, batch size, flush
// interval, throughput, batching-delay p99.
func tuneChart(out string, files []string) error {
	var labels []string
	runs := map[string][]tuneLine{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		ls, err := readTune(f)
		err = errors.Join(err, f.Close())
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, l := range ls {
			if _, ok := runs[l.Label]; !ok {
				labels = append(labels, l.Label)
			}
			runs[l.Label] = append(runs[l.Label], l)
		}
	}
	if len(labels) == 0 {
		return errors.New("no cidtune lines")
	}
	panels := []struct {
		title, unit string
		log         bool
		f           func(tuneLine) float64
	}{
		{"demand: pairs available when a group was cut (writers: step 4 → 64 → 4)", "pairs", false, func(l tuneLine) float64 { return l.Demand }},
		{"batch size (auto-tuned, bounds 32..1024)", "pairs", false, func(l tuneLine) float64 { return float64(l.BatchSize) }},
		{"flush interval", "µs", false, func(l tuneLine) float64 { return l.FlushUs }},
		{"throughput", "pairs/s", false, func(l tuneLine) float64 { return l.PairsPerS }},
		{"batching delay p99 (breaker limit dashed)", "µs", true, func(l tuneLine) float64 { return max(l.DelayP99Us, 1) }},
	}
	var tmax float64
	for _, ls := range runs {
		tmax = max(tmax, ls[len(ls)-1].T)
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.unit
		if i == len(panels)-1 {
			p.X.Label.Text = "time (s)"
		}
		if pn.log {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		} else {
			p.Y.Min = 0
		}
		p.Legend.Top = true
		p.X.Min, p.X.Max = 0, tmax
		var args []any
		for _, lb := range labels {
			var xys plotter.XYs
			for _, l := range runs[lb] {
				xys = append(xys, plotter.XY{X: l.T, Y: pn.f(l)})
			}
			args = append(args, lb, xys)
		}
		if err := plotutil.AddLines(p, args...); err != nil {
			return err
		}
		if pn.log {
			lim, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 150}, {X: tmax, Y: 150}})
			if err != nil {
				return err
			}
			lim.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			lim.Color = color.Gray{Y: 100}
			p.Add(lim)
		}
		plots[i] = []*plot.Plot{p}
	}
	const w, h = 8 * vg.Inch, 13 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4)}
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return errors.Join(err, f.Close())
}

func readTune(r io.Reader) ([]tuneLine, error) {
	var out []tuneLine
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l tuneLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}
