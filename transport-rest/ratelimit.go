package restapi

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// limiter is a set of per-client token buckets. It tracks at most max
// clients: when full it first drops clients idle long enough for their
// bucket to have refilled (forgetting them changes nothing), and if none is,
// one arbitrary client, which merely hands that client a fresh bucket.
type limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	max     int
	refill  time.Duration // time for an empty bucket to fill up
	now     func() time.Time
	clients map[netip.Addr]*client
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst, max int, now func() time.Time) *limiter {
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &limiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		max:     max,
		refill:  refill,
		now:     now,
		clients: make(map[netip.Addr]*client),
	}
}

// allow takes one token for addr. When there is none it returns false and
// the time until the next token.
func (l *limiter) allow(addr netip.Addr) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[addr]
	if !ok {
		if len(l.clients) >= l.max {
			l.evict(now)
		}
		c = &client{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[addr] = c
	}
	c.seen = now
	if c.lim.AllowN(now, 1) {
		return true, 0
	}
	r := c.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// evict makes room for one client. Called with l.mu held.
func (l *limiter) evict(now time.Time) {
	for a, c := range l.clients {
		if now.Sub(c.seen) >= l.refill {
			delete(l.clients, a)
		}
	}
	if len(l.clients) < l.max {
		return
	}
	for a := range l.clients {
		delete(l.clients, a)
		return
	}
}

// rateLimit is the middleware enforcing the per-client limit.
func (h *handler) rateLimit(c *gin.Context) {
	if h.limiter == nil {
		c.Next()
		return
	}
	addr, ok := clientAddr(c)
	if !ok {
		// Not a TCP peer (a unix socket, or a test calling ServeHTTP
		// directly): all such callers share one bucket.
		addr = netip.IPv6Unspecified()
	}
	if ok, wait := h.limiter.allow(addr); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.Header("Retry-After", strconv.Itoa(secs))
		abort(c, http.StatusTooManyRequests, "rate limit exceeded")
		return
	}
	c.Next()
}
