package app

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
	restapi "github.com/cidstore/cidstore/transport-rest"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable of a setting.
const EnvPrefix = "CIDSTORE_"

// Config is the resolved configuration of the binary. Load builds it from
// flags, environment and an optional YAML file; see settings for every
// field's key, default and meaning.
type Config struct {
	ConfigFile string // YAML file the settings were read from, "" if none

	DataDir        string
	Role           string // "writer" or "reader"
	Backend        string // "hdf5" or "mem"
	RouterEndpoint string
	PullEndpoint   string // "" = off
	PubEndpoint    string // "" = off
	RESTAddr       string

	JWTSecret     []byte // "" = admin PUTs disabled
	JWTSecretFile string

	Sync               cidstore.SyncPolicy
	SyncInterval       time.Duration
	CheckpointInterval time.Duration
	MaintenanceEvery   time.Duration
	GCEvery            time.Duration
	ReaderRefresh      time.Duration // 0 = ReaderRefreshInterval's default
	CacheBytes         int64
	WALSizeBytes       int64
	PromotionThreshold int
	BatchSize          int
	AutoTune           bool
	AutoTuneMode       autotune.Mode

	LogLevel  zapcore.Level
	LogFormat string // "auto", "json" or "console"

	DebugAllow []netip.Prefix
	RateLimit  float64 // requests/s per client IP; 0 = off
	RateBurst  int

	MaxFrameBytes   int
	MaxBatchEntries int
	QueueDepth      int
	Workers         int

	StartTimeout    time.Duration
	ShutdownTimeout time.Duration

	Endpoint      string // ROUTER endpoint the CLI connects to
	ClientTimeout time.Duration
	ImportBatch   int
}

// Setting is one row of the settings table: every setting has a YAML key,
// a flag (--key with '_' turned into '-') and an environment variable
// (CIDSTORE_ + upper-case key).
type Setting struct {
	Key     string
	Default string
	Usage   string
	set     func(c *Config, v string) error
}

// Flag is the command-line flag of s, without dashes.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Env is the environment variable of s.
func (s Setting) Env() string { return EnvPrefix + strings.ToUpper(s.Key) }

// emptyMeansOff lists the settings whose empty value switches something
// off: an environment variable set to the empty string sets them (Load).
var emptyMeansOff = map[string]bool{"pull_endpoint": true, "pub_endpoint": true, "jwt_secret": true}

// configKey is the setting naming the YAML file; it cannot be set in the file.
const configKey = "config"

// Settings returns the table of every setting, in documentation order.
func Settings() []Setting {
	return []Setting{
		{configKey, "", "YAML settings file (keys as in this table)", func(c *Config, v string) error {
			c.ConfigFile = v
			return nil
		}},
		{"data_dir", "./data", "directory holding the store file(s)", str(func(c *Config) *string { return &c.DataDir })},
		{"role", "writer", "writer, or reader: a read-only replica of the writer's HDF5 file in data_dir (GET and METRICS; mutations answer 503)", func(c *Config, v string) error {
			if v != "writer" && v != "reader" {
				return fmt.Errorf("role %q: want writer or reader", v)
			}
			c.Role = v
			return nil
		}},
		{"backend", "hdf5", "storage backend: hdf5 (data_dir/cidstore.h5) or mem (snapshot file data_dir/cidstore.snapshot, rewritten whole at every checkpoint); role reader needs hdf5", func(c *Config, v string) error {
			if v != "hdf5" && v != "mem" {
				return fmt.Errorf("backend %q: want hdf5 or mem", v)
			}
			c.Backend = v
			return nil
		}},
		{"router_endpoint", "tcp://127.0.0.1:5558", "ZeroMQ ROUTER bind (request/reply)", str(func(c *Config) *string { return &c.RouterEndpoint })},
		{"pull_endpoint", "tcp://127.0.0.1:5557", "ZeroMQ PULL bind (fire-and-forget mutations); empty = off", str(func(c *Config) *string { return &c.PullEndpoint })},
		{"pub_endpoint", "", "ZeroMQ PUB bind (change notifications); empty = off", str(func(c *Config) *string { return &c.PubEndpoint })},
		{"rest_addr", "127.0.0.1:8000", "REST control-plane listen address", str(func(c *Config) *string { return &c.RESTAddr })},
		{"jwt_secret", "", "HS256 secret of admin JWTs; empty (and no jwt_secret_file) = admin PUTs disabled", func(c *Config, v string) error {
			c.JWTSecret = []byte(v)
			return nil
		}},
		{"jwt_secret_file", "", "file holding the admin JWT secret (alternative to jwt_secret)", str(func(c *Config) *string { return &c.JWTSecretFile })},
		{"sync", "always", "WAL sync policy: always, interval or none", func(c *Config, v string) error {
			p, err := cidstore.ParseSyncPolicy(v)
			if err != nil || v == "" {
				return fmt.Errorf("sync %q: want always, interval or none", v)
			}
			c.Sync = p
			return nil
		}},
		{"sync_interval", "100ms", "WAL sync period when sync=interval", dur(func(c *Config) *time.Duration { return &c.SyncInterval })},
		{"maintenance_interval", "100ms", "period of the background maintenance scheduler (tail merges, value-set compaction, demotion, buddy merges); 0 turns it off", dur(func(c *Config) *time.Duration { return &c.MaintenanceEvery })},
		{"gc_interval", "1m", "period of background garbage collection of lost frees (the first pass, one period after start, and every 10th scan the whole file); 0 turns it off", dur(func(c *Config) *time.Duration { return &c.GCEvery })},
		{"checkpoint_interval", "5s", "time between checkpoints (readers see a write after the next one)", dur(func(c *Config) *time.Duration { return &c.CheckpointInterval })},
		{"reader_refresh", "", "how often role reader looks for a new checkpoint of the writer; empty = min(checkpoint_interval, 1s)", func(c *Config, v string) error {
			if v == "" {
				c.ReaderRefresh = 0
				return nil
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%q is not a positive duration (like 500ms)", v)
			}
			c.ReaderRefresh = d
			return nil
		}},
		{"cache_bytes", "1GiB", "memory budget for buckets and value sets held in memory (clean ones are evicted past it and read again on demand); with hdf5 a sixteenth of it, at most 64MiB, goes to the HDF5 library's caches and an eighth, at most 256MiB, to h5store's index pages; the mem backend keeps its whole snapshot in memory besides; a reader loads everything and ignores it", size(func(c *Config) *int64 { return &c.CacheBytes })},
		{"wal_size", "128MiB", "WAL file size, fixed when the WAL is created", size(func(c *Config) *int64 { return &c.WALSizeBytes })},
		{"promotion_threshold", "2", "values kept inline per key before spilling, 1..2 (runtime: PUT /config/promotion_threshold)", integer(func(c *Config) *int { return &c.PromotionThreshold })},
		{"batch_size", "256", "initial (and circuit-breaker safe) batch size of the write batcher, which groups concurrent single-pair mutations into one WAL transaction, 32..1024 (runtime: PUT /config/batch_size)", integer(func(c *Config) *int { return &c.BatchSize })},
		{"auto_tune", "true", "auto-tune the write batcher's batch size and flush interval (DESIGN.md §8); false = keep batch_size (and PUT values) and a 100µs flush interval", boolean(func(c *Config) *bool { return &c.AutoTune })},
		{"auto_tune_mode", "hybrid", "auto-tuner operating point: throughput (larger groups, p99 batching delay ≤125µs), latency (≤50µs) or hybrid (≤100µs)", func(c *Config, v string) error {
			m, err := autotune.ParseMode(v)
			if err != nil {
				return fmt.Errorf("auto tune mode %q: want throughput, latency or hybrid", v)
			}
			c.AutoTuneMode = m
			return nil
		}},
		{"log_level", "info", "log level: debug, info, warn or error", func(c *Config, v string) error {
			l, err := zapcore.ParseLevel(v)
			if err != nil {
				return fmt.Errorf("log level %q: %w", v, err)
			}
			c.LogLevel = l
			return nil
		}},
		{"log_format", "auto", "log format: auto (console on a terminal, else JSON), json or console", func(c *Config, v string) error {
			if v != "auto" && v != "json" && v != "console" {
				return fmt.Errorf("log format %q: want auto, json or console", v)
			}
			c.LogFormat = v
			return nil
		}},
		{"debug_allow", "127.0.0.0/8,::1/128", "comma-separated CIDRs/IPs allowed to call /debug/; none = nobody", func(c *Config, v string) error {
			if v == "none" {
				v = ""
			}
			p, err := restapi.ParseAllowList(v)
			if err != nil {
				return err
			}
			c.DebugAllow = p
			return nil
		}},
		{"rate_limit", "100", "REST requests per second per client IP; 0 = unlimited", func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("rate limit %q: want a number >= 0", v)
			}
			c.RateLimit = f
			return nil
		}},
		{"rate_burst", "200", "REST rate-limit burst per client IP", integer(func(c *Config) *int { return &c.RateBurst })},
		{"max_frame_bytes", "16MiB", "largest ZeroMQ frame accepted", func(c *Config, v string) error {
			n, err := parseBytes(v)
			if err != nil || n > 1<<31-1 {
				return fmt.Errorf("max frame bytes %q: want a size below 2GiB", v)
			}
			c.MaxFrameBytes = int(n)
			return nil
		}},
		{"max_batch_entries", "100000", "most entries in one BATCH_* request", integer(func(c *Config) *int { return &c.MaxBatchEntries })},
		{"queue_depth", "1024", "ROUTER requests in flight before answering 503 overloaded", integer(func(c *Config) *int { return &c.QueueDepth })},
		{"zmq_workers", "4", "goroutines executing ROUTER requests (-1 = inline)", integer(func(c *Config) *int { return &c.Workers })},
		{"start_timeout", "5m", "longest startup (store open and WAL recovery included)", dur(func(c *Config) *time.Duration { return &c.StartTimeout })},
		{"shutdown_timeout", "30s", "longest graceful shutdown (drain, final checkpoint, close)", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"endpoint", "", "ROUTER endpoint the CLI commands connect to; empty = derived from router_endpoint", str(func(c *Config) *string { return &c.Endpoint })},
		{"client_timeout", "10s", "CLI request timeout", dur(func(c *Config) *time.Duration { return &c.ClientTimeout })},
		{"import_batch", "1000", "pairs per BATCH_INSERT request of the import command", integer(func(c *Config) *int { return &c.ImportBatch })},
	}
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func integer(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*field(c) = n
		return nil
	}
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
		*field(c) = b
		return nil
	}
}

func dur(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 5s or 100ms)", v)
		}
		*field(c) = d
		return nil
	}
}

func size(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := parseBytes(v)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

// parseBytes parses a byte count: a plain integer or one with a unit, binary
// (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB), B allowed.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is not a byte size (like 1073741824, 64MiB or 1GiB)", s)
	}
	return n * mult, nil
}

// Sources are the inputs of Load besides the defaults, in increasing
// precedence: the YAML file, the environment, the flags.
type Sources struct {
	// Flags holds the settings given on the command line, by key.
	Flags map[string]string
	// LookupEnv reads the environment; default os.LookupEnv. A variable set
	// to the empty string counts as unset, so that an empty CIDSTORE_X in a
	// container spec never overrides the file or the default — except for
	// the settings whose empty value switches something off (emptyMeansOff):
	// CIDSTORE_PULL_ENDPOINT= turns the PULL socket off, as PROTOCOL.md §4
	// and the settings table say "empty = off".
	LookupEnv func(string) (string, bool)
	// ReadFile reads the YAML file and the JWT secret file; default os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// Load resolves every setting: flag, else environment variable, else YAML
// file, else default. It reports every bad setting at once, each naming the
// source it came from.
func Load(src Sources) (Config, error) {
	if src.LookupEnv == nil {
		src.LookupEnv = os.LookupEnv
	}
	if src.ReadFile == nil {
		src.ReadFile = os.ReadFile
	}
	env := func(s Setting) (string, bool) {
		v, ok := src.LookupEnv(s.Env())
		return v, ok && (v != "" || emptyMeansOff[s.Key])
	}
	table := Settings()

	var cfg Config
	var errs []error
	// The file's path itself is a flag or an environment variable.
	var file map[string]string
	path, ok := src.Flags[configKey]
	if !ok {
		path, _ = env(table[0])
	}
	if path != "" {
		var err error
		if file, err = readConfigFile(path, src.ReadFile); err != nil {
			return Config{}, err
		}
	}
	for _, s := range table {
		v, from := s.Default, "default"
		if fv, ok := file[s.Key]; ok {
			v, from = fv, "file "+path
		}
		if ev, ok := env(s); ok {
			v, from = ev, "environment "+s.Env()
		}
		if fv, ok := src.Flags[s.Key]; ok {
			v, from = fv, "flag --"+s.Flag()
		}
		if err := s.set(&cfg, v); err != nil {
			errs = append(errs, fmt.Errorf("setting %s (from %s): %w", s.Key, from, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if cfg.JWTSecretFile != "" {
		if len(cfg.JWTSecret) > 0 {
			return Config{}, errors.New("settings jwt_secret and jwt_secret_file are both set; set one")
		}
		b, err := src.ReadFile(cfg.JWTSecretFile)
		if err != nil {
			return Config{}, fmt.Errorf("read jwt_secret_file: %w", err)
		}
		cfg.JWTSecret = bytes.TrimSpace(b)
		if len(cfg.JWTSecret) == 0 {
			return Config{}, fmt.Errorf("jwt_secret_file %s is empty", cfg.JWTSecretFile)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readConfigFile reads a YAML map of setting keys to scalars (a list is
// allowed for debug_allow and joined with commas). Unknown keys are errors,
// so that a misspelt setting does not go unnoticed.
func readConfigFile(path string, read func(string) ([]byte, error)) (map[string]string, error) {
	b, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, s := range Settings() {
		known[s.Key] = s.Key != configKey
	}
	out := make(map[string]string, len(raw))
	var errs []error
	for k, v := range raw {
		if !known[k] {
			errs = append(errs, fmt.Errorf("config file %s: unknown setting %q", path, k))
			continue
		}
		s, err := yamlScalar(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("config file %s: setting %s: %w", path, k, err))
			continue
		}
		out[k] = s
	}
	sortErrors(errs)
	return out, errors.Join(errs...)
}

func yamlScalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := yamlScalar(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("value of type %T: want a scalar or a list", v)
}

// sortErrors orders errors by message, so that map iteration order does not
// show in what the user reads.
func sortErrors(errs []error) {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if c.RouterEndpoint == "" {
		bad("router_endpoint is empty")
	}
	if c.RESTAddr == "" {
		bad("rest_addr is empty")
	}
	if c.SyncInterval <= 0 {
		bad("sync_interval %v must be > 0", c.SyncInterval)
	}
	if c.CheckpointInterval <= 0 {
		bad("checkpoint_interval %v must be > 0", c.CheckpointInterval)
	}
	if c.MaintenanceEvery < 0 || c.GCEvery < 0 {
		bad("maintenance_interval %v and gc_interval %v must be >= 0", c.MaintenanceEvery, c.GCEvery)
	}
	if c.Role == "reader" && c.Backend != "hdf5" {
		bad("role reader needs backend hdf5 (it opens the writer's HDF5 file read-only), not %s", c.Backend)
	}
	if c.ReaderRefresh < 0 {
		bad("reader_refresh %v must be > 0", c.ReaderRefresh)
	}
	if c.WALSizeBytes <= 0 {
		bad("wal_size %d must be > 0", c.WALSizeBytes)
	}
	if c.PromotionThreshold < restapi.MinPromotionThreshold || c.PromotionThreshold > restapi.MaxPromotionThreshold {
		bad("promotion_threshold %d not in [%d, %d]", c.PromotionThreshold, restapi.MinPromotionThreshold, restapi.MaxPromotionThreshold)
	}
	if c.BatchSize < restapi.MinBatchSize || c.BatchSize > restapi.MaxBatchSize {
		bad("batch_size %d not in [%d, %d]", c.BatchSize, restapi.MinBatchSize, restapi.MaxBatchSize)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		bad("rate_burst %d must be >= 1", c.RateBurst)
	}
	if c.MaxBatchEntries < 1 {
		bad("max_batch_entries %d must be >= 1", c.MaxBatchEntries)
	}
	if c.QueueDepth < 1 {
		bad("queue_depth %d must be >= 1", c.QueueDepth)
	}
	if c.StartTimeout <= 0 {
		bad("start_timeout %v must be > 0", c.StartTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout %v must be > 0", c.ShutdownTimeout)
	}
	if c.ClientTimeout <= 0 {
		bad("client_timeout %v must be > 0", c.ClientTimeout)
	}
	if c.ImportBatch < 1 || c.ImportBatch > c.MaxBatchEntries {
		bad("import_batch %d not in [1, max_batch_entries=%d]", c.ImportBatch, c.MaxBatchEntries)
	}
	return errors.Join(errs...)
}

// H5Path is the HDF5 backend's store file in DataDir; its lock file and
// any segment files sit next to it (cidstore.h5.*).
func (c *Config) H5Path() string { return filepath.Join(c.DataDir, "cidstore.h5") }

// ReaderRefreshInterval is how often role reader polls the writer's file:
// ReaderRefresh if set, else CheckpointInterval capped at 1s (a poll that
// finds no new checkpoint reads one commit record).
func (c *Config) ReaderRefreshInterval() time.Duration {
	if c.ReaderRefresh > 0 {
		return c.ReaderRefresh
	}
	return min(c.CheckpointInterval, time.Second)
}

// SnapshotPath is the memory backend's snapshot file in DataDir.
func (c *Config) SnapshotPath() string { return filepath.Join(c.DataDir, "cidstore.snapshot") }

// WALPath is the write-ahead log file in DataDir.
func (c *Config) WALPath() string { return filepath.Join(c.DataDir, "cidstore.wal") }

// ClientEndpoint is the ROUTER endpoint CLI commands connect to: Endpoint
// if set, else RouterEndpoint with a wildcard host replaced by loopback.
func (c *Config) ClientEndpoint() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	e := c.RouterEndpoint
	for _, wild := range []string{"://*:", "://0.0.0.0:"} {
		e = strings.Replace(e, wild, "://127.0.0.1:", 1)
	}
	return strings.Replace(e, "://[::]:", "://[::1]:", 1)
}

// flagValue records a flag's raw text and whether it was given.
type flagValue struct {
	v   string
	set bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(s string) error { f.v, f.set = s, true; return nil }

// Flags registers a flag for every setting on fs and returns a function
// that reports, after fs.Parse, the settings given on the command line.
func Flags(fs *flag.FlagSet) func() map[string]string {
	vals := map[string]*flagValue{}
	for _, s := range Settings() {
		v := &flagValue{v: s.Default}
		vals[s.Key] = v
		fs.Var(v, s.Flag(), fmt.Sprintf("%s (env %s)", s.Usage, s.Env()))
	}
	return func() map[string]string {
		out := map[string]string{}
		for k, v := range vals {
			if v.set {
				out[k] = v.v
			}
		}
		return out
	}
}

// PrintSettings writes the settings table in Markdown: flag, environment
// variable, default and meaning.
func PrintSettings(w io.Writer) {
	fmt.Fprintln(w, "| flag | environment variable | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, s := range Settings() {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "empty"
		}
		fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", s.Flag(), s.Env(), def, s.Usage)
	}
}
