package autotune

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the batch size (DESIGN.md §8, PROTOCOL.md §2).
const (
	MinBatchSize = 32
	MaxBatchSize = 1024
)

// Defaults of Options.
const (
	DefaultBatchSize        = 256
	DefaultFlushInterval    = 100 * time.Microsecond
	DefaultMinFlushInterval = 10 * time.Microsecond
	DefaultMaxFlushInterval = time.Millisecond
	DefaultInterval         = 250 * time.Millisecond
	DefaultKp               = 0.5
	DefaultKi               = 0.1
	DefaultKd               = 0.3
	DefaultHysteresis       = 3
	DefaultDeadBand         = 0.15 // log2 units: about ±11 %
	DefaultBreakerP99       = 150 * time.Microsecond
	DefaultBreakerFor       = 5 * time.Second
	DefaultRecoverFor       = 5 * time.Second
)

// ErrOutOfRange is returned by SetBatchSize for a value outside
// [MinBatchSize, MaxBatchSize].
var ErrOutOfRange = errors.New("autotune: value out of range")

// Mode selects the operating point of the controller.
type Mode int

const (
	// Hybrid balances batching delay against pairs per fsync (default).
	Hybrid Mode = iota
	// Throughput lets groups grow: more pairs per fsync, more delay.
	Throughput
	// Latency keeps the batching delay short.
	Latency
)

// String returns the mode's setting name.
func (m Mode) String() string {
	switch m {
	case Hybrid:
		return "hybrid"
	case Throughput:
		return "throughput"
	case Latency:
		return "latency"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses a mode's setting name.
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Hybrid, Throughput, Latency} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: mode %q: want throughput, latency or hybrid", ErrOutOfRange, s)
}

// headroom is the batch size per unit of demand, and target the p99
// batching-delay setpoint, of each mode.
func (m Mode) headroom() float64 {
	switch m {
	case Throughput:
		return 2
	case Latency:
		return 1.25
	}
	return 1.5
}

func (m Mode) target() time.Duration {
	switch m {
	case Throughput:
		return 125 * time.Microsecond
	case Latency:
		return 50 * time.Microsecond
	}
	return 100 * time.Microsecond
}

// Options configures a Controller. The zero value of every field means
// its default (the Default* constants); EnsureDefaults fills them in.
type Options struct {
	Mode     Mode
	Disabled bool // knobs stay where they are (SetBatchSize still works)

	// InitialBatchSize and InitialFlushInterval are the starting point and
	// the safe values the circuit breaker returns to.
	InitialBatchSize     int
	InitialFlushInterval time.Duration
	MinFlushInterval     time.Duration
	MaxFlushInterval     time.Duration

	// Interval is the Loop's period, in [100ms, 1s].
	Interval time.Duration

	Kp, Ki, Kd float64
	Hysteresis int     // consecutive violations before a knob moves
	DeadBand   float64 // |log2 error| at or below which a knob holds

	// TargetP99 overrides the mode's batching-delay setpoint.
	TargetP99 time.Duration

	BreakerP99 time.Duration // the breaker's p99 limit
	BreakerFor time.Duration // how long over the limit before it opens
	RecoverFor time.Duration // how long back under the limit before it closes

	// Now is the clock; default time.Now. Tests inject a simulated one.
	Now func() time.Time
	// Report, if set, receives every decision (from Step and
	// SetBatchSize), after the controller's lock is released.
	Report func(Decision)
}

// EnsureDefaults fills every zero field with its default.
func (o *Options) EnsureDefaults() {
	setD := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setF := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	if o.InitialBatchSize == 0 {
		o.InitialBatchSize = DefaultBatchSize
	}
	setD(&o.InitialFlushInterval, DefaultFlushInterval)
	setD(&o.MinFlushInterval, DefaultMinFlushInterval)
	setD(&o.MaxFlushInterval, DefaultMaxFlushInterval)
	setD(&o.Interval, DefaultInterval)
	setF(&o.Kp, DefaultKp)
	setF(&o.Ki, DefaultKi)
	setF(&o.Kd, DefaultKd)
	if o.Hysteresis == 0 {
		o.Hysteresis = DefaultHysteresis
	}
	setF(&o.DeadBand, DefaultDeadBand)
	setD(&o.TargetP99, o.Mode.target())
	setD(&o.BreakerP99, DefaultBreakerP99)
	setD(&o.BreakerFor, DefaultBreakerFor)
	setD(&o.RecoverFor, DefaultRecoverFor)
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("autotune: "+format, args...))
	}
	if o.Mode < Hybrid || o.Mode > Latency {
		bad("unknown mode %d", int(o.Mode))
	}
	if o.InitialBatchSize < MinBatchSize || o.InitialBatchSize > MaxBatchSize {
		bad("initial batch size %d not in [%d, %d]", o.InitialBatchSize, MinBatchSize, MaxBatchSize)
	}
	if o.MinFlushInterval <= 0 || o.MinFlushInterval > o.MaxFlushInterval {
		bad("flush interval bounds [%v, %v] are not a positive range", o.MinFlushInterval, o.MaxFlushInterval)
	}
	if o.InitialFlushInterval < o.MinFlushInterval || o.InitialFlushInterval > o.MaxFlushInterval {
		bad("initial flush interval %v not in [%v, %v]", o.InitialFlushInterval, o.MinFlushInterval, o.MaxFlushInterval)
	}
	if o.Interval < 100*time.Millisecond || o.Interval > time.Second {
		bad("interval %v not in [100ms, 1s]", o.Interval)
	}
	if o.Kp < 0 || o.Ki < 0 || o.Kd < 0 {
		bad("negative gain (Kp %v, Ki %v, Kd %v)", o.Kp, o.Ki, o.Kd)
	}
	if o.Hysteresis < 1 {
		bad("hysteresis %d must be >= 1", o.Hysteresis)
	}
	if o.DeadBand < 0 {
		bad("dead band %v must be >= 0", o.DeadBand)
	}
	if o.TargetP99 <= 0 || o.BreakerP99 <= 0 || o.BreakerFor <= 0 || o.RecoverFor <= 0 {
		bad("target p99 %v, breaker p99 %v, breaker for %v and recover for %v must be > 0",
			o.TargetP99, o.BreakerP99, o.BreakerFor, o.RecoverFor)
	}
	return errors.Join(errs...)
}

// Sample is what the batcher measured over one period.
type Sample struct {
	Pairs      uint64        // single-pair mutations completed in the period; 0 = idle
	Throughput float64       // of those, per second
	P99        time.Duration // batching delay (see the package doc), 99th percentile
	Avg        time.Duration // batching delay, mean
	QueueDepth float64       // demand: mean pairs available when a group was cut
}

// Reason says why a decision left the knobs where they are or moved them.
// Reasons are metric label values.
type Reason string

const (
	ReasonAdjust       Reason = "adjust"        // a knob moved
	ReasonHold         Reason = "hold"          // errors inside the dead band
	ReasonHysteresis   Reason = "hysteresis"    // a violation, not yet Hysteresis in a row
	ReasonBound        Reason = "bound"         // a knob wanted to move past its bound
	ReasonIdle         Reason = "idle"          // no pairs in the period: nothing to learn
	ReasonDisabled     Reason = "disabled"      // auto-tuning is off
	ReasonManual       Reason = "manual"        // SetBatchSize
	ReasonBreakerOpen  Reason = "breaker_open"  // the breaker opened: safe values
	ReasonBreakerHold  Reason = "breaker_hold"  // the breaker is open
	ReasonBreakerClose Reason = "breaker_close" // the breaker closed: tuning resumes
)

// Reasons lists every Reason, for exporting counters that start at zero.
func Reasons() []Reason {
	return []Reason{ReasonAdjust, ReasonHold, ReasonHysteresis, ReasonBound, ReasonIdle,
		ReasonDisabled, ReasonManual, ReasonBreakerOpen, ReasonBreakerHold, ReasonBreakerClose}
}

// Decision is one step of the loop: its inputs, the knobs before and after
// and why.
type Decision struct {
	At       time.Time
	Mode     Mode
	Sample   Sample // as measured
	Filtered Sample // the median of the last three samples, what the PIDs saw

	BatchBefore, BatchAfter int
	FlushBefore, FlushAfter time.Duration
	// BatchError and FlushError are the log2 errors (positive: grow).
	BatchError, FlushError float64
	// BatchSetpoint is Headroom × demand; FlushTarget the delay setpoint.
	BatchSetpoint float64
	FlushTarget   time.Duration

	Reason      Reason
	BreakerOpen bool
}

// Controller tunes the batch size and the flush interval. Create it with
// New.
type Controller struct {
	opts Options

	batch atomic.Int64 // current batch size
	flush atomic.Int64 // current flush interval, ns

	mu      sync.Mutex
	logB    float64 // log2 of the batch size, unrounded
	logF    float64 // log2 of the flush interval in ns, unrounded
	pidB    pid
	pidF    pid
	hystB   hysteresis
	hystF   hysteresis
	hist    [3]Sample // last samples, for the median filter
	nhist   int
	open    bool      // breaker open
	over    time.Time // first sample of the current run over BreakerP99; zero if none
	under   time.Time // while open: first sample of the current run under it
	lastDec Decision
}

// New returns a controller at the initial knobs.
func New(opts Options) (*Controller, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{opts: opts}
	g := func() pid { return pid{kp: opts.Kp, ki: opts.Ki, kd: opts.Kd, imax: 4} }
	c.pidB, c.pidF = g(), g()
	c.setBatch(math.Log2(float64(opts.InitialBatchSize)))
	c.setFlush(math.Log2(float64(opts.InitialFlushInterval)))
	return c, nil
}

// Options returns the controller's options, defaults filled in.
func (c *Controller) Options() Options { return c.opts }

// BatchSize returns the current batch size, in [MinBatchSize, MaxBatchSize].
func (c *Controller) BatchSize() int { return int(c.batch.Load()) }

// FlushInterval returns the current flush interval.
func (c *Controller) FlushInterval() time.Duration { return time.Duration(c.flush.Load()) }

// BreakerOpen reports whether the circuit breaker holds the safe values.
func (c *Controller) BreakerOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// Last returns the last decision (zero before the first).
func (c *Controller) Last() Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastDec
}

// setBatch sets the batch size from its log2, clamped to the bounds, and
// reports whether the clamp cut it.
func (c *Controller) setBatch(l float64) bool {
	lo, hi := math.Log2(MinBatchSize), math.Log2(MaxBatchSize)
	cl := math.Min(math.Max(l, lo), hi)
	c.logB = cl
	c.batch.Store(int64(math.Round(math.Exp2(cl))))
	return cl != l
}

func (c *Controller) setFlush(l float64) bool {
	lo, hi := math.Log2(float64(c.opts.MinFlushInterval)), math.Log2(float64(c.opts.MaxFlushInterval))
	cl := math.Min(math.Max(l, lo), hi)
	c.logF = cl
	c.flush.Store(int64(math.Round(math.Exp2(cl))))
	return cl != l
}

// SetBatchSize sets the batch size (REST PUT /config/batch_size). The loop
// continues from n: the batch PID and its hysteresis restart, and an open
// breaker closes (the operator has taken over; it reopens if the p99 stays
// over the limit for BreakerFor again).
func (c *Controller) SetBatchSize(n int) error {
	if n < MinBatchSize || n > MaxBatchSize {
		return fmt.Errorf("%w: batch size %d not in [%d, %d]", ErrOutOfRange, n, MinBatchSize, MaxBatchSize)
	}
	c.mu.Lock()
	d := Decision{At: c.opts.Now(), Mode: c.opts.Mode, BatchBefore: c.BatchSize(), FlushBefore: c.FlushInterval(),
		Reason: ReasonManual}
	c.setBatch(math.Log2(float64(n)))
	c.pidB.reset()
	c.hystB.reset()
	c.open, c.over, c.under = false, time.Time{}, time.Time{}
	d.BatchAfter, d.FlushAfter = c.BatchSize(), c.FlushInterval()
	c.lastDec = d
	c.mu.Unlock()
	if c.opts.Report != nil {
		c.opts.Report(d)
	}
	return nil
}

// Step is one turn of the loop: it takes the period's sample, adjusts the
// knobs and returns (and reports) the decision.
func (c *Controller) Step(s Sample) Decision {
	c.mu.Lock()
	d := c.step(s)
	c.lastDec = d
	c.mu.Unlock()
	if c.opts.Report != nil {
		c.opts.Report(d)
	}
	return d
}

func (c *Controller) step(s Sample) (d Decision) {
	now := c.opts.Now()
	d = Decision{At: now, Mode: c.opts.Mode, Sample: s,
		BatchBefore: c.BatchSize(), FlushBefore: c.FlushInterval(), FlushTarget: c.opts.TargetP99}
	defer func() {
		d.BatchAfter, d.FlushAfter, d.BreakerOpen = c.BatchSize(), c.FlushInterval(), c.open
	}()
	if c.opts.Disabled {
		d.Reason = ReasonDisabled
		return d
	}
	if r, done := c.breaker(s, now); done {
		d.Reason = r
		return d
	}
	if s.Pairs == 0 {
		d.Reason = ReasonIdle
		return d
	}
	f := c.filter(s)
	d.Filtered = f

	// Batch size: track Headroom × demand.
	d.BatchSetpoint = math.Min(math.Max(c.opts.Mode.headroom()*f.QueueDepth, 1), 4*MaxBatchSize)
	d.BatchError = math.Log2(d.BatchSetpoint) - c.logB
	rb := c.move(&c.pidB, &c.hystB, d.BatchError, c.logB, c.setBatch, c.batch.Load)

	// Flush interval: track the delay setpoint, unless the batch cap binds
	// (then the delay is queueing behind the cap, which lingering less
	// would not cure).
	rf := ReasonHold
	if f.QueueDepth <= float64(d.BatchBefore) && f.P99 > 0 {
		d.FlushError = math.Log2(float64(c.opts.TargetP99) / float64(f.P99))
		rf = c.move(&c.pidF, &c.hystF, d.FlushError, c.logF, c.setFlush, c.flush.Load)
	} else {
		c.hystF.reset()
	}
	d.Reason = combine(rb, rf)
	return d
}

// move runs one knob's hysteresis and PID on error e and applies the
// output to the knob whose log2 is cur; val reads the knob's value.
func (c *Controller) move(p *pid, h *hysteresis, e, cur float64, set func(float64) bool, val func() int64) Reason {
	if math.Abs(e) <= c.opts.DeadBand {
		h.reset()
		p.observe(e)
		return ReasonHold
	}
	if !h.violation(e, c.opts.Hysteresis) {
		p.observe(e)
		return ReasonHysteresis
	}
	before := val()
	u := p.step(e)
	if set(cur + u) {
		p.unwind(e) // clamped: stop integrating toward a bound we cannot pass
		if val() == before {
			return ReasonBound
		}
	}
	return ReasonAdjust
}

// combine merges the two knobs' reasons into the decision's: a move wins
// over a bound, which wins over hysteresis, which wins over a hold.
func combine(a, b Reason) Reason {
	rank := map[Reason]int{ReasonHold: 0, ReasonHysteresis: 1, ReasonBound: 2, ReasonAdjust: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// breaker advances the circuit breaker on the raw sample. done means the
// decision is the breaker's: the knobs hold the safe values.
func (c *Controller) breaker(s Sample, now time.Time) (Reason, bool) {
	over := s.Pairs > 0 && s.P99 > c.opts.BreakerP99
	if !c.open {
		if !over {
			c.over = time.Time{}
			return "", false
		}
		if c.over.IsZero() {
			c.over = now
		}
		if now.Sub(c.over) < c.opts.BreakerFor {
			return "", false
		}
		c.open, c.under = true, time.Time{}
		c.safe()
		return ReasonBreakerOpen, true
	}
	if over {
		c.under = time.Time{}
		return ReasonBreakerHold, true
	}
	if c.under.IsZero() {
		c.under = now
	}
	if now.Sub(c.under) < c.opts.RecoverFor {
		return ReasonBreakerHold, true
	}
	c.open, c.over, c.under = false, time.Time{}, time.Time{}
	c.safe() // resume from the safe values with fresh state
	return ReasonBreakerClose, true
}

// safe puts both knobs at their initial values and forgets the PIDs',
// hysteresis' and filter's history.
func (c *Controller) safe() {
	c.setBatch(math.Log2(float64(c.opts.InitialBatchSize)))
	c.setFlush(math.Log2(float64(c.opts.InitialFlushInterval)))
	c.pidB.reset()
	c.pidF.reset()
	c.hystB.reset()
	c.hystF.reset()
	c.nhist = 0
}

// filter adds s to the history and returns the median of the last three
// samples, field by field (fewer at the start).
func (c *Controller) filter(s Sample) Sample {
	copy(c.hist[1:], c.hist[:2])
	c.hist[0] = s
	if c.nhist < len(c.hist) {
		c.nhist++
	}
	h := c.hist[:c.nhist]
	med := func(v func(Sample) float64) float64 {
		var x [3]float64
		for i, s := range h {
			x[i] = v(s)
		}
		return median(x[:len(h)])
	}
	return Sample{
		Pairs:      s.Pairs,
		Throughput: med(func(s Sample) float64 { return s.Throughput }),
		P99:        time.Duration(med(func(s Sample) float64 { return float64(s.P99) })),
		Avg:        time.Duration(med(func(s Sample) float64 { return float64(s.Avg) })),
		QueueDepth: med(func(s Sample) float64 { return s.QueueDepth }),
	}
}

// median of up to three values; of two, their mean.
func median(x []float64) float64 {
	switch len(x) {
	case 1:
		return x[0]
	case 2:
		return (x[0] + x[1]) / 2
	}
	a, b, c := x[0], x[1], x[2]
	return math.Max(math.Min(a, b), math.Min(math.Max(a, b), c))
}

// pid is a PID controller on a log2 error. Anti-windup: the integral only
// accumulates on steps that act (not while hysteresis holds a knob), is
// clamped to ±imax, is reset when the error changes sign, and an output
// clamped at a bound is not integrated.
type pid struct {
	kp, ki, kd float64
	imax       float64
	integ      float64
	prev       float64
	hasPrev    bool
}

// observe records e without acting, so that the next derivative is taken
// over one period.
func (p *pid) observe(e float64) { p.prev, p.hasPrev = e, true }

func (p *pid) step(e float64) float64 {
	if e*p.integ < 0 {
		p.integ = 0 // the error crossed zero: forget the wound-up side
	}
	p.integ = math.Min(math.Max(p.integ+e, -p.imax), p.imax)
	d := 0.0
	if p.hasPrev {
		d = e - p.prev
	}
	p.prev, p.hasPrev = e, true
	return p.kp*e + p.ki*p.integ + p.kd*d
}

// unwind takes back the last integration (the output was clamped).
func (p *pid) unwind(e float64) { p.integ -= e }

func (p *pid) reset() { *p = pid{kp: p.kp, ki: p.ki, kd: p.kd, imax: p.imax} }

// hysteresis counts consecutive errors outside the dead band of one sign.
type hysteresis struct {
	n    int
	sign float64
}

// violation records one and reports whether n in a row have been seen.
func (h *hysteresis) violation(e float64, n int) bool {
	s := math.Copysign(1, e)
	if h.sign != s {
		h.n, h.sign = 0, s
	}
	h.n++
	return h.n >= n
}

func (h *hysteresis) reset() { *h = hysteresis{} }
