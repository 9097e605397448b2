package restapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// health answers while the process lives: liveness, not readiness.
func (h *handler) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// ready answers 200 once the store is open and recovered and the data plane
// is bound, 503 before that and while shutting down.
func (h *handler) ready(c *gin.Context) {
	if h.deps.Ready == nil || !h.deps.Ready() {
		abort(c, http.StatusServiceUnavailable, "not ready")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
