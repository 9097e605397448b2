package zmqserver_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
	zmqserver "github.com/cidstore/cidstore/transport-zmq"
	"github.com/cidstore/cidstore/transport-zmq/internal/fakestore"
	wt "github.com/cidstore/cidstore/transport-zmq/internal/wiretest"
	zmq "github.com/pebbe/zmq4"
	"github.com/shamaton/msgpack/v2"
)

// replyTimeout bounds every wait for a reply; tests poll with deadlines
// instead of sleeping.
const replyTimeout = 10 * time.Second

var (
	k1 = cidstore.E{High: 1, Low: 1}
	k2 = cidstore.E{High: 2, Low: 2}
	v1 = cidstore.E{High: 1 << 63, Low: 7}
	v2 = cidstore.E{High: 5, Low: math.MaxUint64}
)

func msg(kv ...any) []byte { return wt.Encode(wt.Map(kv)) }

func bin16(e cidstore.E) []byte { b := e.Bytes(); return b[:] }

// openStore opens a volatile store, validated and closed at cleanup.
func openStore(t testing.TB, opts cidstore.Options) *cidstore.Store {
	t.Helper()
	st, err := cidstore.Open(memstore.New(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if v, ok := any(st).(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				t.Errorf("store validation: %v", err)
			}
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// startServer starts a server on ephemeral loopback ports, closed at cleanup
// (registered after the store's cleanup, so it runs first).
func startServer(t testing.TB, st zmqserver.Store, cfg zmqserver.Config, obs zmqserver.Observer) *zmqserver.Server {
	t.Helper()
	if cfg.RouterEndpoint == "" {
		cfg.RouterEndpoint = "tcp://127.0.0.1:*"
	}
	srv, err := zmqserver.New(st, cfg, obs, &memLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return srv
}

// rawConn is a bare ZeroMQ client, to send exactly the frames a test wants.
type rawConn struct {
	t      testing.TB
	zctx   *zmq.Context
	sock   *zmq.Socket
	poller *zmq.Poller
}

func dialRaw(t testing.TB, typ zmq.Type, endpoint string) *rawConn {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(sock.SetLinger(0), sock.SetSndtimeo(replyTimeout)); err != nil {
		t.Fatal(err)
	}
	if typ == zmq.SUB {
		if err := sock.SetSubscribe(""); err != nil {
			t.Fatal(err)
		}
	}
	if err := sock.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	p := zmq.NewPoller()
	p.Add(sock, zmq.POLLIN)
	c := &rawConn{t: t, zctx: zctx, sock: sock, poller: p}
	t.Cleanup(func() {
		if err := sock.Close(); err != nil {
			t.Error(err)
		}
		if err := zctx.Term(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func (c *rawConn) send(frames ...[]byte) {
	c.t.Helper()
	if err := c.trySend(frames...); err != nil {
		c.t.Fatal(err)
	}
}

// trySend is send for goroutines other than the test's.
func (c *rawConn) trySend(frames ...[]byte) error {
	for i, f := range frames {
		flag := zmq.Flag(0)
		if i < len(frames)-1 {
			flag = zmq.SNDMORE
		}
		if _, err := c.sock.SendBytes(f, flag); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return nil
}

// recv waits up to d for a message; nil when none arrived.
func (c *rawConn) recv(d time.Duration) [][]byte {
	c.t.Helper()
	frames, err := c.tryRecv(d)
	if err != nil {
		c.t.Fatal(err)
	}
	return frames
}

// tryRecv is recv for goroutines other than the test's.
func (c *rawConn) tryRecv(d time.Duration) ([][]byte, error) {
	polled, err := c.poller.Poll(d)
	if err != nil {
		return nil, fmt.Errorf("poll: %w", err)
	}
	if len(polled) == 0 {
		return nil, nil
	}
	frames, err := c.sock.RecvMessageBytes(0)
	if err != nil {
		return nil, fmt.Errorf("recv: %w", err)
	}
	return frames, nil
}

// next waits for the next message and decodes its last frame.
func (c *rawConn) next() map[string]any {
	c.t.Helper()
	f := c.recv(replyTimeout)
	if f == nil {
		c.t.Fatal("no reply")
	}
	return decode(c.t, f[len(f)-1])
}

// do sends [payload] (REQ or DEALER) and returns the decoded reply.
func (c *rawConn) do(payload []byte) map[string]any {
	c.t.Helper()
	c.send(payload)
	frames := c.recv(replyTimeout)
	if len(frames) != 1 {
		c.t.Fatalf("reply frames %q, want one", frames)
	}
	return decode(c.t, frames[0])
}

// decode decodes a reply with shamaton, an implementation independent of
// the server's encoder.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply % x is not a msgpack map: %v", b, err)
	}
	return m
}

func code(m map[string]any) int {
	c, ok := m["error_code"]
	if !ok {
		return 0
	}
	var n int
	fmt.Sscan(fmt.Sprint(c), &n)
	return n
}

// memLogger records log lines for assertions; safe for concurrent use.
type memLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *memLogger) add(level, msg string, kv []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, " ", msg, kv))
}
func (l *memLogger) Info(msg string, kv ...any)  { l.add("INFO", msg, kv) }
func (l *memLogger) Warn(msg string, kv ...any)  { l.add("WARN", msg, kv) }
func (l *memLogger) Error(msg string, kv ...any) { l.add("ERROR", msg, kv) }

// countingObserver counts what the server reports.
type countingObserver struct {
	mu       sync.Mutex
	requests map[string]int // "op code"
	rejected map[string]int // "socket code"
	dropped  map[string]int
	notified int
	maxDepth int
	changed  chan struct{} // gets a value (if empty) after every update
}

func newCountingObserver() *countingObserver {
	return &countingObserver{requests: map[string]int{}, rejected: map[string]int{}, dropped: map[string]int{},
		changed: make(chan struct{}, 1)}
}

// update applies f under the lock and signals changed.
func (o *countingObserver) update(f func()) {
	o.mu.Lock()
	f()
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

func (o *countingObserver) ObserveRequest(op string, code int, _ float64) {
	o.update(func() { o.requests[fmt.Sprint(op, " ", code)]++ })
}
func (o *countingObserver) ObserveRejected(socket string, code int) {
	o.update(func() { o.rejected[fmt.Sprint(socket, " ", code)]++ })
}
func (o *countingObserver) ObserveDropped(socket string, n int) {
	o.update(func() { o.dropped[socket] += n })
}
func (o *countingObserver) SetQueueDepth(n int) { o.update(func() { o.maxDepth = max(o.maxDepth, n) }) }
func (o *countingObserver) ObserveNotify(n int) { o.update(func() { o.notified += n }) }

func (o *countingObserver) get(f func(o *countingObserver) int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return f(o)
}

// eventually polls cond until it holds or the deadline passes. Between
// polls it waits for wake; with a nil wake, cond must pace itself (a round
// trip to the server).
func eventually(t testing.TB, what string, cond func() bool, wake <-chan struct{}) {
	t.Helper()
	deadline := time.NewTimer(replyTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		default:
			if wake != nil {
				select {
				case <-wake:
				case <-deadline.C:
					t.Fatalf("timed out waiting for %s", what)
				}
			}
		}
	}
}

// TestOps runs every op_code and alias against a real store over a REQ
// socket, in both execution modes.
func TestOps(t *testing.T) {
	for _, workers := range []int{zmqserver.DefaultWorkers, -1} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			st := openStore(t, cidstore.Options{})
			srv := startServer(t, st, zmqserver.Config{Workers: workers}, nil)
			c := dialRaw(t, zmq.REQ, srv.RouterEndpoint())
			k3, k4, k5 := cidstore.E{High: 3, Low: 3}, cidstore.E{High: 4, Low: 4}, cidstore.E{High: 5, Low: 5}
			steps := []struct {
				in   []byte
				want string
			}{
				{msg("op_code", "INSERT", "request_id", "a", "key", k1, "value", v1), "map[ok:true request_id:a rolling_version:1]"},
				{msg("op_code", "INSERT", "key", bin16(k1), "value", bin16(v2)), "map[ok:true rolling_version:1]"},
				{msg("rolling_version", 2, "op_code", "GET", "request_id", "b", "key", k1),
					"map[request_id:b results:[[5 18446744073709551615] [9223372036854775808 7]] rolling_version:2]"},
				{msg("op_code", "LOOKUP", "key", bin16(k1)), "map[results:[[5 18446744073709551615] [9223372036854775808 7]] rolling_version:1]"},
				{msg("op_code", "GET", "key", k2), "map[results:[] rolling_version:1]"},
				{msg("op_code", "DELETE", "key", k1, "value", v1), "map[ok:true rolling_version:1]"},
				{msg("op_code", "GET", "key", k1), "map[results:[[5 18446744073709551615]] rolling_version:1]"},
				{msg("op_code", "DELETE_VALUE_FROM_KEY", "key", k1, "value", v2), "map[ok:true rolling_version:1]"},
				{msg("op_code", "DELETE_VALUE_FROM_KEY", "key", k1, "value", v2), "map[ok:true rolling_version:1]"}, // idempotent
				{msg("op_code", "GET", "key", k1), "map[results:[] rolling_version:1]"},
				{msg("op_code", "BATCH_INSERT", "request_id", "c", "entries", []cidstore.Pair{{Key: k2, Value: v1}, {Key: k3, Value: v1}, {Key: k3, Value: v2}, {Key: k4, Value: v1}, {Key: k5, Value: v1}}),
					"map[count:5 ok:true request_id:c rolling_version:1]"},
				{msg("op_code", "GET", "key", k3), "map[results:[[5 18446744073709551615] [9223372036854775808 7]] rolling_version:1]"},
				{msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"key", k2}, wt.Map{"key", k3, "value", v1}}), "map[count:2 ok:true rolling_version:1]"},
				{msg("op_code", "GET", "key", k2), "map[results:[] rolling_version:1]"},
				{msg("op_code", "GET", "key", k3), "map[results:[[5 18446744073709551615]] rolling_version:1]"},
				{msg("op_code", "DELETE", "key", k4), "map[ok:true rolling_version:1]"},
				{msg("op_code", "DELETE_KEY", "key", k5), "map[ok:true rolling_version:1]"},
				{msg("op_code", "DELETE_KEY", "key", k5), "map[ok:true rolling_version:1]"},
				{msg("op_code", "GET", "key", k4), "map[results:[] rolling_version:1]"},
				{msg("op_code", "GET", "key", k5), "map[results:[] rolling_version:1]"},
			}
			for i, s := range steps {
				if got := fmt.Sprint(c.do(s.in)); got != s.want {
					t.Fatalf("step %d: reply %s, want %s", i, got, s.want)
				}
			}
			m := c.do(msg("op_code", "METRICS", "request_id", "m"))
			for _, f := range []string{"latency_p99", "throughput_ops", "flush_duration", "lock_contention_ratio", "error_rate"} {
				if _, ok := m[f].(float64); !ok {
					t.Errorf("METRICS %s = %#v, want a float", f, m[f])
				}
			}
			if _, ok := m["buffer_occupancy"].(float64); ok || m["buffer_occupancy"] == nil {
				t.Errorf("METRICS buffer_occupancy = %#v, want an int", m["buffer_occupancy"])
			}
			if m["request_id"] != "m" || m["latency_p99"].(float64) <= 0 || m["throughput_ops"].(float64) <= 0 || m["error_rate"].(float64) != 0 {
				t.Errorf("METRICS = %v", m)
			}
		})
	}
}

// TestErrorCodes sends each kind of bad request over a DEALER socket and
// checks the code and the request_id echo.
func TestErrorCodes(t *testing.T) {
	st := openStore(t, cidstore.Options{})
	srv := startServer(t, st, zmqserver.Config{MaxBatchEntries: 10}, nil)
	c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
	tests := []struct {
		name string
		in   []byte
		code int
		id   string
	}{
		{"not msgpack", []byte{0xc1, 0xc1}, 400, ""},
		{"not a map", wt.Encode([]any{"op_code", "GET"}), 400, ""},
		{"empty payload", []byte{}, 400, ""},
		{"truncated", msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(1, 5))[:60], 400, ""},
		{"unknown op_code", msg("op_code", "PUT", "request_id", "e1"), 400, "e1"},
		{"missing key", msg("op_code", "GET", "request_id", "e2"), 400, "e2"},
		{"key wrong type", msg("op_code", "GET", "request_id", "e3", "key", "abc"), 400, "e3"},
		{"value float", msg("op_code", "INSERT", "request_id", "e4", "key", k1, "value", []any{1.5, 2}), 400, "e4"},
		{"zero key", msg("op_code", "GET", "request_id", "e5", "key", cidstore.E{}), 422, "e5"},
		{"zero value in batch", msg("op_code", "BATCH_INSERT", "request_id", "e6", "entries", []cidstore.Pair{{Key: k1, Value: v1}, {Key: k1}}), 422, "e6"},
		{"negative E", msg("op_code", "INSERT", "request_id", "e7", "key", []any{-1, 1}, "value", v1), 422, "e7"},
		{"batch over limit", msg("op_code", "BATCH_INSERT", "request_id", "e8", "entries", wt.Pairs(1, 11)), 413, "e8"},
		{"version 3", msg("rolling_version", 3, "op_code", "GET", "request_id", "e9", "key", k1), 426, "e9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := c.do(tc.in)
			if code(m) != tc.code || m["error_msg"] == "" {
				t.Errorf("reply %v, want error_code %d", m, tc.code)
			}
			if id, _ := m["request_id"].(string); id != tc.id {
				t.Errorf("request_id %q, want %q", id, tc.id)
			}
			if m["rolling_version"] == nil {
				t.Error("reply without rolling_version")
			}
		})
	}
	// The rejected batch changed nothing.
	if vals, err := st.Get(t.Context(), k1); err != nil || len(vals) != 0 {
		t.Errorf("Get(k1) = %v, %v after rejected batches", vals, err)
	}
	t.Run("wrong frame count", func(t *testing.T) {
		c.send([]byte("x"), msg("op_code", "METRICS"))
		frames := c.recv(replyTimeout)
		if len(frames) != 1 || code(decode(t, frames[0])) != 400 {
			t.Errorf("reply %q, want one frame with 400", frames)
		}
		c.send([]byte{}, []byte("a"), []byte("b"))
		frames = c.recv(replyTimeout)
		if len(frames) != 2 || len(frames[0]) != 0 || code(decode(t, frames[1])) != 400 {
			t.Errorf("reply %q, want [\"\", 400]", frames)
		}
	})
}

// TestEnvelopes checks that replies keep the request's envelope.
func TestEnvelopes(t *testing.T) {
	st := openStore(t, cidstore.Options{})
	srv := startServer(t, st, zmqserver.Config{}, nil)
	dealer := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
	dealer.send(msg("op_code", "GET", "request_id", "plain", "key", k1))
	if f := dealer.recv(replyTimeout); len(f) != 1 || decode(t, f[0])["request_id"] != "plain" {
		t.Errorf("DEALER [payload] reply %q", f)
	}
	dealer.send([]byte{}, msg("op_code", "GET", "request_id", "delim", "key", k1))
	if f := dealer.recv(replyTimeout); len(f) != 2 || len(f[0]) != 0 || decode(t, f[1])["request_id"] != "delim" {
		t.Errorf("DEALER [\"\", payload] reply %q", f)
	}
	req := dialRaw(t, zmq.REQ, srv.RouterEndpoint())
	if m := req.do(msg("op_code", "GET", "request_id", "req", "key", k1)); m["request_id"] != "req" {
		t.Errorf("REQ reply %v", m)
	}
}

// TestServerStates covers 503: read-only role, not ready, and overload.
func TestServerStates(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		st := openStore(t, cidstore.Options{})
		srv := startServer(t, st, zmqserver.Config{ReadOnly: true}, nil)
		c := dialRaw(t, zmq.REQ, srv.RouterEndpoint())
		for _, in := range [][]byte{
			msg("op_code", "INSERT", "key", k1, "value", v1),
			msg("op_code", "DELETE", "key", k1),
			msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(1, 2)),
			msg("op_code", "BATCH_DELETE", "entries", []any{wt.Map{"key", k1}}),
		} {
			if m := c.do(in); code(m) != 503 || !strings.Contains(m["error_msg"].(string), "read-only") {
				t.Errorf("mutation on reader: %v", m)
			}
		}
		if m := c.do(msg("op_code", "GET", "key", k1)); code(m) != 0 {
			t.Errorf("GET on reader: %v", m)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		var ready atomic.Bool
		st := openStore(t, cidstore.Options{})
		srv := startServer(t, st, zmqserver.Config{Ready: ready.Load}, nil)
		c := dialRaw(t, zmq.REQ, srv.RouterEndpoint())
		if m := c.do(msg("op_code", "GET", "key", k1)); code(m) != 503 || !strings.Contains(m["error_msg"].(string), "recovering") {
			t.Errorf("GET while recovering: %v", m)
		}
		ready.Store(true)
		if m := c.do(msg("op_code", "GET", "key", k1)); code(m) != 0 {
			t.Errorf("GET when ready: %v", m)
		}
	})
	t.Run("overloaded", func(t *testing.T) {
		fs := fakestore.New()
		fs.Gate, fs.Entered = make(chan struct{}), make(chan struct{}, 1)
		obs := newCountingObserver()
		srv := startServer(t, fs, zmqserver.Config{Workers: 1, QueueDepth: 2}, obs)
		c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
		c.send(msg("op_code", "INSERT", "request_id", "1", "key", k1, "value", v1))
		<-fs.Entered // request 1 executes and blocks
		c.send(msg("op_code", "INSERT", "request_id", "2", "key", k1, "value", v2))
		c.send(msg("op_code", "GET", "request_id", "3", "key", k1))
		// Queue: 1 running + 2 queued = full.
		if m := c.next(); code(m) != 503 || m["request_id"] != "3" || !strings.Contains(m["error_msg"].(string), "overloaded") {
			t.Fatalf("third request: %v, want 503 overloaded", m)
		}
		fs.Gate <- struct{}{}
		fs.Gate <- struct{}{}
		got := map[any]int{}
		for range 2 {
			m := c.next()
			got[m["request_id"]] = code(m)
		}
		if got["1"] != 0 || got["2"] != 0 {
			t.Errorf("replies after release: %v", got)
		}
		if d := obs.get(func(o *countingObserver) int { return o.maxDepth }); d != 2 {
			t.Errorf("max queue depth %d, want 2", d)
		}
	})
	t.Run("overloaded bytes", func(t *testing.T) {
		fs := fakestore.New()
		fs.Gate, fs.Entered = make(chan struct{}), make(chan struct{}, 1)
		const budget = 4096
		srv := startServer(t, fs, zmqserver.Config{Workers: 1, MaxFrameBytes: budget, MaxQueuedBytes: budget}, nil)
		c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
		first := msg("op_code", "INSERT", "request_id", "1", "key", k1, "value", v1)
		// The smallest batch that, queued behind first, goes over budget.
		var big []byte
		for n := 1; len(big)+len(first) <= budget; n++ {
			big = msg("op_code", "BATCH_INSERT", "request_id", "2", "entries", wt.Pairs(1, n))
		}
		if len(big) > budget {
			t.Fatalf("batch of %d bytes is over the frame limit", len(big))
		}
		c.send(first)
		<-fs.Entered
		c.send(big)
		c.send(msg("op_code", "GET", "request_id", "3", "key", k1)) // small: fits
		if m := c.next(); code(m) != 503 || m["request_id"] != "2" {
			t.Fatalf("big request: %v, want 503", m)
		}
		fs.Gate <- struct{}{}
		for _, want := range []string{"1", "3"} {
			if m := c.next(); code(m) != 0 || m["request_id"] != want {
				t.Errorf("reply %v, want success for %s", m, want)
			}
		}
	})
}

// TestFrameOverLimit: a frame over MaxFrameBytes (but within ZMQ_MAXMSGSIZE,
// twice the limit) is answered 413 and changes nothing.
func TestFrameOverLimit(t *testing.T) {
	st := openStore(t, cidstore.Options{})
	srv := startServer(t, st, zmqserver.Config{MaxFrameBytes: 4096}, nil)
	c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
	m := c.do(msg("op_code", "BATCH_INSERT", "request_id", "big", "entries", wt.Pairs(1, 200))) // ~6.7 KB
	if code(m) != 413 || m["request_id"] != "big" {
		t.Fatalf("frame over the limit: %v, want 413 echoing the request id", m)
	}
	if vals, _ := st.Get(t.Context(), wt.Pairs(1, 1)[0].Key); len(vals) != 0 {
		t.Error("oversized batch was applied")
	}
	if m := c.do(msg("op_code", "GET", "request_id", "after", "key", k1)); m["request_id"] != "after" || code(m) != 0 {
		t.Fatalf("after the 413: %v", m)
	}
}

// TestOversizedFrame documents ZMQ_MAXMSGSIZE: a frame over twice
// MaxFrameBytes is never delivered to the server and gets no reply; libzmq
// drops the connection, the DEALER reconnects and the server keeps serving.
func TestOversizedFrame(t *testing.T) {
	st := openStore(t, cidstore.Options{})
	obs := newCountingObserver()
	srv := startServer(t, st, zmqserver.Config{MaxFrameBytes: 4096}, obs)
	// 400 pairs are ~13 KB: over twice the 4 KiB limit.
	c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
	if m := c.do(msg("op_code", "GET", "request_id", "before", "key", k1)); m["request_id"] != "before" {
		t.Fatalf("reply %v", m)
	}
	c.send(msg("op_code", "BATCH_INSERT", "request_id", "big", "entries", wt.Pairs(1, 400)))
	// Probe until a reply comes back after the reconnect; the big request
	// must never be answered.
	deadline := time.Now().Add(replyTimeout)
	for answered := false; !answered; {
		if time.Now().After(deadline) {
			t.Fatal("server did not answer after the oversized frame")
		}
		c.send(msg("op_code", "GET", "request_id", "probe", "key", k1))
		for f := c.recv(500 * time.Millisecond); f != nil; f = c.recv(0) {
			m := decode(t, f[0])
			if m["request_id"] == "big" {
				t.Fatalf("oversized request answered: %v", m)
			}
			answered = answered || m["request_id"] == "probe"
		}
	}
	if vals, _ := st.Get(t.Context(), wt.Pairs(1, 1)[0].Key); len(vals) != 0 {
		t.Error("oversized batch was applied")
	}
	if n := obs.get(func(o *countingObserver) int {
		return o.requests["BATCH_INSERT 200"] + o.requests["BATCH_INSERT 413"] + o.requests["unknown 400"]
	}); n != 0 {
		t.Errorf("oversized frame reached the handler %d times", n)
	}
}

// TestConcurrentDealers runs 16 raw clients at once, each checking its own
// replies by request_id, in both execution modes.
func TestConcurrentDealers(t *testing.T) {
	for _, workers := range []int{zmqserver.DefaultWorkers, -1} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			st := openStore(t, cidstore.Options{})
			srv := startServer(t, st, zmqserver.Config{Workers: workers}, nil)
			const clients, rounds = 16, 20
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for ci := range clients {
				c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
				wg.Go(func() {
					key := cidstore.E{High: uint64(ci) + 100, Low: 1}
					for r := range rounds {
						id := fmt.Sprint(ci, "-", r)
						// Pipeline an insert and a get: per-peer ordering
						// means the get sees the insert.
						err := errors.Join(
							c.trySend(msg("op_code", "INSERT", "request_id", id+"i", "key", key, "value", cidstore.E{High: 1, Low: uint64(r) + 1})),
							c.trySend(msg("op_code", "GET", "request_id", id+"g", "key", key)))
						if err != nil {
							errs <- err
							return
						}
						for _, want := range []string{id + "i", id + "g"} {
							f, err := c.tryRecv(replyTimeout)
							if f == nil {
								errs <- fmt.Errorf("client %d: no reply for %s (%v)", ci, want, err)
								return
							}
							var m map[string]any
							if err := msgpack.Unmarshal(f[0], &m); err != nil || m["request_id"] != want || code(m) != 0 {
								errs <- fmt.Errorf("client %d: reply %v (%v), want %s", ci, m, err, want)
								return
							}
							if res, ok := m["results"].([]any); ok && len(res) != r+1 {
								errs <- fmt.Errorf("client %d round %d: %d results", ci, r, len(res))
								return
							}
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestPull ingests over PUSH→PULL, then reads back over the ROUTER; bad
// messages are counted and logged, not answered.
func TestPull(t *testing.T) {
	st := openStore(t, cidstore.Options{})
	obs := newCountingObserver()
	srv := startServer(t, st, zmqserver.Config{PullEndpoint: "tcp://127.0.0.1:*"}, obs)
	push := dialRaw(t, zmq.PUSH, srv.PullEndpoint())
	push.send([]byte{0xc1})                                               // not msgpack
	push.send(msg("op_code", "GET", "key", k1))                           // no reply possible
	push.send(msg("op_code", "INSERT", "key", k1, "value", cidstore.E{})) // zero value
	push.send(msg("op_code", "INSERT", "key", k1, "value", v1))
	push.send([]byte{}, msg("op_code", "BATCH_INSERT", "entries", wt.Pairs(3, 100)))
	last := wt.Pairs(3, 100)[99]
	req := dialRaw(t, zmq.REQ, srv.RouterEndpoint())
	eventually(t, "PULL batch applied", func() bool {
		res, _ := req.do(msg("op_code", "GET", "key", last.Key))["results"].([]any)
		return len(res) == 1
	}, nil)
	if m := req.do(msg("op_code", "GET", "key", k1)); fmt.Sprint(m["results"]) != "[[9223372036854775808 7]]" {
		t.Errorf("GET k1 = %v", m)
	}
	rejected := func(o *countingObserver) int { return o.rejected["pull 400"]*10 + o.rejected["pull 422"] }
	eventually(t, "rejections counted", func() bool { return obs.get(rejected) == 21 }, obs.changed)
}

// TestPub checks change notifications: topics, fields and LSN order.
func TestPub(t *testing.T) {
	var srvp atomic.Pointer[zmqserver.Server]
	st := openStore(t, cidstore.Options{
		WALPath: t.TempDir() + "/wal", Sync: cidstore.SyncNone,
		Notify: func(m []cidstore.Mutation) { srvp.Load().Notify(m) }, // nil-safe before Start
	})
	obs := newCountingObserver()
	srv := startServer(t, st, zmqserver.Config{PubEndpoint: "tcp://127.0.0.1:*"}, obs)
	srvp.Store(srv)
	sub := dialRaw(t, zmq.SUB, srv.PubEndpoint())
	req := dialRaw(t, zmq.REQ, srv.RouterEndpoint())

	// A SUB joins asynchronously: insert probes until one is seen.
	probe := cidstore.E{High: 99, Low: 99}
	deadline := time.Now().Add(replyTimeout)
	for seen, i := false, uint64(1); !seen; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no notification received")
		}
		req.do(msg("op_code", "INSERT", "key", probe, "value", cidstore.E{High: 1, Low: i}))
		seen = sub.recv(200*time.Millisecond) != nil
	}
	req.do(msg("op_code", "INSERT", "key", k1, "value", v1))
	req.do(msg("op_code", "BATCH_INSERT", "entries", []cidstore.Pair{{Key: k2, Value: v1}, {Key: k2, Value: v2}}))
	req.do(msg("op_code", "DELETE_VALUE_FROM_KEY", "key", k2, "value", v1))
	req.do(msg("op_code", "DELETE_KEY", "key", k1))
	want := []string{
		"insert map[key:[1 1] value:[9223372036854775808 7]]",
		"insert map[key:[2 2] value:[9223372036854775808 7]]",
		"insert map[key:[2 2] value:[5 18446744073709551615]]",
		"delete map[key:[2 2] value:[9223372036854775808 7]]",
		"delete map[key:[1 1]]",
	}
	var got []string
	var lsns []uint64
	for len(got) < len(want) {
		f := sub.recv(replyTimeout)
		if len(f) != 2 {
			t.Fatalf("notification %q, want two frames (got so far %v)", f, got)
		}
		m := decode(t, f[1])
		if fmt.Sprint(m["key"]) == "[99 99]" {
			continue // a late probe
		}
		var lsn uint64
		fmt.Sscan(fmt.Sprint(m["lsn"]), &lsn)
		lsns = append(lsns, lsn)
		delete(m, "lsn")
		got = append(got, string(f[0])+" "+fmt.Sprint(m))
	}
	if !slices.Equal(got, want) {
		t.Errorf("notifications\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.IsSorted(lsns) || lsns[0] == 0 || lsns[1] == lsns[2] {
		t.Errorf("lsns %v, want increasing and non-zero with a WAL", lsns)
	}
	eventually(t, "notifications observed", func() bool { return obs.get(func(o *countingObserver) int { return o.notified }) >= 6 }, obs.changed)
}

// TestNotifyNeverBlocks fills the PUB queue without a PUB goroutine able to
// drain it fast enough and checks that Notify drops and counts instead.
func TestNotifyNeverBlocks(t *testing.T) {
	obs := newCountingObserver()
	srv, err := zmqserver.New(fakestore.New(), zmqserver.Config{PubEndpoint: "tcp://127.0.0.1:*", NotifyQueueLen: 10}, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Not started: nothing drains the queue.
	muts := make([]cidstore.Mutation, 4)
	for range 5 {
		srv.Notify(muts)
	}
	if d := obs.get(func(o *countingObserver) int { return o.dropped["pub"] }); d != 12 {
		t.Errorf("dropped %d, want 12 (two batches of 4 fit in 10)", d)
	}
	if err := srv.Close(); err != nil {
		t.Error(err)
	}
	var nilServer *zmqserver.Server
	nilServer.Notify(muts) // no-op
}

// TestClose checks that Close answers in-flight requests before closing,
// and that a store call that never returns cannot make it hang.
func TestClose(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		fs := fakestore.New()
		fs.Gate, fs.Entered = make(chan struct{}), make(chan struct{}, 1)
		srv, err := zmqserver.New(fs, zmqserver.Config{RouterEndpoint: "tcp://127.0.0.1:*"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
		c.send(msg("op_code", "INSERT", "request_id", "inflight", "key", k1, "value", v1))
		<-fs.Entered
		closed := make(chan error)
		go func() { closed <- srv.Close() }()
		fs.Gate <- struct{}{}
		f := c.recv(replyTimeout)
		if f == nil || decode(t, f[0])["request_id"] != "inflight" || code(decode(t, f[0])) != 0 {
			t.Errorf("in-flight reply %q", f)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := srv.Start(); err == nil {
			t.Error("Start after Close succeeded")
		}
	})
	t.Run("stuck store", func(t *testing.T) {
		fs := fakestore.New()
		fs.Gate, fs.Entered = make(chan struct{}), make(chan struct{}, 1) // never opened
		srv, err := zmqserver.New(fs, zmqserver.Config{RouterEndpoint: "tcp://127.0.0.1:*", ShutdownTimeout: 200 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, zmq.DEALER, srv.RouterEndpoint())
		c.send(msg("op_code", "INSERT", "key", k1, "value", v1))
		<-fs.Entered
		start := time.Now()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Close took %v", d)
		}
	})
	t.Run("never started", func(t *testing.T) {
		srv, err := zmqserver.New(fakestore.New(), zmqserver.Config{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Run("bind failure", func(t *testing.T) {
		srv := startServer(t, fakestore.New(), zmqserver.Config{}, nil)
		dup, err := zmqserver.New(fakestore.New(), zmqserver.Config{RouterEndpoint: srv.RouterEndpoint()}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dup.Start(); err == nil || !strings.Contains(err.Error(), "bind") {
			t.Errorf("Start on a used port: %v", err)
		}
		if err := dup.Close(); err != nil {
			t.Error(err)
		}
	})
}
