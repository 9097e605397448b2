package restapi

import (
	"fmt"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics serves deps.Gatherer in the Prometheus text format (PROTOCOL.md
// §2), or in Prometheus's protobuf format to a scraper whose Accept header
// asks for it (promhttp's content negotiation; OpenMetrics is not offered).
// A collector failing is reported in the log and the remaining metrics are
// still served.
func (h *handler) metrics() gin.HandlerFunc {
	g := h.deps.Gatherer
	if g == nil {
		g = prometheus.NewRegistry()
	}
	ph := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLogger{h},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return gin.WrapH(ph)
}

// promLogger adapts the handler's logger to promhttp.Logger.
type promLogger struct{ h *handler }

func (l promLogger) Println(v ...any) {
	l.h.log.Error("rest: metrics", "err", fmt.Sprint(v...))
}
