package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/client"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The end-to-end tests build the real binary and drive it as an operator
// would: environment settings, the CLI over ZeroMQ, HTTP probes, signals.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// binary builds cmd/cidstore once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cidstore-e2e-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "cidstore")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/cidstore")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// instance is one server's settings; it can be started several times on
// the same data directory.
type instance struct {
	t       *testing.T
	bin     string
	env     []string
	restURL string
	router  string
	secret  string

	cmd     *exec.Cmd
	logs    *logBuffer
	exited  chan struct{} // closed when cmd has exited
	waitErr error         // cmd.Wait's result, set before exited is closed
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	rest := freePort(t)
	router, pull := freePort(t), freePort(t)
	in := &instance{
		t:       t,
		bin:     binary(t),
		restURL: fmt.Sprintf("http://127.0.0.1:%d", rest),
		router:  fmt.Sprintf("tcp://127.0.0.1:%d", router),
		secret:  "e2e-secret-e2e-secret-e2e-secret!",
	}
	// The test's own CIDSTORE_* variables must not leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CIDSTORE_") {
			in.env = append(in.env, kv)
		}
	}
	in.env = append(in.env,
		"CIDSTORE_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		fmt.Sprintf("CIDSTORE_REST_ADDR=127.0.0.1:%d", rest),
		"CIDSTORE_ROUTER_ENDPOINT="+in.router,
		fmt.Sprintf("CIDSTORE_PULL_ENDPOINT=tcp://127.0.0.1:%d", pull),
		"CIDSTORE_JWT_SECRET="+in.secret,
		"CIDSTORE_CLIENT_TIMEOUT=10s",
		"CIDSTORE_LOG_LEVEL=debug",
	)
	return in
}

// start runs `cidstore serve` and waits until /ready answers 200.
func (in *instance) start() {
	in.t.Helper()
	in.launch()
	in.waitReady()
}

// launch runs `cidstore serve` without waiting for it.
func (in *instance) launch() {
	t := in.t
	t.Helper()
	cmd := exec.Command(in.bin, "serve")
	cmd.Env = in.env
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	in.cmd, in.logs, in.exited = cmd, logs, exited
	go func() { in.waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
}

// waitReady waits until /ready answers 200.
func (in *instance) waitReady() {
	in.t.Helper()
	in.waitStatus(http.StatusOK)
}

// waitStatus polls /ready until it answers code.
func (in *instance) waitStatus(want int) {
	t := in.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := in.http("GET", "/ready", "", "")
		if code == want {
			return
		}
		select {
		case <-in.exited:
			t.Fatalf("server exited before /ready %d: %v\n%s", want, in.waitErr, in.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready not %d after 30s (last %d)\n%s", want, code, in.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// setenv sets a variable of the instance's environment (exec keeps the
// last of duplicate keys).
func (in *instance) setenv(key, value string) { in.env = append(in.env, key+"="+value) }

// getenv returns the value of a variable of the instance's environment.
func (in *instance) getenv(key string) string {
	v := ""
	for _, kv := range in.env {
		if x, ok := strings.CutPrefix(kv, key+"="); ok {
			v = x
		}
	}
	return v
}

// stop sends sig and returns the exit code.
func (in *instance) stop(sig syscall.Signal) int {
	t := in.t
	t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after %v\n%s", sig, in.logs.String())
	}
	return in.cmd.ProcessState.ExitCode()
}

// cli runs a client command of the binary against the instance.
func (in *instance) cli(stdin string, args ...string) (string, error) {
	in.t.Helper()
	cmd := exec.Command(in.bin, args...)
	cmd.Env = in.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cidstore %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (in *instance) mustCLI(args ...string) string {
	in.t.Helper()
	out, err := in.cli("", args...)
	if err != nil {
		in.t.Fatal(err)
	}
	return out
}

// http does one request; code 0 means no answer.
func (in *instance) http(method, path, body, token string) (int, string) {
	req, err := http.NewRequest(method, in.restURL+path, strings.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric scrapes /metrics and returns the value of the unlabelled gauge or
// counter name; ok is false when it is not exported.
func (in *instance) metric(name string) (v float64, ok bool) {
	in.t.Helper()
	code, body := in.http("GET", "/metrics", "", "")
	if code != 200 {
		in.t.Fatalf("/metrics %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		in.t.Fatalf("parse /metrics: %v", err)
	}
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 {
		return 0, false
	}
	m := f.GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue(), true
	}
	return m.GetCounter().GetValue(), true
}

// logBuffer collects a child's output; it may be read while the child
// still writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func e(i int) cidstore.E { return cidstore.DeriveString(strconv.Itoa(i)) }

func TestEndToEndServe(t *testing.T) {
	in := newInstance(t)
	in.start()
	// The default backend is HDF5.
	if _, err := os.Stat(filepath.Join(in.getenv("CIDSTORE_DATA_DIR"), "cidstore.h5")); err != nil {
		t.Fatalf("default backend: %v", err)
	}

	// Probes.
	if code, body := in.http("GET", "/health", "", ""); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/health %d %s", code, body)
	}

	// put / get / del through the CLI.
	k := "0123456789abcdef0123456789abcdef"
	in.mustCLI("put", k, "00000000-0000-0000-0000-000000000003")
	in.mustCLI("put", k, "00000000000000000000000000000001")
	in.mustCLI("put", k, "00000000000000000000000000000002")
	in.mustCLI("del", k, "00000000000000000000000000000002")
	want := "00000000000000000000000000000001\n00000000000000000000000000000003\n"
	if got := in.mustCLI("get", k); got != want {
		t.Fatalf("get = %q, want %q", got, want)
	}
	if got := in.mustCLI("get", "ffffffffffffffffffffffffffffffff"); got != "" {
		t.Fatalf("get absent = %q", got)
	}

	// import from stdin: 2 500 pairs over 1 000 keys.
	var lines strings.Builder
	lines.WriteString("# generated\n")
	for i := range 2500 {
		fmt.Fprintf(&lines, "%s %s\n", e(i%1000).String(), e(100000+i).UUID())
	}
	out, err := in.cli(lines.String(), "import", "-")
	if err != nil || !strings.Contains(out, "imported 2500 pairs") {
		t.Fatalf("import: %v\n%s", err, out)
	}

	// stats over ZeroMQ.
	if out := in.mustCLI("stats"); !strings.Contains(out, "latency_p99") || !strings.Contains(out, "throughput_ops") {
		t.Fatalf("stats: %s", out)
	}

	// /metrics parses and counts what was done.
	code, body := in.http("GET", "/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	if v := fams["cidstore_store_keys"].GetMetric()[0].GetGauge().GetValue(); v != 1001 {
		t.Errorf("cidstore_store_keys = %v, want 1001", v)
	}
	inserts := 0.0
	for _, m := range fams["cidstore_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["op_code"] == "INSERT" && labels["code"] == "200" {
			inserts = m.GetCounter().GetValue()
		}
	}
	if inserts != 3 {
		t.Errorf("cidstore_requests_total{op_code=INSERT,code=200} = %v, want 3", inserts)
	}
	for _, name := range []string{"cidstore_wal_syncs_total", "cidstore_request_duration_seconds", "cidstore_build_info", "go_goroutines",
		"cidstore_autotune_batch_size", "cidstore_autotune_flush_interval_seconds", "cidstore_autotune_decisions_total",
		"cidstore_autotune_circuit_open", "cidstore_batcher_group_pairs"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}

	// Admin PUT with and without a token.
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"role": "admin", "exp": time.Now().Add(time.Minute).Unix(),
	}).SignedString([]byte(in.secret))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := in.http("PUT", "/config/batch_size", `{"batch_size": 512}`, ""); code != 401 {
		t.Fatalf("PUT without token: %d %s", code, body)
	}
	if code, body := in.http("PUT", "/config/batch_size", `{"batch_size": 512}`, tok); code != 200 {
		t.Fatalf("PUT batch_size: %d %s", code, body)
	}
	// The auto-tuner continues from the set value; with no traffic it
	// holds it (idle periods move nothing).
	if code, body := in.http("GET", "/config/batch_size", "", ""); code != 200 || !strings.Contains(body, `:512}`) {
		t.Fatalf("GET batch_size after PUT: %d %s", code, body)
	}
	if code, body := in.http("PUT", "/config/promotion_threshold", `{"promotion_threshold": 1}`, tok); code != 200 {
		t.Fatalf("PUT promotion_threshold: %d %s", code, body)
	}
	if code, body := in.http("GET", "/config/promotion_threshold", "", ""); code != 200 || !strings.Contains(body, `:1}`) {
		t.Fatalf("GET promotion_threshold: %d %s", code, body)
	}

	// Graceful stop, then the data is still there.
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, in.logs.String())
	}
	for _, msg := range []string{`"stopping"`, `"data plane closed"`, `"store closed"`, `"shutdown complete"`} {
		if !strings.Contains(in.logs.String(), msg) {
			t.Errorf("log lacks %s", msg)
		}
	}
	in.start()
	if got := in.mustCLI("get", k); got != want {
		t.Fatalf("after restart get = %q, want %q", got, want)
	}
	if got := in.mustCLI("get", e(999).String()); !strings.Contains(got, e(100000+999).String()) ||
		!strings.Contains(got, e(100000+1999).String()) || !strings.Contains(got, e(100000+2499-500).String()) {
		t.Fatalf("after restart imported key 999 = %q", got)
	}
	if code := in.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, in.logs.String())
	}

	// wal-repair runs on the stopped server's WAL.
	dataDir := in.getenv("CIDSTORE_DATA_DIR")
	if out := in.mustCLI("wal-repair", filepath.Join(dataDir, "cidstore.wal")); !strings.Contains(out, "valid records") {
		t.Fatalf("wal-repair: %s", out)
	}
}

// TestEndToEndKill9 kills the server with SIGKILL while a client ingests,
// restarts it, and checks that every acknowledged pair survived.
func TestEndToEndKill9(t *testing.T) {
	in := newInstance(t)
	// Checkpoints commit to the HDF5 file many times during the ingest, so
	// that the kill can land in a commit as well as between WAL appends.
	in.setenv("CIDSTORE_CHECKPOINT_INTERVAL", "50ms")
	in.start()

	cl, err := client.Dial(in.router, client.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	const killAfter = 3000 // acknowledged pairs before the kill
	var acked []cidstore.Pair
	killed := make(chan struct{})
	ingestDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			// Mix single inserts and small batches; keys repeat so that
			// keys get several values.
			var batch []cidstore.Pair
			n := 1 + i%7
			for j := range n {
				batch = append(batch, cidstore.Pair{Key: e(i % 500), Value: e(1_000_000 + i*8 + j)})
			}
			var err error
			if n == 1 {
				err = cl.Insert(ctx, batch[0].Key, batch[0].Value)
			} else {
				err = cl.InsertBatch(ctx, batch)
			}
			if err != nil {
				select {
				case <-killed:
					ingestDone <- nil // expected: the server is gone
				default:
					ingestDone <- fmt.Errorf("insert before the kill: %w", err)
				}
				return
			}
			acked = append(acked, batch...)
			if len(acked) >= killAfter && i%2 == 0 {
				select {
				case <-killed:
				default:
					if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
						ingestDone <- err
						return
					}
					close(killed)
				}
			}
		}
	}()
	select {
	case err := <-ingestDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("ingest did not end 60s after start")
	}
	<-in.exited
	if ws, ok := in.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("server was not killed by SIGKILL: %v", in.cmd.ProcessState)
	}

	in.start()
	check, err := client.Dial(in.router, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	byKey := map[cidstore.E]map[cidstore.E]bool{}
	for _, p := range acked {
		if byKey[p.Key] == nil {
			byKey[p.Key] = map[cidstore.E]bool{}
		}
		byKey[p.Key][p.Value] = true
	}
	missing := 0
	for k, vals := range byKey {
		got, err := check.Get(context.Background(), k)
		if err != nil {
			t.Fatalf("get after restart: %v", err)
		}
		have := map[cidstore.E]bool{}
		for _, v := range got {
			have[v] = true
		}
		for v := range vals {
			if !have[v] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged pairs lost after kill -9\n%s", missing, len(acked), in.logs.String())
	}
	// The restart loaded an HDF5 checkpoint and replayed only the WAL
	// records after it (without one it would replay every acknowledged
	// pair, and more records: batches add TXN markers).
	recovered, _ := in.metric("cidstore_wal_recovered_records")
	ckptLSN, _ := in.metric("cidstore_checkpoint_lsn")
	if recovered >= float64(len(acked)) || ckptLSN == 0 {
		t.Errorf("restart replayed %v WAL records for %d acknowledged pairs, checkpoint LSN %v: no HDF5 checkpoint was used", recovered, len(acked), ckptLSN)
	}
	t.Logf("%d acknowledged pairs over %d keys all present after kill -9 (checkpoint LSN %v, %v WAL records replayed)",
		len(acked), len(byKey), ckptLSN, recovered)
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestEndToEndMemBackend checks that backend mem still serves and keeps
// its data across a graceful restart, in its snapshot file.
func TestEndToEndMemBackend(t *testing.T) {
	in := newInstance(t)
	in.setenv("CIDSTORE_BACKEND", "mem")
	in.start()
	k := "0123456789abcdef0123456789abcdef"
	in.mustCLI("put", k, "00000000000000000000000000000001")
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, in.logs.String())
	}
	dir := in.getenv("CIDSTORE_DATA_DIR")
	if _, err := os.Stat(filepath.Join(dir, "cidstore.snapshot")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cidstore.h5")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backend mem created an HDF5 file: %v", err)
	}
	in.start()
	if got := in.mustCLI("get", k); got != "00000000000000000000000000000001\n" {
		t.Fatalf("after restart get = %q", got)
	}
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestEndToEndReplica runs a writer and a reader (role reader) on one data
// directory: the reader waits for the writer's file, then follows its
// checkpoints; it never shows a value that was not inserted, refuses
// mutations with 503, and keeps serving after the writer stops.
func TestEndToEndReplica(t *testing.T) {
	w := newInstance(t)
	w.setenv("CIDSTORE_CHECKPOINT_INTERVAL", "200ms")
	dataDir := w.getenv("CIDSTORE_DATA_DIR")
	r := newInstance(t)
	r.setenv("CIDSTORE_ROLE", "reader")
	r.setenv("CIDSTORE_DATA_DIR", dataDir)
	r.setenv("CIDSTORE_CHECKPOINT_INTERVAL", "200ms") // reader_refresh follows: 200ms

	// A reader started first waits, not ready, and creates nothing.
	r.launch()
	r.waitStatus(http.StatusServiceUnavailable)
	rc, err := client.Dial(r.router, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Get(context.Background(), e(1)); !client.IsCode(err, client.CodeUnavailable) {
		t.Fatalf("GET on a reader with no store: %v, want 503", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reader created the data directory: %v", err)
	}

	w.start()
	r.waitReady()
	wc, err := client.Dial(w.router, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()

	// sent[k] holds every value ever sent for k, recorded before sending.
	var mu sync.Mutex
	sent := map[cidstore.E]map[cidstore.E]bool{}
	const nkeys = 300
	keys := make([]cidstore.E, nkeys)
	for i := range keys {
		keys[i] = e(i)
		sent[keys[i]] = map[cidstore.E]bool{}
	}

	// A checker reads the reader while the writer ingests.
	stopCheck := make(chan struct{})
	checkDone := make(chan error, 1)
	checks := 0
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopCheck:
				checkDone <- nil
				return
			default:
			}
			k := keys[(i*7)%nkeys]
			got, err := rc.Get(context.Background(), k)
			if err != nil {
				checkDone <- fmt.Errorf("reader GET during ingest: %w", err)
				return
			}
			mu.Lock()
			for _, v := range got {
				if !sent[k][v] {
					mu.Unlock()
					checkDone <- fmt.Errorf("reader returned %v for key %v, which was never inserted", v, k)
					return
				}
			}
			mu.Unlock()
			checks++
		}
	}()

	// Ingest: single inserts and batches, several values per key (some keys
	// spill to value sets), over several checkpoints.
	ctx := context.Background()
	var acked []cidstore.Pair
	for i := 0; len(acked) < 6000; i++ {
		n := 1 + i%13
		batch := make([]cidstore.Pair, n)
		for j := range batch {
			batch[j] = cidstore.Pair{Key: keys[(i*13+j)%nkeys], Value: e(1_000_000 + i*16 + j)}
		}
		mu.Lock()
		for _, p := range batch {
			sent[p.Key][p.Value] = true
		}
		mu.Unlock()
		var err error
		if n == 1 {
			err = wc.Insert(ctx, batch[0].Key, batch[0].Value)
		} else {
			err = wc.InsertBatch(ctx, batch)
		}
		if err != nil {
			t.Fatalf("insert on the writer: %v", err)
		}
		acked = append(acked, batch...)
	}
	close(stopCheck)
	if err := <-checkDone; err != nil {
		t.Fatalf("%v\nreader log:\n%s", err, r.logs.String())
	}

	// The reader converges on every acknowledged pair.
	want := map[cidstore.E]map[cidstore.E]bool{}
	for _, p := range acked {
		if want[p.Key] == nil {
			want[p.Key] = map[cidstore.E]bool{}
		}
		want[p.Key][p.Value] = true
	}
	converged := func() bool {
		for k, vals := range want {
			got, err := rc.Get(ctx, k)
			if err != nil {
				t.Fatalf("reader GET: %v", err)
			}
			if len(got) != len(vals) {
				return false
			}
			for _, v := range got {
				if !vals[v] {
					t.Fatalf("reader returned %v for key %v, which was never inserted", v, k)
				}
			}
		}
		return true
	}
	t0 := time.Now()
	for !converged() {
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("reader did not see every acknowledged pair 30s after the ingest\nreader log:\n%s", r.logs.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval, bounded by the deadline
	}
	t.Logf("reader saw all %d pairs over %d keys %v after the ingest (%d reads checked during it)",
		len(acked), len(want), time.Since(t0).Round(time.Millisecond), checks)

	// Mutations on the reader answer 503; its files stay the writer's.
	if err := rc.Insert(ctx, e(1), e(2)); !client.IsCode(err, client.CodeUnavailable) {
		t.Fatalf("INSERT on the reader: %v, want 503", err)
	}
	if err := rc.Delete(ctx, e(1)); !client.IsCode(err, client.CodeUnavailable) {
		t.Fatalf("DELETE on the reader: %v, want 503", err)
	}
	if got, err := rc.Get(ctx, e(1)); err != nil || slices.Contains(got, e(2)) {
		t.Fatalf("reader GET after a refused INSERT: %v %v", got, err)
	}

	// Lag gauges and store gauges of the reader.
	lsn, ok := r.metric("cidstore_replica_checkpoint_lsn")
	if !ok || lsn == 0 {
		t.Errorf("cidstore_replica_checkpoint_lsn = %v (exported %v)", lsn, ok)
	}
	if age, ok := r.metric("cidstore_replica_refresh_age_seconds"); !ok || age < 0 || age > 10 {
		t.Errorf("cidstore_replica_refresh_age_seconds = %v (exported %v)", age, ok)
	}
	if keys, _ := r.metric("cidstore_store_keys"); keys != float64(len(want)) {
		t.Errorf("reader cidstore_store_keys = %v, want %d", keys, len(want))
	}

	// The writer stops (final checkpoint); the reader keeps serving.
	if code := w.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("writer exit %d after SIGTERM\n%s", code, w.logs.String())
	}
	if !converged() {
		t.Fatal("reader lost pairs after the writer stopped")
	}
	if code, _ := r.http("GET", "/ready", "", ""); code != 200 {
		t.Fatalf("reader /ready %d after the writer stopped", code)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("reader exit %d after SIGTERM\n%s", code, r.logs.String())
	}
	for _, bad := range []string{`"level":"error"`, `"level":"warn"`} {
		if strings.Contains(r.logs.String(), bad) {
			t.Errorf("reader logged at %s:\n%s", bad, r.logs.String())
		}
	}
}

// TestEndToEndStartFailure checks that a start that cannot complete exits
// non-zero with the reason in the log, and frees what it bound.
func TestEndToEndStartFailure(t *testing.T) {
	in := newInstance(t)
	ln, err := net.Listen("tcp", strings.TrimPrefix(in.restURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(in.bin, "serve")
	cmd.Env = in.env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("address already in use")) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}
