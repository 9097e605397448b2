package app

import (
	"runtime"
	"strconv"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns the process's metrics registry: never the global
// default one, so that tests and embedders get a clean set. It holds the Go
// runtime and process collectors and cidstore_build_info.
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "cidstore_build_info",
			Help:        "Build information; the value is always 1.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return reg
}

// storeCollector exports a Store's Stats, read at scrape time. Before the
// store is open (and after it is closed) it exports nothing.
type storeCollector struct {
	stats func() (cidstore.Stats, bool)
	descs []storeMetric
}

// storeMetric is one exported field of Stats: a value, or a histogram
// when hist is set.
type storeMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*cidstore.Stats) float64
	hist  func(*cidstore.Stats) (count uint64, sum float64, buckets map[float64]uint64)
}

func newStoreCollector(stats func() (cidstore.Stats, bool)) *storeCollector {
	m := func(name, help string, typ prometheus.ValueType, v func(*cidstore.Stats) float64) storeMetric {
		return storeMetric{desc: prometheus.NewDesc(name, help, nil, nil), typ: typ, value: v}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	sc := &storeCollector{stats: stats, descs: []storeMetric{
		m("cidstore_store_keys", "Live keys.", g, func(s *cidstore.Stats) float64 { return float64(s.Keys) }),
		m("cidstore_store_values", "Live values over all keys.", g, func(s *cidstore.Stats) float64 { return float64(s.Values) }),
		m("cidstore_store_spilled_keys", "Keys whose values live in an external value set.", g, func(s *cidstore.Stats) float64 { return float64(s.SpilledKeys) }),
		m("cidstore_directory_buckets", "Live buckets.", g, func(s *cidstore.Stats) float64 { return float64(s.Buckets) }),
		m("cidstore_directory_global_depth", "Global depth of the directory (it has 2^depth slots).", g, func(s *cidstore.Stats) float64 { return float64(s.GlobalDepth) }),
		m("cidstore_bucket_splits_total", "Bucket splits.", c, func(s *cidstore.Stats) float64 { return float64(s.Splits) }),
		m("cidstore_bucket_merges_total", "Bucket merges.", c, func(s *cidstore.Stats) float64 { return float64(s.Merges) }),
		m("cidstore_directory_doublings_total", "Directory doublings.", c, func(s *cidstore.Stats) float64 { return float64(s.DirectoryDoublings) }),
		m("cidstore_directory_halvings_total", "Directory halvings.", c, func(s *cidstore.Stats) float64 { return float64(s.DirectoryHalvings) }),
		m("cidstore_valueset_promotions_total", "Keys promoted from inline values to a value set.", c, func(s *cidstore.Stats) float64 { return float64(s.Promotions) }),
		m("cidstore_valueset_demotions_total", "Keys demoted from a value set to inline values.", c, func(s *cidstore.Stats) float64 { return float64(s.Demotions) }),
		m("cidstore_valueset_compactions_total", "Value sets compacted.", c, func(s *cidstore.Stats) float64 { return float64(s.Compactions) }),
		m("cidstore_wal_last_lsn", "Last LSN appended to the WAL.", g, func(s *cidstore.Stats) float64 { return float64(s.LastLSN) }),
		m("cidstore_wal_capacity_bytes", "Size of the WAL ring.", g, func(s *cidstore.Stats) float64 { return float64(s.WALCapacityBytes) }),
		m("cidstore_wal_used_bytes", "WAL bytes holding records not yet checkpointed.", g, func(s *cidstore.Stats) float64 { return float64(s.WALUsedBytes) }),
		m("cidstore_wal_syncs_total", "WAL fdatasync calls.", c, func(s *cidstore.Stats) float64 { return float64(s.WALSyncs) }),
		m("cidstore_wal_sync_duration_seconds_total", "Time spent waiting for WAL fdatasyncs (one overlapped with a batch counts from when the batch waits for it).", c, func(s *cidstore.Stats) float64 { return s.WALSyncSeconds }),
		m("cidstore_wal_recovered_records", "WAL records replayed when the store was opened.", g, func(s *cidstore.Stats) float64 { return float64(s.RecoveredRecords) }),
		m("cidstore_checkpoint_lsn", "LSN of the last committed checkpoint.", g, func(s *cidstore.Stats) float64 { return float64(s.CheckpointLSN) }),
		m("cidstore_checkpoints_total", "Checkpoints committed.", c, func(s *cidstore.Stats) float64 { return float64(s.Checkpoints) }),
		m("cidstore_checkpoint_duration_seconds", "Duration of the last checkpoint.", g, func(s *cidstore.Stats) float64 { return s.LastCheckpointDuration.Seconds() }),
		m("cidstore_checkpoint_size_bytes", "Bytes written by the last checkpoint.", g, func(s *cidstore.Stats) float64 { return float64(s.LastCheckpointBytes) }),
		m("cidstore_cache_bytes", "Bytes held by buckets and value sets in memory.", g, func(s *cidstore.Stats) float64 { return float64(s.CacheBytes) }),
		m("cidstore_cache_budget_bytes", "Cache budget for buckets and value sets (0 = unbounded).", g, func(s *cidstore.Stats) float64 { return float64(s.CacheBudget) }),
		m("cidstore_cache_bucket_loads_total", "Buckets read from the backend on demand.", c, func(s *cidstore.Stats) float64 { return float64(s.BucketLoads) }),
		m("cidstore_cache_valueset_loads_total", "Value sets read from the backend on demand.", c, func(s *cidstore.Stats) float64 { return float64(s.ValueSetLoads) }),
		m("cidstore_cache_evictions_total", "Buckets evicted from memory with their value sets.", c, func(s *cidstore.Stats) float64 { return float64(s.Evictions) }),
		m("cidstore_cache_pinned_bytes", "Bytes in memory that only a checkpoint can make evictable (changed since the last one, or frozen by the one running).", g, func(s *cidstore.Stats) float64 { return float64(s.CachePinnedBytes) }),
		m("cidstore_write_stalls_total", "Mutations that waited for a checkpoint to unpin memory.", c, func(s *cidstore.Stats) float64 { return float64(s.WriteStalls) }),
		m("cidstore_wal_full_waits_total", "Mutations that waited for a checkpoint to free WAL space.", c, func(s *cidstore.Stats) float64 { return float64(s.WALFullWaits) }),
		m("cidstore_wal_delays_total", "Mutations held back while a checkpoint ran, so that the WAL would not fill (delayed writes).", c, func(s *cidstore.Stats) float64 { return float64(s.WALDelays) }),
		m("cidstore_wal_delay_seconds_total", "Time mutations were held back by delayed writes.", c, func(s *cidstore.Stats) float64 { return s.WALDelayTotal.Seconds() }),
		m("cidstore_memory_delays_total", "Mutations held back while a checkpoint ran, so that pinned memory would not reach its limit (delayed writes on memory).", c, func(s *cidstore.Stats) float64 { return float64(s.MemoryDelays) }),
		m("cidstore_memory_delay_seconds_total", "Time mutations were held back by delayed writes on memory.", c, func(s *cidstore.Stats) float64 { return s.MemoryDelayTotal.Seconds() }),
		m("cidstore_checkpoint_wait_max_seconds", "Longest time a mutation waited for a checkpoint (memory or WAL space) since the store opened.", g, func(s *cidstore.Stats) float64 { return s.CheckpointWaitMax.Seconds() }),
		m("cidstore_maintenance_backlog_buckets", "Buckets with a maintenance danger score above 0.5 (last scoring pass).", g, func(s *cidstore.Stats) float64 { return float64(s.Maintenance.Backlog) }),
		m("cidstore_maintenance_ticks_total", "Maintenance scheduler ticks.", c, func(s *cidstore.Stats) float64 { return float64(s.Maintenance.Ticks) }),
		m("cidstore_maintenance_throttled_ticks_total", "Maintenance ticks throttled by full-speed ingest.", c, func(s *cidstore.Stats) float64 { return float64(s.Maintenance.ThrottledTicks) }),
		m("cidstore_gc_full_scans_total", "Garbage-collection passes with a full scan.", c, func(s *cidstore.Stats) float64 { return float64(s.Maintenance.GCScans) }),
		m("cidstore_gc_last_full_scan_seconds", "Duration of the last garbage-collection full scan.", g, func(s *cidstore.Stats) float64 { return s.Maintenance.GCLastScan.Seconds() }),
		m("cidstore_gc_max_lock_hold_seconds", "Longest time a garbage-collection pass held the checkpoint lock (checkpoints wait that long).", g, func(s *cidstore.Stats) float64 { return s.Maintenance.GCMaxLockHold.Seconds() }),
		m("cidstore_maintenance_protected_merges_total", "Maintenance passes over buckets above danger 0.9.", c, func(s *cidstore.Stats) float64 { return float64(s.Maintenance.ProtectedMerges) }),
		{
			desc: prometheus.NewDesc("cidstore_maintenance_bucket_danger_score",
				"Buckets by maintenance danger score, as of the last complete scoring pass (a snapshot, not cumulative).", nil, nil),
			hist: dangerHistogram,
		},
	}}
	tasks := []struct {
		label string
		stats func(*cidstore.Stats) cidstore.TaskStats
	}{
		{"tail_merge", func(s *cidstore.Stats) cidstore.TaskStats { return s.Maintenance.TailMerges }},
		{"set_compaction", func(s *cidstore.Stats) cidstore.TaskStats { return s.Maintenance.SetCompactions }},
		{"demotion", func(s *cidstore.Stats) cidstore.TaskStats { return s.Maintenance.Demotions }},
		{"bucket_merge", func(s *cidstore.Stats) cidstore.TaskStats { return s.Maintenance.BucketMerges }},
		{"gc", func(s *cidstore.Stats) cidstore.TaskStats { return s.Maintenance.GC }},
	}
	for _, tk := range tasks {
		l := prometheus.Labels{"task": tk.label}
		ts := tk.stats
		sc.descs = append(sc.descs,
			storeMetric{desc: prometheus.NewDesc("cidstore_maintenance_task_runs_total", "Maintenance task runs that changed something.", nil, l), typ: c,
				value: func(s *cidstore.Stats) float64 { return float64(ts(s).Runs) }},
			storeMetric{desc: prometheus.NewDesc("cidstore_maintenance_task_duration_seconds_total", "Time spent in maintenance task runs.", nil, l), typ: c,
				value: func(s *cidstore.Stats) float64 { return ts(s).Duration.Seconds() }},
			storeMetric{desc: prometheus.NewDesc("cidstore_maintenance_task_reclaimed_bytes_total", "Persisted bytes reclaimed by maintenance tasks (estimated).", nil, l), typ: c,
				value: func(s *cidstore.Stats) float64 { return float64(ts(s).ReclaimedBytes) }},
		)
	}
	return sc
}

// dangerHistogram turns Stats' danger-score bins into cumulative
// histogram buckets (upper bounds 0.1 .. 0.9; the last bin is in +Inf).
// The sum uses each bin's midpoint.
func dangerHistogram(s *cidstore.Stats) (uint64, float64, map[float64]uint64) {
	h := s.Maintenance.DangerHistogram
	buckets := make(map[float64]uint64, len(h)-1)
	var count uint64
	var sum float64
	for i, n := range h {
		count += n
		sum += float64(n) * (float64(i) + 0.5) / float64(len(h))
		if i < len(h)-1 {
			buckets[float64(i+1)/float64(len(h))] = count
		}
	}
	return count, sum, buckets
}

// Describe implements prometheus.Collector.
func (sc *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range sc.descs {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector.
func (sc *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := sc.stats()
	if !ok {
		return
	}
	for _, d := range sc.descs {
		if d.hist != nil {
			count, sum, buckets := d.hist(&st)
			ch <- prometheus.MustNewConstHistogram(d.desc, count, sum, buckets)
			continue
		}
		ch <- prometheus.MustNewConstMetric(d.desc, d.typ, d.value(&st))
	}
}

// zmqObserver turns the data plane's measurements into metrics. It
// implements zmqserver.Observer.
type zmqObserver struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	rejected      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	queue         prometheus.Gauge
	notifications prometheus.Counter
}

func newZMQObserver(reg prometheus.Registerer) *zmqObserver {
	o := &zmqObserver{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cidstore_requests_total",
			Help: "Data-plane requests by op_code and reply code (200 = success).",
		}, []string{"op_code", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cidstore_request_duration_seconds",
			Help: "Data-plane request latency from receipt to reply.",
			// ~100µs for a GET up to seconds for a 100 000-entry batch
			// behind a slow fdatasync.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op_code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cidstore_pull_rejected_total",
			Help: "Fire-and-forget (PULL) messages rejected, by error code.",
		}, []string{"code"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cidstore_zmq_dropped_messages_total",
			Help: "Outgoing messages discarded: replies to gone or slow peers, notifications over the PUB queue.",
		}, []string{"socket"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cidstore_queue_occupancy",
			Help: "ROUTER requests received and not yet answered.",
		}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cidstore_pub_notifications_total",
			Help: "Change notifications handed to the PUB socket.",
		}),
	}
	reg.MustRegister(o.requests, o.duration, o.rejected, o.dropped, o.queue, o.notifications)
	return o
}

func (o *zmqObserver) ObserveRequest(op string, code int, seconds float64) {
	o.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
	o.duration.WithLabelValues(op).Observe(seconds)
}

func (o *zmqObserver) ObserveRejected(socket string, code int) {
	o.rejected.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (o *zmqObserver) ObserveDropped(socket string, n int) {
	o.dropped.WithLabelValues(socket).Add(float64(n))
}

func (o *zmqObserver) SetQueueDepth(n int) { o.queue.Set(float64(n)) }

func (o *zmqObserver) ObserveNotify(n int) { o.notifications.Add(float64(n)) }

// tunerMetrics exports the auto-tuner's knobs and decisions and the
// batcher's group sizes.
type tunerMetrics struct {
	decisions *prometheus.CounterVec
	groups    prometheus.Histogram
}

func newTunerMetrics(reg prometheus.Registerer, c *autotune.Controller) (*tunerMetrics, error) {
	m := &tunerMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cidstore_autotune_decisions_total",
			Help: "Auto-tuner decisions by reason (adjust, hold, hysteresis, bound, idle, disabled, manual, breaker_open, breaker_hold, breaker_close).",
		}, []string{"reason"}),
		groups: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cidstore_batcher_group_pairs",
			Help:    "Single-pair mutations the write batcher grouped into one store call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
	}
	for _, r := range autotune.Reasons() {
		m.decisions.WithLabelValues(string(r))
	}
	cs := []prometheus.Collector{
		m.decisions, m.groups,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cidstore_autotune_batch_size",
			Help: "Current batch size of the write batcher (auto-tuned, or set by PUT /config/batch_size).",
		}, func() float64 { return float64(c.BatchSize()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cidstore_autotune_flush_interval_seconds",
			Help: "Current flush interval of the write batcher: the longest a group waits for more pairs.",
		}, func() float64 { return c.FlushInterval().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cidstore_autotune_circuit_open",
			Help: "1 while the auto-tuner's circuit breaker holds the safe values, else 0.",
		}, func() float64 {
			if c.BreakerOpen() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeGroup is the batcher's group observer.
func (m *tunerMetrics) observeGroup(n int) { m.groups.Observe(float64(n)) }
