package autotune_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/autotune"
)

// plant simulates the batcher under a closed load: demand pairs are
// available per group, a group's store call takes service. The batching
// delay (the controlled latency) is a function of the batch size and the
// flush interval:
//
//   - batch size below the demand: pairs left over queue behind the cap
//     for a whole store call, so p99 = service;
//   - otherwise pairs linger for most of the flush interval, plus a fill
//     cost that grows with the cap: p99 = base + 0.9 × flush + 50 ns × batch.
type plant struct {
	demand  float64
	service time.Duration
	base    time.Duration
}

func (p plant) sample(b int, f time.Duration) autotune.Sample {
	var p99 time.Duration
	if float64(b) < p.demand {
		p99 = p.service
	} else {
		p99 = p.base + f*9/10 + time.Duration(b)*50
	}
	groups := min(float64(b), p.demand)
	return autotune.Sample{
		Pairs:      1000,
		Throughput: groups / (p.service + f).Seconds(),
		P99:        p99,
		Avg:        p99 / 2,
		QueueDepth: p.demand,
	}
}

// optimum is the plant's operating point for a mode: the batch size at
// headroom × demand (within bounds) and the flush interval whose delay
// meets the setpoint.
func (p plant) optimum(headroom float64, target time.Duration) (int, time.Duration) {
	b := int(math.Round(min(max(headroom*p.demand, autotune.MinBatchSize), autotune.MaxBatchSize)))
	f := time.Duration(float64(target-p.base-time.Duration(b)*50) / 0.9)
	return b, f
}

// sim is a controller on a simulated clock that advances one Interval per
// step.
type sim struct {
	t   *testing.T
	c   *autotune.Controller
	now time.Time
	p   plant
	log []autotune.Decision
}

func newSim(t *testing.T, p plant, opts autotune.Options) *sim {
	t.Helper()
	s := &sim{t: t, p: p, now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	opts.Now = func() time.Time { return s.now }
	c, err := autotune.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	return s
}

func (s *sim) step() autotune.Decision {
	return s.stepWith(s.p.sample(s.c.BatchSize(), s.c.FlushInterval()))
}

func (s *sim) stepWith(smp autotune.Sample) autotune.Decision {
	s.now = s.now.Add(s.c.Options().Interval)
	d := s.c.Step(smp)
	s.log = append(s.log, d)
	s.checkBounds(d)
	return d
}

func (s *sim) checkBounds(d autotune.Decision) {
	s.t.Helper()
	o := s.c.Options()
	if b := s.c.BatchSize(); b < autotune.MinBatchSize || b > autotune.MaxBatchSize {
		s.t.Fatalf("batch size %d out of [32, 1024] after %+v", b, d)
	}
	if f := s.c.FlushInterval(); f < o.MinFlushInterval || f > o.MaxFlushInterval {
		s.t.Fatalf("flush interval %v out of [%v, %v] after %+v", f, o.MinFlushInterval, o.MaxFlushInterval, d)
	}
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// converge steps until both knobs have settled within 15 % of the
// optimum: the settling step is the first after which they stay there for
// 10 steps. It fails when that takes more than maxSteps, and returns the
// settling step.
func (s *sim) converge(maxSteps int, b int, f time.Duration) int {
	s.t.Helper()
	in := func() bool {
		return within(float64(s.c.BatchSize()), float64(b), 0.15) && within(float64(s.c.FlushInterval()), float64(f), 0.15)
	}
	settled, run := 0, 0
	for i := 1; i <= maxSteps+10; i++ {
		s.step()
		if !in() {
			run = 0
			continue
		}
		if run == 0 {
			settled = i
		}
		if run++; run > 10 {
			if settled > maxSteps {
				break
			}
			return settled
		}
	}
	s.t.Fatalf("not settled within 15%% of the optimum (%d, %v) in %d steps: %d, %v", b, f, maxSteps, s.c.BatchSize(), s.c.FlushInterval())
	return 0
}

var refPlant = plant{demand: 64, service: 500 * time.Microsecond, base: 10 * time.Microsecond}

func TestConvergence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     autotune.Mode
		demand   float64
		headroom float64
		target   time.Duration
	}{
		{"hybrid/64", autotune.Hybrid, 64, 1.5, 100 * time.Microsecond},
		{"hybrid/400", autotune.Hybrid, 400, 1.5, 100 * time.Microsecond},
		{"throughput/64", autotune.Throughput, 64, 2, 125 * time.Microsecond},
		{"throughput/300", autotune.Throughput, 300, 2, 125 * time.Microsecond},
		{"latency/64", autotune.Latency, 64, 1.25, 50 * time.Microsecond},
		{"latency/8", autotune.Latency, 8, 1.25, 50 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := refPlant
			p.demand = tc.demand
			s := newSim(t, p, autotune.Options{Mode: tc.mode})
			b, f := p.optimum(tc.headroom, tc.target)
			n := s.converge(30, b, f)
			t.Logf("optimum (%d, %v) reached in %d steps", b, f, n)
		})
	}
}

// A load step: the controller follows the demand from 4 to 64 and back.
func TestConvergenceLoadStep(t *testing.T) {
	p := refPlant
	p.demand = 4
	s := newSim(t, p, autotune.Options{})
	b, f := p.optimum(1.5, 100*time.Microsecond)
	s.converge(30, b, f)
	for _, demand := range []float64{64, 500, 4} {
		s.p.demand = demand
		b, f := s.p.optimum(1.5, 100*time.Microsecond)
		n := s.converge(30, b, f)
		t.Logf("demand %v: optimum (%d, %v) in %d steps", demand, b, f, n)
	}
	if s.c.BreakerOpen() {
		t.Fatal("breaker opened during the load steps")
	}
}

func TestBounds(t *testing.T) {
	for _, mode := range []autotune.Mode{autotune.Hybrid, autotune.Throughput, autotune.Latency} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newSim(t, refPlant, autotune.Options{Mode: mode})
			rng := rand.New(rand.NewPCG(42, uint64(mode)))
			// Far outside what the bounds allow, in both directions, and
			// random garbage; checkBounds runs after every step.
			o := s.c.Options()
			for range 50 {
				s.stepWith(autotune.Sample{Pairs: 1, QueueDepth: 1e6, P99: time.Nanosecond})
			}
			if s.c.BatchSize() != autotune.MaxBatchSize || s.c.FlushInterval() != o.InitialFlushInterval {
				t.Fatalf("huge demand: %d, %v; want the upper batch bound, the interval held (the cap binds)", s.c.BatchSize(), s.c.FlushInterval())
			}
			if r := s.log[len(s.log)-1].Reason; r != autotune.ReasonBound {
				t.Fatalf("at the bounds the reason is %q, want %q", r, autotune.ReasonBound)
			}
			for range 50 {
				s.stepWith(autotune.Sample{Pairs: 1, QueueDepth: 10, P99: time.Nanosecond})
			}
			if s.c.BatchSize() != autotune.MinBatchSize || s.c.FlushInterval() != o.MaxFlushInterval {
				t.Fatalf("small demand, tiny delay: %d, %v; want the lower batch bound, the upper interval bound", s.c.BatchSize(), s.c.FlushInterval())
			}
			for range 50 {
				s.stepWith(autotune.Sample{Pairs: 1, QueueDepth: 0.01, P99: 140 * time.Microsecond})
			}
			if s.c.BatchSize() != autotune.MinBatchSize || s.c.FlushInterval() != o.MinFlushInterval {
				t.Fatalf("no demand, delay over every target: %d, %v; want the lower bounds", s.c.BatchSize(), s.c.FlushInterval())
			}
			for range 500 {
				s.stepWith(autotune.Sample{
					Pairs:      uint64(rng.IntN(3)),
					QueueDepth: rng.Float64() * 5000,
					P99:        time.Duration(rng.Int64N(int64(time.Millisecond))),
				})
			}
		})
	}
}

func TestHysteresis(t *testing.T) {
	s := newSim(t, refPlant, autotune.Options{})
	b, f := refPlant.optimum(1.5, 100*time.Microsecond)
	s.converge(30, b, f)
	b0, f0 := s.c.BatchSize(), s.c.FlushInterval()

	// The demand doubles: the median filter needs two samples to see it,
	// then hysteresis three violations.
	s.p.demand *= 2
	for i := 1; ; i++ {
		d := s.step()
		if s.c.BatchSize() != b0 {
			if d.Reason != autotune.ReasonAdjust || i < autotune.DefaultHysteresis {
				t.Fatalf("batch moved on step %d (%q), want no change before %d violations", i, d.Reason, autotune.DefaultHysteresis)
			}
			break
		}
		if i > 2+autotune.DefaultHysteresis {
			t.Fatalf("batch still %d after %d steps of doubled demand", b0, i)
		}
	}
	// The moving knob may have moved; the interval must not have, its
	// error is in the dead band (the delay is mostly the interval's).
	if s.c.FlushInterval() != f0 {
		t.Fatalf("flush interval moved %v → %v on a demand change", f0, s.c.FlushInterval())
	}

	// Violations of alternating sign never add up.
	s = newSim(t, refPlant, autotune.Options{})
	s.converge(30, b, f)
	b0, f0 = s.c.BatchSize(), s.c.FlushInterval()
	for i := range 40 {
		demand := 64.0 * 4
		if (i/2)%2 == 1 { // two up, two down: the median follows with a lag
			demand = 64.0 / 4
		}
		s.stepWith(autotune.Sample{Pairs: 1000, QueueDepth: demand, P99: refPlant.sample(b0, f0).P99})
	}
	if s.c.BatchSize() != b0 {
		t.Fatalf("batch moved %d → %d on alternating violations", b0, s.c.BatchSize())
	}
}

func TestSpikeFiltering(t *testing.T) {
	s := newSim(t, refPlant, autotune.Options{})
	b, f := refPlant.optimum(1.5, 100*time.Microsecond)
	s.converge(30, b, f)
	b0, f0 := s.c.BatchSize(), s.c.FlushInterval()
	normal := refPlant.sample(b0, f0)
	for _, spike := range []autotune.Sample{
		{Pairs: 1000, QueueDepth: normal.QueueDepth * 20, P99: normal.P99, Avg: normal.Avg},
		{Pairs: 1000, QueueDepth: normal.QueueDepth / 20, P99: normal.P99 * 30, Avg: normal.Avg * 30},
		{Pairs: 1000, QueueDepth: normal.QueueDepth, P99: time.Microsecond, Avg: time.Microsecond},
	} {
		d := s.stepWith(spike)
		if d.Filtered.P99 != normal.P99 || d.Filtered.QueueDepth != normal.QueueDepth {
			t.Fatalf("filtered %+v, want the normal sample %+v", d.Filtered, normal)
		}
		for range 5 {
			s.step()
		}
		if s.c.BatchSize() != b0 || s.c.FlushInterval() != f0 {
			t.Fatalf("one spike %+v moved the knobs (%d, %v) → (%d, %v)", spike, b0, f0, s.c.BatchSize(), s.c.FlushInterval())
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	p := refPlant
	p.demand = 600
	s := newSim(t, p, autotune.Options{})
	b, f := p.optimum(1.5, 100*time.Microsecond)
	s.converge(30, b, f)
	o := s.c.Options()

	// The disk slows down: p99 400 µs at any setting. The breaker opens
	// after 5 s of it, not before, and puts the safe values back.
	slow := autotune.Sample{Pairs: 1000, QueueDepth: 600, P99: 400 * time.Microsecond, Avg: 200 * time.Microsecond}
	start := s.now
	var opened time.Time
	for opened.IsZero() {
		d := s.stepWith(slow)
		if d.Reason == autotune.ReasonBreakerOpen {
			opened = s.now
		}
		if s.now.Sub(start) > 10*time.Second {
			t.Fatal("breaker still closed after 10 s over the limit")
		}
	}
	// The first slow sample is at start+Interval: that is when the run
	// over the limit starts.
	if over := opened.Sub(start.Add(o.Interval)); over < o.BreakerFor || over > o.BreakerFor+o.Interval {
		t.Fatalf("breaker opened after %v over the limit, want %v", over, o.BreakerFor)
	}
	if s.c.BatchSize() != o.InitialBatchSize || s.c.FlushInterval() != o.InitialFlushInterval || !s.c.BreakerOpen() {
		t.Fatalf("open breaker: (%d, %v, open=%v), want the safe values (%d, %v)",
			s.c.BatchSize(), s.c.FlushInterval(), s.c.BreakerOpen(), o.InitialBatchSize, o.InitialFlushInterval)
	}
	// It stays open while the latency is bad, and through a recovery
	// shorter than RecoverFor.
	for range 40 {
		if d := s.stepWith(slow); d.Reason != autotune.ReasonBreakerHold {
			t.Fatalf("reason %q while slow, want breaker_hold", d.Reason)
		}
	}
	good := autotune.Sample{Pairs: 1000, QueueDepth: 600, P99: 50 * time.Microsecond, Avg: 20 * time.Microsecond}
	for range 10 {
		s.stepWith(good)
	}
	s.stepWith(slow)
	if !s.c.BreakerOpen() || s.c.BatchSize() != o.InitialBatchSize {
		t.Fatal("breaker closed, or knobs moved, before recovering")
	}
	// Recovery: RecoverFor under the limit closes it, then tuning resumes
	// from the safe values and converges again.
	var closed bool
	for range int(o.RecoverFor/o.Interval) + 1 {
		d := s.stepWith(good)
		closed = closed || d.Reason == autotune.ReasonBreakerClose
	}
	if !closed || s.c.BreakerOpen() {
		t.Fatal("breaker did not close after RecoverFor under the limit")
	}
	s.converge(30, b, f)

	// A single spike over the limit never opens it, nor do runs of them
	// shorter than BreakerFor.
	for range 3 {
		for range int(o.BreakerFor/o.Interval) - 1 {
			s.stepWith(slow)
		}
		s.step()
	}
	if s.c.BreakerOpen() {
		t.Fatal("breaker opened on runs shorter than BreakerFor")
	}
}

func TestSetBatchSize(t *testing.T) {
	var reports []autotune.Decision
	s := newSim(t, refPlant, autotune.Options{Report: func(d autotune.Decision) { reports = append(reports, d) }})
	b, f := refPlant.optimum(1.5, 100*time.Microsecond)
	s.converge(30, b, f)

	if err := s.c.SetBatchSize(1025); !errors.Is(err, autotune.ErrOutOfRange) {
		t.Fatalf("SetBatchSize(1025) = %v, want ErrOutOfRange", err)
	}
	if err := s.c.SetBatchSize(31); !errors.Is(err, autotune.ErrOutOfRange) {
		t.Fatalf("SetBatchSize(31) = %v, want ErrOutOfRange", err)
	}
	if err := s.c.SetBatchSize(512); err != nil {
		t.Fatal(err)
	}
	if got := s.c.BatchSize(); got != 512 {
		t.Fatalf("BatchSize after SetBatchSize(512) = %d", got)
	}
	if r := reports[len(reports)-1]; r.Reason != autotune.ReasonManual || r.BatchAfter != 512 {
		t.Fatalf("report %+v, want manual → 512", r)
	}
	// The loop continues from 512: hysteresis first, then moves that start
	// at 512 and walk back to the plant's optimum without a jump.
	prev := 512
	for i := 1; i <= 30; i++ {
		d := s.step()
		if i < autotune.DefaultHysteresis && s.c.BatchSize() != 512 {
			t.Fatalf("step %d after the set: batch %d, want 512 (hysteresis)", i, s.c.BatchSize())
		}
		if d.BatchBefore != prev {
			t.Fatalf("step %d starts from %d, want %d", i, d.BatchBefore, prev)
		}
		prev = d.BatchAfter
	}
	if !within(float64(prev), float64(b), 0.15) {
		t.Fatalf("after the set the loop settled at %d, want about %d", prev, b)
	}
}

func TestDisabled(t *testing.T) {
	p := refPlant
	p.demand = 600
	s := newSim(t, p, autotune.Options{Disabled: true, InitialBatchSize: 128})
	for range 100 {
		if d := s.step(); d.Reason != autotune.ReasonDisabled {
			t.Fatalf("reason %q, want disabled", d.Reason)
		}
		if s.c.BatchSize() != 128 || s.c.FlushInterval() != autotune.DefaultFlushInterval {
			t.Fatalf("disabled controller moved to (%d, %v)", s.c.BatchSize(), s.c.FlushInterval())
		}
	}
	for range 40 { // 10 s over the breaker's limit
		s.stepWith(autotune.Sample{Pairs: 1, P99: time.Second})
	}
	if s.c.BreakerOpen() {
		t.Fatal("disabled controller opened its breaker")
	}
	if err := s.c.SetBatchSize(64); err != nil || s.c.BatchSize() != 64 {
		t.Fatalf("SetBatchSize on a disabled controller: %v, %d", err, s.c.BatchSize())
	}
	s.step()
	if s.c.BatchSize() != 64 {
		t.Fatalf("disabled controller moved the set value to %d", s.c.BatchSize())
	}
}

func TestIdle(t *testing.T) {
	s := newSim(t, refPlant, autotune.Options{})
	for range 50 {
		if d := s.stepWith(autotune.Sample{}); d.Reason != autotune.ReasonIdle {
			t.Fatalf("reason %q, want idle", d.Reason)
		}
	}
	if s.c.BatchSize() != autotune.DefaultBatchSize || s.c.FlushInterval() != autotune.DefaultFlushInterval {
		t.Fatalf("idle periods moved the knobs to (%d, %v)", s.c.BatchSize(), s.c.FlushInterval())
	}
}

func TestDecisionCarriesInputs(t *testing.T) {
	s := newSim(t, refPlant, autotune.Options{})
	smp := refPlant.sample(s.c.BatchSize(), s.c.FlushInterval())
	d := s.stepWith(smp)
	if d.Sample != smp || d.Filtered.QueueDepth != smp.QueueDepth || d.At != s.now || d.Mode != autotune.Hybrid {
		t.Fatalf("decision %+v does not carry its inputs %+v", d, smp)
	}
	if d.BatchBefore != autotune.DefaultBatchSize || d.BatchSetpoint != 1.5*refPlant.demand || d.BatchError >= 0 {
		t.Fatalf("decision %+v: want batch 256 before, setpoint 96, negative error", d)
	}
	if got := s.c.Last(); got != d {
		t.Fatalf("Last() = %+v, want %+v", got, d)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    autotune.Options
		ok   bool
	}{
		{"defaults", autotune.Options{}, true},
		{"batch too small", autotune.Options{InitialBatchSize: 16}, false},
		{"batch too large", autotune.Options{InitialBatchSize: 2048}, false},
		{"interval too short", autotune.Options{Interval: 10 * time.Millisecond}, false},
		{"interval too long", autotune.Options{Interval: 2 * time.Second}, false},
		{"flush outside bounds", autotune.Options{InitialFlushInterval: 5 * time.Millisecond}, false},
		{"inverted flush bounds", autotune.Options{MinFlushInterval: time.Millisecond, MaxFlushInterval: time.Microsecond}, false},
		{"negative gain", autotune.Options{Kp: -1}, false},
		{"unknown mode", autotune.Options{Mode: 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := autotune.New(tc.o)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) = %v, want ok=%v", tc.o, err, tc.ok)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []autotune.Mode{autotune.Hybrid, autotune.Throughput, autotune.Latency} {
		got, err := autotune.ParseMode(m.String())
		if err != nil || got != m {
			t.Fatalf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := autotune.ParseMode("fast"); !errors.Is(err, autotune.ErrOutOfRange) {
		t.Fatalf("ParseMode(fast) = %v, want ErrOutOfRange", err)
	}
}
