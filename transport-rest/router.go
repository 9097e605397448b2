package restapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/cidstore/cidstore/core/port"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config, applied by EnsureDefaults.
const (
	DefaultRateLimit  = 100.0 // requests per second per client IP
	DefaultRateBurst  = 200
	DefaultMaxClients = 10000
	// MaxBodyBytes bounds a PUT body; the largest valid one is a few dozen bytes.
	MaxBodyBytes = 4096
)

// Limits of the tunable settings (PROTOCOL.md §2).
const (
	MinPromotionThreshold = 1
	MaxPromotionThreshold = 2
	MinBatchSize          = 32
	MaxBatchSize          = 1024
)

// Config holds the security and rate-limit settings of the handler. The zero
// value is valid: admin PUTs disabled, debug for loopback only, default rate
// limits.
type Config struct {
	// JWTSecret is the HS256 key of admin tokens. Empty disables every PUT
	// endpoint (403).
	JWTSecret []byte
	// JWTLeeway is the clock skew tolerated on exp/nbf/iat. Default 0.
	JWTLeeway time.Duration
	// DebugAllow lists the networks allowed to call /debug/. Default (nil):
	// loopback only, 127.0.0.0/8 and ::1/128. ParseAllowList builds it from
	// text.
	DebugAllow []netip.Prefix
	// RateLimit is the sustained requests per second allowed per client IP.
	// Default DefaultRateLimit; negative disables rate limiting.
	RateLimit float64
	// RateBurst is the bucket size of the per-client limiter. Default
	// DefaultRateBurst.
	RateBurst int
	// MaxClients bounds the number of client IPs tracked by the limiter.
	// Default DefaultMaxClients.
	MaxClients int
	// Now returns the current time, for token expiry and the limiter.
	// Default time.Now; tests substitute a fixed clock.
	Now func() time.Time
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.DebugAllow == nil {
		c.DebugAllow = []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		}
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.RateLimit > 0 && c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("restapi: rate burst %d < 1", c.RateBurst))
	}
	if c.MaxClients < 1 {
		errs = append(errs, fmt.Errorf("restapi: max clients %d < 1", c.MaxClients))
	}
	if c.JWTLeeway < 0 {
		errs = append(errs, fmt.Errorf("restapi: jwt leeway %v < 0", c.JWTLeeway))
	}
	return errors.Join(errs...)
}

// PromotionThreshold reads and sets the store's promotion threshold.
// *cidstore.Store satisfies it. Set may return ErrOutOfRange,
// ErrUnavailable or port.ErrReadOnly.
type PromotionThreshold interface {
	PromotionThreshold() int
	SetPromotionThreshold(n int) error
}

// BatchSize reads and sets the batch-size tuner's current value. Set may
// return ErrOutOfRange or ErrUnavailable.
type BatchSize interface {
	BatchSize() int
	SetBatchSize(n int) error
}

// Buckets describes buckets for /debug/bucket/{id}. BucketInfo returns
// port.ErrNotFound for an id that names no live bucket and ErrUnavailable
// when the store is not open.
type Buckets interface {
	BucketInfo(id uint32) (BucketInfo, error)
}

// BucketInfo is the debug view of one bucket.
type BucketInfo struct {
	ID            uint32
	LocalDepth    int
	EntryCount    int
	SortedCount   int
	SpilledKeys   int
	LastCompacted time.Time // zero if never
	ChecksumOK    bool
	DangerScore   float64   // maintenance danger score in [0, 1]
	LastMerge     time.Time // last maintenance pass; zero if never
}

// Deps are the ports the handler uses. A nil field makes its endpoints
// answer 503 (Ready: never ready; Gatherer: empty registry).
type Deps struct {
	// Ready reports whether the store is open and recovered and the data
	// plane is bound. It must be fast and safe for concurrent use.
	Ready func() bool
	// Gatherer is served on /metrics; the app's own registry, never the
	// global one.
	Gatherer prometheus.Gatherer
	// Promotion backs /config/promotion_threshold.
	Promotion PromotionThreshold
	// BatchSize backs /config/batch_size.
	BatchSize BatchSize
	// Buckets backs /debug/bucket/{id}.
	Buckets Buckets
	// Logger receives internal errors and recovered panics. Default: discard.
	Logger port.Logger
}

// handler holds the state shared by the route handlers.
type handler struct {
	cfg     Config
	deps    Deps
	log     port.Logger
	limiter *limiter
}

// New returns the control-plane handler. cfg is copied and defaulted; an
// invalid cfg is an error. The engine runs in whatever gin mode the process
// chose (gin.SetMode); the binary uses release mode.
func New(cfg Config, deps Deps) (*gin.Engine, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, deps: deps, log: deps.Logger}
	if h.log == nil {
		h.log = port.NopLogger{}
	}
	if cfg.RateLimit > 0 {
		h.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst, cfg.MaxClients, cfg.Now)
	}

	e := gin.New()
	// Client identity is the TCP peer: forwarding headers are not trusted,
	// so neither the allow-list nor the limiter can be fooled by them.
	if err := e.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("restapi: set trusted proxies: %w", err)
	}
	e.HandleMethodNotAllowed = true
	e.Use(h.recover, h.rateLimit)
	e.NoRoute(func(c *gin.Context) { abort(c, http.StatusNotFound, "no such endpoint") })
	e.NoMethod(func(c *gin.Context) { abort(c, http.StatusMethodNotAllowed, "method not allowed") })

	e.GET("/health", h.health)
	e.GET("/ready", h.ready)
	e.GET("/metrics", h.metrics())
	for _, s := range h.settings() {
		e.GET("/config/"+s.name, h.getSetting(s))
		e.PUT("/config/"+s.name, h.requireAdmin, h.putSetting(s))
	}
	e.GET("/debug/bucket/:id", h.debugAllowed, h.debugBucket)
	return e, nil
}

// recover turns a panic in a handler into a logged 500. http.ErrAbortHandler
// is re-raised: it is net/http's way to abort a response on purpose.
func (h *handler) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			h.log.Error("rest: panic", "path", c.Request.URL.Path, "panic", fmt.Sprint(r))
			abort(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

// clientAddr is the caller's TCP peer address, unmapped from IPv4-in-IPv6.
func clientAddr(c *gin.Context) (netip.Addr, bool) {
	a, err := netip.ParseAddr(c.RemoteIP())
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
