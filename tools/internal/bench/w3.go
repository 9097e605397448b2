package bench

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"
)

// W3 sizes: each light key carries W3ValuesPerKey values (BENCH.md: 10 000
// keys × 1 000 values); the big key DefaultBigValues unless
// Config.BigValues says otherwise.
const (
	W3ValuesPerKey   = 1000
	DefaultBigValues = 1_000_000
	// w3MaxPairs bounds a W3 data set: --keys is W1's 1M by default, which
	// W3 would turn into a billion pairs.
	w3MaxPairs = 200_000_000
	// w3BigGets is how many times each big-key GET is timed; the median is
	// reported.
	w3BigGets = 3
)

// W3Figures are the fields of W3 (heavy keys). The result line's lookup_*
// fields are the GETs of the light keys after the inserts, each returning
// W3ValuesPerKey values.
type W3Figures struct {
	LightKeys          int     `json:"light_keys"`
	BigValues          int     `json:"big_values"`
	BigGetMsBefore     float64 `json:"big_get_ms_before"`  // after the inserts, median of w3BigGets
	BigGetMsDeleted    float64 `json:"big_get_ms_deleted"` // after deleting half its values, before maintenance
	BigGetMsAfter      float64 `json:"big_get_ms_after"`   // after maintenance
	CompactMs          float64 `json:"compact_ms"`         // the engine's maintenance (cidstore: Compact + Checkpoint)
	HeavyGetP50Us      float64 `json:"heavy_get_p50_us"`
	HeavyGetP99Us      float64 `json:"heavy_get_p99_us"` // GETs of the light keys after the inserts
	HeavyGetP99UsAfter float64 `json:"heavy_get_p99_us_after"`
}

// W3 is the data set of workload W3: Light keys of W3ValuesPerKey values
// and one big key of Big values. Nothing is stored: every identifier is a
// function of the seed and its position (w3ID), so a GET's exact answer is
// regenerated when it is checked and the 11M pairs of the BENCH.md size cost
// no memory. The pairs are inserted in a fixed pseudo-shuffled order:
// insert position p holds pair number (p·stride) mod P, with stride ≈ 0.618·P
// coprime to P, where pairs 0..Big-1 are the big key's and the rest the
// light keys' in key order; so every batch mixes the big key with many
// light keys.
type W3 struct {
	Seed   uint64
	Light  int
	Big    int
	BigKey E
	P      int
	stride uint64
}

// NewW3 returns the W3 data set for light keys and a big key of big values.
func NewW3(seed uint64, light, big int) (*W3, error) {
	if light < 0 || big < 0 || light+big == 0 {
		return nil, fmt.Errorf("w3: %d light keys and %d big values", light, big)
	}
	p := light*W3ValuesPerKey + big
	if p > w3MaxPairs {
		return nil, fmt.Errorf("w3: %d light keys × %d values + %d is %d pairs, more than %d: W3 is meant for --keys 10000",
			light, W3ValuesPerKey, big, p, w3MaxPairs)
	}
	w := &W3{Seed: seed, Light: light, Big: big, BigKey: w3ID(seed, 2, 0), P: p}
	w.stride = max(1, uint64(math.Round(float64(p)*0.6180339887498949)))
	for gcd(w.stride, uint64(p)) != 1 {
		w.stride++
	}
	return w, nil
}

// w3ID is identifier b of family a: the first E of a splitmix64 stream
// seeded with seed ^ Mix(a<<32 | b). Families: 1 light keys, 2 the big key,
// 3 the big key's values, 4+j the values of light key j.
func w3ID(seed, a, b uint64) E {
	r := NewSplitMix64(seed ^ Mix(a<<32|b))
	return r.E()
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// LightKey returns light key j.
func (w *W3) LightKey(j int) E { return w3ID(w.Seed, 1, uint64(j)) }

// BigValue returns value i of the big key.
func (w *W3) BigValue(i int) E { return w3ID(w.Seed, 3, uint64(i)) }

func (w *W3) lightValue(j, i int) E { return w3ID(w.Seed, 4+uint64(j), uint64(i)) }

// PairAt returns the pair inserted at position p.
func (w *W3) PairAt(p int) Pair {
	q := int(uint64(p) * w.stride % uint64(w.P))
	if q < w.Big {
		return Pair{Key: w.BigKey, Value: w.BigValue(q)}
	}
	j, i := (q-w.Big)/W3ValuesPerKey, (q-w.Big)%W3ValuesPerKey
	return Pair{Key: w.LightKey(j), Value: w.lightValue(j, i)}
}

// LightValues returns the sorted values of light key j.
func (w *W3) LightValues(j int) []E {
	v := make([]E, W3ValuesPerKey)
	for i := range v {
		v[i] = w.lightValue(j, i)
	}
	slices.SortFunc(v, cmpE)
	return v
}

// BigValues returns the sorted values i of the big key for which keep(i).
func (w *W3) BigValues(keep func(i int) bool) []E {
	var v []E
	for i := range w.Big {
		if keep(i) {
			v = append(v, w.BigValue(i))
		}
	}
	slices.SortFunc(v, cmpE)
	return v
}

// w3Deleted says which big-key values W3 deletes: every even one.
func w3Deleted(i int) bool { return i%2 == 0 }

// runW3 is BENCH.md's W3: insert, GET the big key, delete half its values,
// maintain, GET again; with the light keys' GETs before and after.
func runW3(cfg Config) (Result, error) {
	r := newResult(cfg)
	big := cfg.BigValues
	if big == 0 {
		big = DefaultBigValues
	}
	w, err := NewW3(cfg.Seed, cfg.Keys, big)
	if err != nil {
		return r, err
	}
	f := &W3Figures{LightKeys: w.Light, BigValues: w.Big}
	rf := &ReclaimFigures{}
	r.W3Figures, r.ReclaimFigures = f, rf
	r.Pairs = w.P
	r.DatasetRSSBytes = DatasetRSSBytes()
	eng, err := cfg.Engine.Open(cfg.Dir, cfg.Sync)
	if err != nil {
		return r, fmt.Errorf("open %s: %w", cfg.Engine.Name, err)
	}
	err = w.run(cfg, eng, &r)
	r.PeakRSSBytes = PeakRSSBytes()
	return r, err
}

// run does the phases of W3 on eng, which it closes.
func (w *W3) run(cfg Config, eng Engine, r *Result) (err error) {
	f, rf := r.W3Figures, r.ReclaimFigures
	defer func() { err = closeWith(eng, err) }()

	// Insert.
	batch := make([]Pair, cfg.Batch)
	bl := NewLatency()
	t0 := time.Now()
	for lo := 0; lo < w.P; lo += cfg.Batch {
		b := batch[:min(cfg.Batch, w.P-lo)]
		for i := range b {
			b[i] = w.PairAt(lo + i)
		}
		tb := time.Now()
		if err := eng.InsertBatch(b); err != nil {
			return fmt.Errorf("insert batch %d: %w", lo/cfg.Batch, err)
		}
		bl.Record(time.Since(tb))
	}
	el := time.Since(t0)
	r.InsertSeconds = round3(el.Seconds())
	r.InsertPairsPerS = float64(int64(float64(w.P) / el.Seconds()))
	r.setBatches(bl)
	cfg.logf("inserted %d pairs (%d light keys × %d + big key × %d) in %v: %.0f pairs/s",
		w.P, w.Light, W3ValuesPerKey, w.Big, el.Round(time.Millisecond), r.InsertPairsPerS)

	var c cycled
	if eng, c, err = cycle(cfg, eng); err != nil {
		return err
	}
	rf.DiskBytesBefore, rf.ReopenMsBefore = c.allocated, c.reopenMs

	// GETs after the inserts.
	wantAll := w.BigValues(func(int) bool { return true })
	f.BigGetMsBefore = w.timeBigGets(cfg, eng, wantAll, "after insert", r)
	lat := w.lightGets(cfg, eng, r, 1)
	r.setLookups(lat)
	f.HeavyGetP50Us, f.HeavyGetP99Us = r.LookupP50Us, r.LookupP99Us
	cfg.logf("light-key GETs (%d values each): p50 %.1fµs p99 %.1fµs", W3ValuesPerKey, f.HeavyGetP50Us, f.HeavyGetP99Us)
	wantAll = nil

	// Delete every even value of the big key.
	var dels []Deletion
	for i := 0; i < w.Big; i += 2 {
		dels = append(dels, Deletion{Key: w.BigKey, Value: w.BigValue(i)})
	}
	if err := deleteAll(cfg, eng, dels, len(dels), rf); err != nil {
		return err
	}
	dels = nil
	wantHalf := w.BigValues(func(i int) bool { return !w3Deleted(i) })
	f.BigGetMsDeleted = w.timeBigGets(cfg, eng, wantHalf, "after delete", r)

	if f.CompactMs, err = maintain(cfg, eng); err != nil {
		return err
	}
	f.BigGetMsAfter = w.timeBigGets(cfg, eng, wantHalf, "after maintenance", r)
	f.HeavyGetP99UsAfter = us(w.lightGets(cfg, eng, r, 1).Quantile(0.99))
	if s, ok := eng.(Statser); ok {
		r.EngineStats = s.Stats()
	}

	// What is on disk now, and is it all still there after a reopen?
	if eng, c, err = cycle(cfg, eng); err != nil {
		return err
	}
	r.setCycled(cfg, c)
	if r.ReopenMs != nil {
		w.checkBig(eng, wantHalf, "after reopen", r)
		w.lightGets(cfg, eng, r, max(1, w.Light/100))
	}
	return nil
}

// timeBigGets GETs the big key w3BigGets times, checks each answer against
// want and returns the median duration in milliseconds.
func (w *W3) timeBigGets(cfg Config, eng Engine, want []E, when string, r *Result) float64 {
	d := make([]float64, w3BigGets)
	for i := range d {
		runtime.GC() // the previous answer's garbage is not this GET's cost
		t := time.Now()
		got, err := eng.Get(w.BigKey)
		d[i] = ms(time.Since(t))
		w.checkAnswer(got, err, want, when, r)
	}
	m := Median(d)
	cfg.logf("GET of the big key %s (%d values): %.2f ms (median of %d)", when, len(want), m, len(d))
	return m
}

func (w *W3) checkBig(eng Engine, want []E, when string, r *Result) {
	got, err := eng.Get(w.BigKey)
	w.checkAnswer(got, err, want, when, r)
}

func (w *W3) checkAnswer(got []E, err error, want []E, when string, r *Result) {
	if err == nil && slices.Equal(got, want) {
		return
	}
	r.mismatch("big key %s: %d values (want %d), ascending %v, err %v",
		when, len(got), len(want), slices.IsSortedFunc(got, cmpE), err)
}

// lightGets GETs every step-th light key once, each timed alone and
// checked.
func (w *W3) lightGets(cfg Config, eng Engine, r *Result, step int) *Latency {
	lat := NewLatency()
	for j := 0; j < w.Light; j += step {
		k := w.LightKey(j)
		t := time.Now()
		got, err := eng.Get(k)
		lat.Record(time.Since(t))
		if want := w.LightValues(j); err != nil || !slices.Equal(got, want) {
			r.mismatch("light key %d: %d values (want %d), err %v", j, len(got), len(want), err)
		}
	}
	return lat
}
