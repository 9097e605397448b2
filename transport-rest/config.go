package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// promotionBody is the body of GET/PUT /config/promotion_threshold.
type promotionBody struct {
	PromotionThreshold *int `json:"promotion_threshold"`
}

// batchSizeBody is the body of GET/PUT /config/batch_size.
type batchSizeBody struct {
	BatchSize *int `json:"batch_size"`
}

func (h *handler) getPromotion(c *gin.Context) {
	if h.deps.Promotion == nil {
		abort(c, http.StatusServiceUnavailable, "promotion threshold is not available")
		return
	}
	n := h.deps.Promotion.PromotionThreshold()
	c.JSON(http.StatusOK, promotionBody{PromotionThreshold: &n})
}

func (h *handler) putPromotion(c *gin.Context) {
	var b promotionBody
	if !decodeBody(c, &b) {
		return
	}
	if b.PromotionThreshold == nil {
		abort(c, http.StatusBadRequest, "missing field promotion_threshold")
		return
	}
	n := *b.PromotionThreshold
	if n < MinPromotionThreshold || n > MaxPromotionThreshold {
		abort(c, http.StatusUnprocessableEntity, fmt.Sprintf(
			"promotion_threshold %d not in [%d, %d]", n, MinPromotionThreshold, MaxPromotionThreshold))
		return
	}
	if h.deps.Promotion == nil {
		abort(c, http.StatusServiceUnavailable, "promotion threshold is not available")
		return
	}
	if err := h.deps.Promotion.SetPromotionThreshold(n); err != nil {
		h.abortErr(c, "set promotion_threshold", err)
		return
	}
	h.log.Info("rest: promotion threshold set", "promotion_threshold", n, "client", c.RemoteIP())
	c.JSON(http.StatusOK, promotionBody{PromotionThreshold: &n})
}

func (h *handler) getBatchSize(c *gin.Context) {
	if h.deps.BatchSize == nil {
		abort(c, http.StatusServiceUnavailable, "batch size is not available")
		return
	}
	n := h.deps.BatchSize.BatchSize()
	c.JSON(http.StatusOK, batchSizeBody{BatchSize: &n})
}

func (h *handler) putBatchSize(c *gin.Context) {
	var b batchSizeBody
	if !decodeBody(c, &b) {
		return
	}
	if b.BatchSize == nil {
		abort(c, http.StatusBadRequest, "missing field batch_size")
		return
	}
	n := *b.BatchSize
	if n < MinBatchSize || n > MaxBatchSize {
		abort(c, http.StatusUnprocessableEntity, fmt.Sprintf(
			"batch_size %d not in [%d, %d]", n, MinBatchSize, MaxBatchSize))
		return
	}
	if h.deps.BatchSize == nil {
		abort(c, http.StatusServiceUnavailable, "batch size is not available")
		return
	}
	if err := h.deps.BatchSize.SetBatchSize(n); err != nil {
		h.abortErr(c, "set batch_size", err)
		return
	}
	h.log.Info("rest: batch size set", "batch_size", n, "client", c.RemoteIP())
	c.JSON(http.StatusOK, batchSizeBody{BatchSize: &n})
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
