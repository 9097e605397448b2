package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// intSetting is one integer runtime setting served at /config/<name>: GET
// answers {"<name>": n}; PUT takes the same body, checks [min, max] (422
// outside) and sets it.
type intSetting struct {
	name     string // JSON field and path segment
	min, max int
	get      func() (int, bool) // false when the setting is not available
	set      func(int) error
}

func (h *handler) settings() []intSetting {
	return []intSetting{
		{
			name: "promotion_threshold", min: MinPromotionThreshold, max: MaxPromotionThreshold,
			get: func() (int, bool) {
				if h.deps.Promotion == nil {
					return 0, false
				}
				return h.deps.Promotion.PromotionThreshold(), true
			},
			set: func(n int) error { return h.deps.Promotion.SetPromotionThreshold(n) },
		},
		{
			name: "batch_size", min: MinBatchSize, max: MaxBatchSize,
			get: func() (int, bool) {
				if h.deps.BatchSize == nil {
					return 0, false
				}
				return h.deps.BatchSize.BatchSize(), true
			},
			set: func(n int) error { return h.deps.BatchSize.SetBatchSize(n) },
		},
	}
}

func (h *handler) getSetting(s intSetting) gin.HandlerFunc {
	return func(c *gin.Context) {
		n, ok := s.get()
		if !ok {
			abort(c, http.StatusServiceUnavailable, s.name+" is not available")
			return
		}
		c.JSON(http.StatusOK, gin.H{s.name: n})
	}
}

func (h *handler) putSetting(s intSetting) gin.HandlerFunc {
	return func(c *gin.Context) {
		var body map[string]json.RawMessage
		if !decodeBody(c, &body) {
			return
		}
		for k := range body {
			if k != s.name {
				abort(c, http.StatusBadRequest, fmt.Sprintf("malformed JSON body: unknown field %q", k))
				return
			}
		}
		raw := body[s.name]
		if len(raw) == 0 || string(raw) == "null" {
			abort(c, http.StatusBadRequest, "missing field "+s.name)
			return
		}
		n, code, msg := s.parse(raw)
		if code != 0 {
			abort(c, code, msg)
			return
		}
		if _, ok := s.get(); !ok {
			abort(c, http.StatusServiceUnavailable, s.name+" is not available")
			return
		}
		if err := s.set(n); err != nil {
			h.abortErr(c, "set "+s.name, err)
			return
		}
		h.log.Info("rest: setting changed", s.name, n, "client", c.RemoteIP())
		c.JSON(http.StatusOK, gin.H{s.name: n})
	}
}

// parse checks a PUT's number: an integer, written with or without a
// fraction or exponent (64, 64.0, 6.4e1: JSON Schema's integer), in
// [min, max]. Outside the range, however large, is 422 (PROTOCOL.md §2);
// a number with a fractional part is mistyped, 400. code is 0 when n is
// valid.
func (s intSetting) parse(raw json.RawMessage) (n, code int, msg string) {
	if c := raw[0]; c != '-' && (c < '0' || c > '9') { // a string, bool, array or object
		return 0, http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %s %s is not a number", s.name, raw)
	}
	num := json.Number(raw) // valid: the decoder checked the syntax
	outside := func() (int, int, string) {
		return 0, http.StatusUnprocessableEntity, fmt.Sprintf("%s %s not in [%d, %d]", s.name, num, s.min, s.max)
	}
	if i, err := num.Int64(); err == nil {
		if i < int64(s.min) || i > int64(s.max) {
			return outside()
		}
		return int(i), 0, ""
	}
	f, err := num.Float64() // an integer literal past int64, or with a fraction or exponent
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %s %s is not a number", s.name, num)
	}
	if err == nil && f != math.Trunc(f) {
		return 0, http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %s %s is not an integer", s.name, num)
	}
	if err != nil || f < float64(s.min) || f > float64(s.max) {
		return outside()
	}
	return int(f), 0, ""
}

// decodeBody decodes exactly one JSON object with known fields into v. On
// failure it has answered 400 (malformed, mistyped, unknown field, trailing
// data) or 413 (body too large) and returns false.
func decodeBody(c *gin.Context, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			abort(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
			return false
		}
		abort(c, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		abort(c, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		abort(c, http.StatusBadRequest, "malformed JSON body: trailing data")
		return false
	}
	return true
}
