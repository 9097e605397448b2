package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
	zmqserver "github.com/cidstore/cidstore/transport-zmq"
	"github.com/cidstore/cidstore/transport-zmq/client"
	"github.com/cidstore/cidstore/transport-zmq/internal/wire"
	wt "github.com/cidstore/cidstore/transport-zmq/internal/wiretest"
	zmq "github.com/pebbe/zmq4"
)

var (
	k1 = cidstore.E{High: 1, Low: 1}
	v1 = cidstore.E{High: 1 << 63, Low: 1}
	v2 = cidstore.E{High: 2, Low: 2}
	v3 = cidstore.E{High: 2, Low: 3}
)

// serve starts a real store behind a server on an ephemeral port.
func serve(t testing.TB, cfg zmqserver.Config) (*cidstore.Store, string) {
	t.Helper()
	st, err := cidstore.Open(memstore.New(), cidstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RouterEndpoint = "tcp://127.0.0.1:*"
	srv, err := zmqserver.New(st, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(srv.Close(), st.Close()); err != nil {
			t.Error(err)
		}
	})
	return st, srv.RouterEndpoint()
}

func dial(t testing.TB, endpoint string, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestOps(t *testing.T) {
	_, ep := serve(t, zmqserver.Config{})
	c := dial(t, ep, client.Options{BatchEntries: 1000, Window: 3})
	ctx := t.Context()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	get := func(k cidstore.E) []cidstore.E {
		t.Helper()
		vals, err := c.Get(ctx, k)
		must(err)
		return vals
	}
	must(c.Insert(ctx, k1, v1))
	must(c.Insert(ctx, k1, v3))
	must(c.Insert(ctx, k1, v2))
	if got := get(k1); !slices.Equal(got, []cidstore.E{v2, v3, v1}) {
		t.Errorf("Get = %v, want ascending", got)
	}
	must(c.DeleteValue(ctx, k1, v3))
	if got := get(k1); !slices.Equal(got, []cidstore.E{v2, v1}) {
		t.Errorf("Get after DeleteValue = %v", got)
	}
	must(c.Delete(ctx, k1))
	if got := get(k1); got == nil || len(got) != 0 {
		t.Errorf("Get after Delete = %#v, want empty non-nil", got)
	}

	// 2500 pairs: three pipelined messages.
	pairs := wt.Pairs(42, 2500)
	must(c.InsertBatch(ctx, pairs))
	must(c.InsertBatch(ctx, nil))
	for _, i := range []int{0, 999, 1000, 2499} {
		if got := get(pairs[i].Key); !slices.Equal(got, []cidstore.E{pairs[i].Value}) {
			t.Errorf("pair %d: Get = %v", i, got)
		}
	}
	must(c.DeleteBatch(ctx, []cidstore.Deletion{{Key: pairs[0].Key}, {Key: pairs[1].Key, Value: pairs[1].Value}, {Key: pairs[2].Key, Value: v1}}))
	must(c.DeleteBatch(ctx, nil))
	if a, b, c := get(pairs[0].Key), get(pairs[1].Key), get(pairs[2].Key); len(a) != 0 || len(b) != 0 || len(c) != 1 {
		t.Errorf("after DeleteBatch: %v %v %v", a, b, c)
	}

	m, err := c.Metrics(ctx)
	must(err)
	if m.LatencyP99Seconds <= 0 || m.ThroughputOps <= 0 || m.ErrorRate != 0 || m.LockContentionRatio < 0 || m.LockContentionRatio > 1 {
		t.Errorf("Metrics = %+v", m)
	}
}

func TestErrors(t *testing.T) {
	_, ep := serve(t, zmqserver.Config{MaxBatchEntries: 10})
	ctx := t.Context()
	c := dial(t, ep, client.Options{})
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"zero key", c.Insert(ctx, cidstore.E{}, v1), client.CodeInvalid},
		{"zero value", c.DeleteValue(ctx, k1, cidstore.E{}), client.CodeInvalid},
		{"batch over server limit", c.DeleteBatch(ctx, make([]cidstore.Deletion, 11)), client.CodeTooLarge},
		{"version", func() error {
			_, err := dial(t, ep, client.Options{RollingVersion: 3}).Get(ctx, k1)
			return err
		}(), client.CodeVersion},
		{"frame over local limit", dial(t, ep, client.Options{MaxFrameBytes: 1024}).InsertBatch(ctx, wt.Pairs(1, 100)), client.CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e *client.Error
			if !client.IsCode(tc.err, tc.code) || !errors.Is(tc.err, &client.Error{Code: tc.code}) || !errors.As(tc.err, &e) || e.Msg == "" {
				t.Errorf("error %v, want code %d", tc.err, tc.code)
			}
		})
	}

	_, roEP := serve(t, zmqserver.Config{ReadOnly: true})
	ro := dial(t, roEP, client.Options{})
	if err := ro.Insert(ctx, k1, v1); !client.IsCode(err, client.CodeUnavailable) {
		t.Errorf("Insert on reader: %v", err)
	}
	if _, err := ro.Get(ctx, k1); err != nil {
		t.Errorf("Get on reader: %v", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Insert(ctx, k1, v1); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Insert after Close: %v", err)
	}
}

// fakeRouter is a ROUTER the test drives by hand: it receives requests and
// answers when and how the test says.
type fakeRouter struct {
	t    *testing.T
	sock *zmq.Socket
	ep   string
}

func newFakeRouter(t *testing.T) *fakeRouter {
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(sock.SetLinger(0), sock.SetRcvtimeo(10*time.Second), sock.Bind("tcp://127.0.0.1:*")); err != nil {
		t.Fatal(err)
	}
	ep, err := sock.GetLastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(sock.Close(), zctx.Term()); err != nil {
			t.Error(err)
		}
	})
	return &fakeRouter{t: t, sock: sock, ep: ep}
}

// recv returns the peer and request_id of the next request.
func (r *fakeRouter) recv() (peer []byte, id string) {
	r.t.Helper()
	f, err := r.sock.RecvMessageBytes(0)
	if err != nil || len(f) != 2 {
		r.t.Fatalf("fake router recv %q: %v", f, err)
	}
	rd := wire.NewReader(f[1])
	n, _ := rd.MapHeader()
	for range n {
		name, _ := rd.StrBytes()
		if string(name) == "request_id" {
			s, _ := rd.StrBytes()
			return f[0], string(s)
		}
		if err := rd.Skip(); err != nil {
			r.t.Fatal(err)
		}
	}
	r.t.Fatalf("request without request_id: % x", f[1])
	return nil, ""
}

func (r *fakeRouter) reply(peer []byte, body wt.Map) {
	r.t.Helper()
	if _, err := r.sock.SendMessage(peer, wt.Encode(body)); err != nil {
		r.t.Fatal(err)
	}
}

// TestTimeoutAndLateReply: a request without a reply times out; its late
// reply is recognised by request_id and skipped by the next call.
func TestTimeoutAndLateReply(t *testing.T) {
	r := newFakeRouter(t)
	c := dial(t, r.ep, client.Options{Timeout: 200 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := c.Get(context.Background(), k1); done <- err }()
	peer, staleID := r.recv()
	if err := <-done; !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("Get without reply: %v, want ErrTimeout", err)
	}

	results := make(chan []cidstore.E, 1)
	go func() {
		vals, err := c.Get(context.Background(), k1)
		done <- err
		results <- vals
	}()
	_, id := r.recv()
	r.reply(peer, wt.Map{"rolling_version", 1, "request_id", staleID, "results", []any{v3}})
	r.reply(peer, wt.Map{"rolling_version", 1, "request_id", id, "results", []any{v1, bin16(v2)}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-results; !slices.Equal(got, []cidstore.E{v1, v2}) {
		t.Errorf("Get = %v, want the second reply's results", got)
	}

	// A context deadline is a timeout too; a cancelled context is not.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() { done <- c.Insert(ctx, k1, v1) }()
	r.recv()
	if err := <-done; !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Insert past ctx deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- c.Delete(ctx, k1) }()
	r.recv()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with cancelled ctx: %v", err)
	}
	// A malformed reply is a protocol error, not a panic.
	go func() { done <- c.Delete(context.Background(), k1) }()
	peer, _ = r.recv()
	if _, err := r.sock.SendMessage(peer, []byte{0x81, 0xa1}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, client.ErrProtocol) {
		t.Errorf("truncated reply: %v, want ErrProtocol", err)
	}
}

func bin16(e cidstore.E) []byte { b := e.Bytes(); return b[:] }

// TestConcurrentClients runs 16 clients at once plus 4 goroutines sharing
// one client, then checks every write landed.
func TestConcurrentClients(t *testing.T) {
	st, ep := serve(t, zmqserver.Config{})
	ctx := t.Context()
	shared := dial(t, ep, client.Options{})
	const clients, perClient = 16, 300
	var wg sync.WaitGroup
	errs := make(chan error, clients+4)
	for i := range clients {
		c := dial(t, ep, client.Options{BatchEntries: 100, Window: 2})
		wg.Go(func() {
			pairs := wt.Pairs(uint64(i)+1000, perClient)
			if err := c.InsertBatch(ctx, pairs[:200]); err != nil {
				errs <- err
				return
			}
			for _, p := range pairs[200:] {
				if err := c.Insert(ctx, p.Key, p.Value); err != nil {
					errs <- err
					return
				}
				if vals, err := c.Get(ctx, p.Key); err != nil || !slices.Equal(vals, []cidstore.E{p.Value}) {
					errs <- fmt.Errorf("client %d: Get = %v, %v", i, vals, err)
					return
				}
			}
		})
	}
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				k := cidstore.E{High: 7, Low: uint64(i*1000 + j + 1)}
				if err := shared.Insert(ctx, k, v1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := st.Stats(); s.Values != clients*perClient+200 {
		t.Errorf("store holds %d values, want %d", s.Values, clients*perClient+200)
	}
}

// Benchmarks over real sockets on loopback; both execution modes.
//
//	go test -run '^$' -bench . ./client

func BenchmarkGet(b *testing.B) {
	for _, workers := range []int{zmqserver.DefaultWorkers, -1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			st, ep := serve(b, zmqserver.Config{Workers: workers})
			if err := st.Insert(b.Context(), k1, v1); err != nil {
				b.Fatal(err)
			}
			c := dial(b, ep, client.Options{})
			for b.Loop() {
				if _, err := c.Get(b.Context(), k1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInsertBatch(b *testing.B) {
	for _, workers := range []int{zmqserver.DefaultWorkers, -1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			_, ep := serve(b, zmqserver.Config{Workers: workers})
			c := dial(b, ep, client.Options{BatchEntries: 1000, Window: 4})
			pairs := wt.Pairs(1, 20_000)
			seed := uint64(1)
			start := time.Now()
			n := 0
			for b.Loop() {
				for i := range pairs {
					pairs[i].Key.High = seed // fresh keys each round
				}
				seed++
				if err := c.InsertBatch(b.Context(), pairs); err != nil {
					b.Fatal(err)
				}
				n += len(pairs)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "pairs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkInsertWALConcurrent: 8 clients doing single inserts against a
// store with a WAL synced on every commit. Workers let concurrent commits
// share an fdatasync; inline mode serializes one sync per insert.
func BenchmarkInsertWALConcurrent(b *testing.B) {
	for _, workers := range []int{zmqserver.DefaultWorkers, -1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			st, err := cidstore.Open(memstore.New(), cidstore.Options{WALPath: b.TempDir() + "/wal", Sync: cidstore.SyncAlways})
			if err != nil {
				b.Fatal(err)
			}
			srv, err := zmqserver.New(st, zmqserver.Config{RouterEndpoint: "tcp://127.0.0.1:*", Workers: workers}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := errors.Join(srv.Close(), st.Close()); err != nil {
					b.Error(err)
				}
			}()
			var next sync.Mutex
			seed := uint64(0)
			b.SetParallelism(4) // 8 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				c, err := client.Dial(srv.RouterEndpoint(), client.Options{})
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				next.Lock()
				seed++
				k := cidstore.E{High: seed, Low: 1}
				next.Unlock()
				for pb.Next() {
					k.Low++
					if err := c.Insert(context.Background(), k, v1); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(st.Stats().WALSyncs)/float64(b.N), "syncs/op")
		})
	}
}
