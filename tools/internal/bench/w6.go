package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// W6 — the service benchmark of BENCH.md: W1's pairs through a network
// data plane, then GETs from one client and from several concurrent ones.
//
// Every W6 engine is a server in a process of its own, started and stopped
// by the harness on free loopback ports with its data in the run's
// directory:
//
//   - cidstore-zmq: bin/cidstore serve (PROTOCOL.md §4), BATCH_INSERT and GET
//     over ZeroMQ with the project's Go client (one DEALER per client).
//   - zmq-echo: a bare ROUTER that answers every request with the fixed map
//     {rolling_version: 1, results: []}; the same client sends it the same
//     bytes, so its figures are the transport's floor (nothing is stored, so
//     nothing is verified).
//   - redis-always, redis-everysec: redis-server with AOF on; one SADD per
//     pair in pipelines of --batch commands, SMEMBERS for a GET (sorted by
//     the client). Keys and members are the 16-byte big-endian binary forms
//     of E.
//
// Ingest sends the W1 batches in order with up to Window messages (Redis:
// pipelines) outstanding; the timed span runs from the first send to the
// last acknowledgement, so every pair is durable under the engine's policy
// when the clock stops. GETs follow W1's lookup stream (T = L + L/10 with L
// = ServiceOptions.Lookups), each timed alone and checked against n_j:
// first by one client, then the same T operations dealt round-robin to
// Clients concurrent clients, each with its own connection.

// Defaults of ServiceOptions.
const (
	DefaultServiceWindow  = 4
	DefaultServiceClients = 8
	DefaultServiceLookups = 100_000
)

// DefaultServiceEngines is the --engines list of a W6-only invocation.
const DefaultServiceEngines = "zmq-echo,cidstore-zmq,redis-everysec,redis-always"

// ServiceOptions configure W6.
type ServiceOptions struct {
	// CidstoreBin is the cidstore binary; empty: ResolveCidstoreBin("").
	CidstoreBin string
	// Window is the number of insert messages (Redis: pipelines) in flight.
	Window int
	// Clients is the number of concurrent GET clients of the second phase.
	Clients int
	// Lookups is L of each GET phase: L + L/10 GETs are made.
	Lookups int
}

func (o *ServiceOptions) ensureDefaults() {
	if o.Window <= 0 {
		o.Window = DefaultServiceWindow
	}
	if o.Clients <= 0 {
		o.Clients = DefaultServiceClients
	}
	if o.Lookups <= 0 {
		o.Lookups = DefaultServiceLookups
	}
}

// ServiceFigures are the W6 fields of a result line (embedded in Result,
// absent from the lines of other workloads). The Result's lookup_* fields
// are the one-client phase, peak_rss_bytes is the server's VmHWM and
// disk_bytes its data directory after a graceful stop.
type ServiceFigures struct {
	Lookup8AvgUs   float64 `json:"lookup8_avg_us"`
	Lookup8P50Us   float64 `json:"lookup8_p50_us"`
	Lookup8P99Us   float64 `json:"lookup8_p99_us"`
	Lookup8P999Us  float64 `json:"lookup8_p999_us"`
	Lookup8MaxUs   float64 `json:"lookup8_max_us"`
	Lookup8OpsPerS float64 `json:"lookup8_ops_per_s"`
	Lookups8       uint64  `json:"lookups8"`
	// LookupOpsPerS is the one-client phase's throughput.
	LookupOpsPerS float64 `json:"lookup_ops_per_s"`

	Clients  int  `json:"clients"` // of the lookup8 phase
	Window   int  `json:"window"`  // insert messages (pipelines) in flight
	Verified bool `json:"verified"`
	// Wire describes what crosses the socket.
	Wire string `json:"wire"`

	ServerStartMs      float64 `json:"server_start_ms"` // spawn to ready
	ServerStopMs       float64 `json:"server_stop_ms"`  // SIGTERM to exit
	ServerExitCode     int     `json:"server_exit_code"`
	ClientPeakRSSBytes int64   `json:"client_peak_rss_bytes"`

	// CPU seconds (user + system) spent in each phase by the server process
	// and by this (client) process: they tell where a phase's time goes.
	ServerCPUs PhaseCPU `json:"server_cpu_s"`
	ClientCPUs PhaseCPU `json:"client_cpu_s"`
}

// PhaseCPU is CPU seconds per W6 phase.
type PhaseCPU struct {
	Ingest  float64 `json:"ingest"`
	Lookup  float64 `json:"lookup"`
	Lookup8 float64 `json:"lookup8"`
}

// service is a running W6 server.
type service interface {
	// ingest inserts pairs in messages of batch pairs with window of them
	// outstanding; it returns once every message is acknowledged.
	ingest(pairs []Pair, batch, window int) error
	// dial opens a client connection for one goroutine.
	dial() (serviceConn, error)
	// pid is the server process.
	pid() int
	// stop stops the server gracefully and waits for it; the exit code is
	// returned, and an error unless the process exited 0 in time.
	stop() (code int, err error)
	// kill ends the server at once (cleanup after a failure).
	kill()
	// dataDir is the directory whose size is disk_bytes; "" for none.
	dataDir() string
}

// serviceConn is one client connection.
type serviceConn interface {
	get(key E) ([]E, error)
	close() error
}

// serviceSpec describes a W6 engine.
type serviceSpec struct {
	name string
	// sync is the result line's sync field for the requested mode.
	sync func(requested bool) string
	// verifies is false when GET answers are not the store's (echo).
	verifies bool
	wire     string
	// available returns nil when the engine can run here, else why not.
	available func(opts ServiceOptions) error
	version   func(opts ServiceOptions) string
	start     func(cfg Config, opts ServiceOptions) (service, error)
}

var services []serviceSpec

func registerService(s serviceSpec) bool {
	services = append(services, s)
	return true
}

func lookupService(name string) (serviceSpec, bool) {
	for _, s := range services {
		if s.name == name {
			return s, true
		}
	}
	return serviceSpec{}, false
}

// ServiceEngines returns the EngineSpecs of the W6 engines, by name. They run
// only in W6: their Open fails.
func ServiceEngines() []EngineSpec {
	var out []EngineSpec
	for _, s := range services {
		out = append(out, s.engineSpec())
	}
	slices.SortFunc(out, func(a, b EngineSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// IsServiceEngine reports whether name is a W6 engine.
func IsServiceEngine(name string) bool {
	_, ok := lookupService(name)
	return ok
}

// ServiceEngineAvailable returns nil when the W6 engine name can run here
// (its server binary is found), else the reason.
func ServiceEngineAvailable(name string, opts ServiceOptions) error {
	s, ok := lookupService(name)
	if !ok {
		return fmt.Errorf("%q is not a W6 engine", name)
	}
	return s.available(opts)
}

func (s serviceSpec) engineSpec() EngineSpec {
	name := s.name
	return EngineSpec{
		Name:    name,
		Durable: func(sync bool) bool { return s.sync(sync) != "none" },
		Open: func(string, bool) (Engine, error) {
			return nil, fmt.Errorf("engine %s is a server: it runs only in workload W6", name)
		},
	}
}

// runW6 runs BENCH.md's W6 on the service engine cfg.Engine.
func runW6(cfg Config) (Result, error) {
	r := newResult(cfg)
	spec, ok := lookupService(cfg.Engine.Name)
	if !ok {
		var names []string
		for _, s := range ServiceEngines() {
			names = append(names, s.Name)
		}
		return r, fmt.Errorf("W6 runs the service engines (%s), not %q", strings.Join(names, ", "), cfg.Engine.Name)
	}
	opts := cfg.Service
	opts.ensureDefaults()
	r.Sync = spec.sync(cfg.Sync)
	r.EngineVersion = spec.version(opts)
	fig := &ServiceFigures{Clients: opts.Clients, Window: opts.Window, Verified: spec.verifies, Wire: spec.wire}
	r.ServiceFigures = fig
	if err := spec.available(opts); err != nil {
		return r, err
	}

	t := time.Now()
	w, err := NewW1(cfg.Seed, cfg.Keys, cfg.Batch)
	if err != nil {
		return r, err
	}
	r.Pairs = w.P()
	nl := opts.Lookups + opts.Lookups/10
	lookups := make([]Lookup, nl)
	ls := w.Lookups()
	for i := range lookups {
		lookups[i] = ls.Next()
	}
	r.DatasetRSSBytes = DatasetRSSBytes()
	cfg.logf("generated %d keys, %d pairs, %d lookups in %v", w.K(), w.P(), nl, time.Since(t).Round(time.Millisecond))

	t = time.Now()
	svc, err := spec.start(cfg, opts)
	if err != nil {
		return r, fmt.Errorf("start %s: %w", spec.name, err)
	}
	fig.ServerStartMs = ms(time.Since(t))
	cfg.logf("server pid %d ready in %.0f ms", svc.pid(), fig.ServerStartMs)
	stopped := false
	defer func() {
		if !stopped {
			svc.kill()
		}
	}()

	cpu := newCPUMeter(svc.pid())
	t0 := time.Now()
	if err := svc.ingest(w.PairsIn(0, w.P(), nil), cfg.Batch, opts.Window); err != nil {
		return r, fmt.Errorf("ingest: %w", err)
	}
	el := time.Since(t0)
	fig.ServerCPUs.Ingest, fig.ClientCPUs.Ingest = cpu.lap()
	r.InsertSeconds = round3(el.Seconds())
	r.InsertPairsPerS = float64(int64(float64(w.P()) / el.Seconds()))
	cfg.logf("inserted %d pairs in %v (window %d): %.0f pairs/s; cpu server %.2fs client %.2fs",
		w.P(), el.Round(time.Millisecond), opts.Window, r.InsertPairsPerS, fig.ServerCPUs.Ingest, fig.ClientCPUs.Ingest)

	for phase, clients := range []int{1, opts.Clients} {
		lat, mism, first, el, err := getPhase(svc, w, lookups, clients, spec.verifies)
		if err != nil {
			return r, fmt.Errorf("GETs with %d clients: %w", clients, err)
		}
		ops := float64(int64(float64(lat.Count()) / el.Seconds()))
		sc, cc := cpu.lap()
		if phase == 0 {
			r.setLookups(lat)
			fig.LookupOpsPerS = ops
			fig.ServerCPUs.Lookup, fig.ClientCPUs.Lookup = sc, cc
		} else {
			fig.setLookups8(lat)
			fig.Lookup8OpsPerS = ops
			fig.ServerCPUs.Lookup8, fig.ClientCPUs.Lookup8 = sc, cc
		}
		r.Mismatches += mism
		if first != nil && r.FirstMismatch == "" {
			r.FirstMismatch = first.Error()
		}
		cfg.logf("%d GETs, %d clients, in %v: %.0f ops/s, p50 %.1fµs p99 %.1fµs p999 %.1fµs, %d mismatches; cpu server %.2fs client %.2fs",
			lat.Count(), clients, el.Round(time.Millisecond), ops,
			us(lat.Quantile(0.5)), us(lat.Quantile(0.99)), us(lat.Quantile(0.999)), mism, sc, cc)
	}

	r.PeakRSSBytes = ProcPeakRSSBytes(svc.pid())
	fig.ClientPeakRSSBytes = PeakRSSBytes()
	t = time.Now()
	code, err := svc.stop()
	stopped = true
	fig.ServerStopMs = ms(time.Since(t))
	fig.ServerExitCode = code
	if err != nil {
		return r, fmt.Errorf("stop %s: %w", spec.name, err)
	}
	if d := svc.dataDir(); d != "" {
		r.DiskBytes, r.DiskApparentBytes, err = DiskBytes(d)
		if err != nil {
			return r, fmt.Errorf("disk usage: %w", err)
		}
	}
	cfg.logf("server stopped in %.0f ms (exit %d); peak RSS %d MB; disk %d bytes",
		fig.ServerStopMs, code, r.PeakRSSBytes>>20, r.DiskBytes)
	return r, nil
}

func (f *ServiceFigures) setLookups8(l *Latency) {
	f.Lookups8 = l.Count()
	f.Lookup8AvgUs = us(l.Mean())
	f.Lookup8P50Us = us(l.Quantile(0.50))
	f.Lookup8P99Us = us(l.Quantile(0.99))
	f.Lookup8P999Us = us(l.Quantile(0.999))
	f.Lookup8MaxUs = us(l.Max())
}

// maxGetErrors is the number of failed GETs (transport errors, not wrong
// answers) after which a phase gives up: the server is gone.
const maxGetErrors = 10

// getPhase makes the GETs of lookups from clients concurrent connections,
// lookup i by client i mod clients, each timed alone and checked (when
// verify) against w. Each connection makes one untimed GET of an absent key
// first, so that connection setup is not timed.
func getPhase(svc service, w *W1, lookups []Lookup, clients int, verify bool) (lat *Latency, mism int64, first error, el time.Duration, err error) {
	conns := make([]serviceConn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				err = errors.Join(err, c.close())
			}
		}
	}()
	warm := NewSplitMix64(0x3C6EF372FE94F82B).E()
	for i := range conns {
		if conns[i], err = svc.dial(); err != nil {
			return nil, 0, nil, 0, fmt.Errorf("dial client %d: %w", i, err)
		}
		if _, err = conns[i].get(warm); err != nil {
			return nil, 0, nil, 0, fmt.Errorf("client %d: first GET: %w", i, err)
		}
	}
	lats := make([]*Latency, clients)
	mis := make([]int64, clients)
	firsts := make([]error, clients)
	errs := make([]error, clients)
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	ready.Add(clients)
	for c := range clients {
		lats[c] = NewLatency()
		wg.Go(func() {
			conn, l := conns[c], lats[c]
			failed := 0
			ready.Done()
			<-start
			for i := c; i < len(lookups); i += clients {
				lk := lookups[i]
				s := time.Now()
				got, err := conn.get(lk.Key)
				l.Record(time.Since(s))
				if err != nil || (verify && !w.Check(lk.J, got)) {
					mis[c]++
					if firsts[c] == nil {
						firsts[c] = fmt.Errorf("client %d: get key %v (index %d): %d values, err %v", c, lk.Key, lk.J, len(got), err)
					}
				}
				if err != nil {
					if failed++; failed >= maxGetErrors {
						errs[c] = fmt.Errorf("client %d: %d GETs failed, last: %w", c, failed, err)
						return
					}
				}
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	el = time.Since(t0)
	lat = NewLatency()
	for c := range clients {
		lat.Merge(lats[c])
		mism += mis[c]
		if first == nil {
			first = firsts[c]
		}
		if errs[c] != nil && err == nil {
			err = errs[c]
		}
	}
	return lat, mism, first, el, err
}
