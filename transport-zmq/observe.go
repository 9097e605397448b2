package zmqserver

// Observer receives the server's measurements; the application turns them
// into Prometheus metrics (for example cidstore_zmq_requests_total{op,code},
// cidstore_zmq_request_duration_seconds{op}, cidstore_zmq_rejected_total
// {socket,code}, cidstore_zmq_dropped_total{socket},
// cidstore_zmq_queue_depth, cidstore_zmq_notifications_total).
//
// Methods are called from the server's socket and worker goroutines, often
// concurrently, on the request path: they must be fast, must not block and
// must be safe for concurrent use. Label values are bounded: op is one of the
// canonical op_codes of PROTOCOL.md §1.2 (aliases are reported under their
// canonical name) or "unknown"; socket is "router", "pull" or "pub".
type Observer interface {
	// ObserveRequest records one request handled on the ROUTER (when its
	// reply was handed to libzmq) or on the PULL socket: code is 200 on
	// success, else the PROTOCOL.md §1.3 error code; seconds runs from
	// receipt to reply (ROUTER) or to the end of processing (PULL).
	ObserveRequest(op string, code int, seconds float64)
	// ObserveRejected records a PULL message that was rejected with code
	// (there is no reply to carry the error).
	ObserveRejected(socket string, code int)
	// ObserveDropped records n outgoing messages that were discarded: a
	// ROUTER reply to a peer that is gone or not reading (ROUTER_MANDATORY
	// + DONTWAIT), or notifications that did not fit the PUB queue.
	ObserveDropped(socket string, n int)
	// SetQueueDepth reports the ROUTER requests received and not yet
	// answered.
	SetQueueDepth(n int)
	// ObserveNotify records n notifications handed to the PUB socket.
	ObserveNotify(n int)
}

// Logger is the small structured logger the server writes to; kv
// alternates keys (strings) and values. The application adapts zap to it.
// It must be safe for concurrent use.
type Logger interface {
	Info(msg string, kv ...any)
	Warn(msg string, kv ...any)
	Error(msg string, kv ...any)
}

// NopObserver discards every measurement. New uses it when obs is nil.
type NopObserver struct{}

func (NopObserver) ObserveRequest(string, int, float64) {}
func (NopObserver) ObserveRejected(string, int)         {}
func (NopObserver) ObserveDropped(string, int)          {}
func (NopObserver) SetQueueDepth(int)                   {}
func (NopObserver) ObserveNotify(int)                   {}

// NopLogger discards every message. New uses it when log is nil.
type NopLogger struct{}

func (NopLogger) Info(string, ...any)  {}
func (NopLogger) Warn(string, ...any)  {}
func (NopLogger) Error(string, ...any) {}
