package bench

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// Result is one JSON line of cidbench: one (workload, engine, size, run).
// The fields up to Go are those BENCH.md requires; the rest give context.
// Units are in the names. For W2, the lookup fields describe the readers
// and InsertPairsPerS the writer.
type Result struct {
	Workload        string   `json:"workload"`
	Engine          string   `json:"engine"`
	Keys            int      `json:"keys"`
	Pairs           int      `json:"pairs"`
	Batch           int      `json:"batch"`
	Sync            string   `json:"sync"`
	InsertPairsPerS float64  `json:"insert_pairs_per_s"`
	LookupAvgUs     float64  `json:"lookup_avg_us"`
	LookupP50Us     float64  `json:"lookup_p50_us"`
	LookupP99Us     float64  `json:"lookup_p99_us"`
	LookupP999Us    float64  `json:"lookup_p999_us"`
	Mismatches      int64    `json:"mismatches"`
	DiskBytes       int64    `json:"disk_bytes"`
	PeakRSSBytes    int64    `json:"peak_rss_bytes"`
	ReopenMs        *float64 `json:"reopen_ms"` // null: the engine keeps nothing across Close
	// The random GETs right after the reopen: for an engine that reads
	// lazily, most must come from the files (cold).
	ColdLookupAvgUs float64 `json:"cold_lookup_avg_us,omitempty"`
	ColdLookupP99Us float64 `json:"cold_lookup_p99_us,omitempty"`
	Cores           int     `json:"cores"`
	Go              string  `json:"go"`

	Date          string `json:"date"` // start of the run, RFC 3339 UTC
	Host          string `json:"host"`
	Run           int    `json:"run"`
	Seed          uint64 `json:"seed"`
	EngineVersion string `json:"engine_version,omitempty"`

	InsertSeconds float64 `json:"insert_s"`
	BatchP50Ms    float64 `json:"batch_p50_ms"`
	BatchP99Ms    float64 `json:"batch_p99_ms"`
	BatchMaxMs    float64 `json:"batch_max_ms"`
	Lookups       uint64  `json:"lookups"`
	LookupMaxUs   float64 `json:"lookup_max_us"`
	Readers       int     `json:"readers,omitempty"`
	ReaderOpsPerS float64 `json:"reader_ops_per_s,omitempty"`

	DiskApparentBytes int64 `json:"disk_apparent_bytes"`
	// Storage I/O of the whole process during the insert phase
	// (/proc/self/io; Linux only). InsertWriteBytes is the kernel's
	// write_bytes, which charges whole page-cache folios and overstates
	// what reaches the disk (IOBytes); InsertWcharBytes is what the process
	// passed to write calls, InsertDeviceWriteBytes what the device holding
	// the store wrote meanwhile (every process's writes, the journal's).
	InsertReadBytes        int64 `json:"insert_read_bytes,omitempty"`
	InsertWriteBytes       int64 `json:"insert_write_bytes,omitempty"`
	InsertWcharBytes       int64 `json:"insert_wchar_bytes,omitempty"`
	InsertDeviceWriteBytes int64 `json:"insert_device_write_bytes,omitempty"`
	// CPU of the whole process during the insert phase (user + system,
	// getrusage), and the Go garbage collector's cycles and CPU (the
	// runtime's estimate, runtime/metrics): every engine runs in the
	// benchmark's process.
	InsertCPUSeconds   float64        `json:"insert_cpu_s,omitempty"`
	InsertGCCycles     uint64         `json:"insert_gc_cycles,omitempty"`
	InsertGCCPUSeconds float64        `json:"insert_gc_cpu_s,omitempty"`
	DatasetRSSBytes    int64          `json:"dataset_rss_bytes"` // RSS once the data set is generated, before the engine opens
	CloseMs            float64        `json:"close_ms"`
	GOMAXPROCS         int            `json:"gomaxprocs"`
	MemBytes           int64          `json:"mem_bytes"`
	Load1              float64        `json:"load1"` // at the start of the run
	EngineStats        map[string]any `json:"engine_stats,omitempty"`
	// ColdReadBytes is what the cold lookups read from storage (not from
	// the page cache; /proc/self/io, Linux only).
	ColdReadBytes int64 `json:"cold_read_bytes,omitempty"`
	// ColdMinorFaults are the page faults without I/O the process took
	// during the cold lookups (getrusage; memory the heap grew into).
	ColdMinorFaults int64 `json:"cold_minor_faults,omitempty"`
	// ColdEngineStats are the reopened engine's, after the cold lookups.
	ColdEngineStats map[string]any `json:"cold_engine_stats,omitempty"`
	FirstMismatch   string         `json:"first_mismatch,omitempty"`
	Error           string         `json:"error,omitempty"` // the run failed; its figures are incomplete

	*ServiceFigures // W6 only (w6.go)
	*ReclaimFigures // W3, W4 (reclaim.go)
	*W3Figures      // W3 only (w3.go)
	*W4Figures      // W4 only (w4.go)
	*W5Figures      // W5 only (w5.go)
}

// newResult fills the fields that describe the run rather than the engine.
func newResult(cfg Config) Result {
	host, _ := os.Hostname()
	sync := "none"
	if cfg.Sync {
		sync = "always"
	}
	return Result{
		Workload:      cfg.Workload,
		Engine:        cfg.Engine.Name,
		Keys:          cfg.Keys,
		Batch:         cfg.Batch,
		Sync:          sync,
		Cores:         runtime.NumCPU(),
		Go:            runtime.Version(),
		Date:          time.Now().UTC().Format(time.RFC3339),
		Host:          host,
		Run:           cfg.Run,
		Seed:          cfg.Seed,
		EngineVersion: moduleVersion(cfg.Engine.Module),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		MemBytes:      MemTotalBytes(),
		Load1:         LoadAvg1(),
	}
}

// moduleVersion returns the version of module path linked into this
// binary, "(devel)" for a workspace or replaced module.
func moduleVersion(path string) string {
	if path == "" {
		return ""
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return "(devel)"
			}
			return d.Version
		}
	}
	return "(devel)"
}

// us and ms convert durations to rounded float microseconds and
// milliseconds for the JSON line.
func us(d time.Duration) float64 { return round3(float64(d) / 1e3) }
func ms(d time.Duration) float64 { return round3(float64(d) / 1e6) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// setLookups copies the latency summary of l into r.
func (r *Result) setLookups(l *Latency) {
	r.Lookups = l.Count()
	r.LookupAvgUs = us(l.Mean())
	r.LookupP50Us = us(l.Quantile(0.50))
	r.LookupP99Us = us(l.Quantile(0.99))
	r.LookupP999Us = us(l.Quantile(0.999))
	r.LookupMaxUs = us(l.Max())
}

// setBatches copies the per-batch commit latency summary of l into r.
func (r *Result) setBatches(l *Latency) {
	r.BatchP50Ms = ms(l.Quantile(0.50))
	r.BatchP99Ms = ms(l.Quantile(0.99))
	r.BatchMaxMs = ms(l.Max())
}
