package restapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// ParseAllowList parses a comma-separated list of CIDR prefixes or bare IP
// addresses ("127.0.0.0/8, ::1, 10.1.2.3") for Config.DebugAllow. An empty
// string gives an empty, non-nil list: nobody is allowed.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("restapi: allow-list entry %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("restapi: allow-list entry %q: %w", f, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// debugAllowed lets the request through only from an allowed address.
func (h *handler) debugAllowed(c *gin.Context) {
	addr, ok := clientAddr(c)
	if ok {
		for _, p := range h.cfg.DebugAllow {
			if p.Contains(addr) {
				c.Next()
				return
			}
		}
	}
	abort(c, http.StatusForbidden, "debug endpoints are not allowed from this address")
}

// bucketBody is the JSON form of BucketInfo.
type bucketBody struct {
	ID            uint32     `json:"id"`
	LocalDepth    int        `json:"local_depth"`
	EntryCount    int        `json:"entry_count"`
	SortedCount   int        `json:"sorted_count"`
	SpilledKeys   int        `json:"spilled_keys"`
	ChecksumOK    bool       `json:"checksum_ok"`
	LastCompacted *time.Time `json:"last_compacted"` // null if never
	DangerScore   float64    `json:"danger_score"`   // maintenance danger score in [0, 1]
	LastMerge     *time.Time `json:"last_merge"`     // last maintenance pass; null if never
}

func (h *handler) debugBucket(c *gin.Context) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		abort(c, http.StatusBadRequest, fmt.Sprintf("bucket id %q is not a uint32", c.Param("id")))
		return
	}
	if h.deps.Buckets == nil {
		abort(c, http.StatusServiceUnavailable, "bucket info is not available")
		return
	}
	bi, err := h.deps.Buckets.BucketInfo(uint32(id))
	if err != nil {
		h.abortErr(c, fmt.Sprintf("bucket %d", id), err)
		return
	}
	b := bucketBody{
		ID:          bi.ID,
		LocalDepth:  bi.LocalDepth,
		EntryCount:  bi.EntryCount,
		SortedCount: bi.SortedCount,
		SpilledKeys: bi.SpilledKeys,
		ChecksumOK:  bi.ChecksumOK,
		DangerScore: bi.DangerScore,
	}
	if !bi.LastCompacted.IsZero() {
		t := bi.LastCompacted.UTC()
		b.LastCompacted = &t
	}
	if !bi.LastMerge.IsZero() {
		t := bi.LastMerge.UTC()
		b.LastMerge = &t
	}
	c.JSON(http.StatusOK, b)
}
