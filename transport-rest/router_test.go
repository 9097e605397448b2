package restapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cidstore/cidstore/core/port"
	restapi "github.com/cidstore/cidstore/transport-rest"
	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

var (
	testSecret = []byte("test-secret-that-is-32-bytes-long!")
	// testNow is the fixed clock of every test: tokens and the rate limiter
	// see exactly this time unless a test advances its own clock.
	testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
)

// fakeDeps implements every Deps port with plain fields.
type fakeDeps struct {
	mu        sync.Mutex
	ready     atomic.Bool
	promotion int
	batch     int
	buckets   map[uint32]restapi.BucketInfo
	setErr    error
}

func newFakeDeps() *fakeDeps {
	return &fakeDeps{
		promotion: 2,
		batch:     256,
		buckets: map[uint32]restapi.BucketInfo{
			0: {ID: 0, LocalDepth: 3, EntryCount: 17, SortedCount: 16, SpilledKeys: 1, ChecksumOK: true,
				LastCompacted: time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC),
				DangerScore:   0.25, LastMerge: time.Date(2026, 11, 25, 8, 31, 0, 0, time.UTC)},
			7: {ID: 7, LocalDepth: 1, EntryCount: 2, ChecksumOK: false},
		},
	}
}

func (f *fakeDeps) PromotionThreshold() int { f.mu.Lock(); defer f.mu.Unlock(); return f.promotion }
func (f *fakeDeps) SetPromotionThreshold(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.promotion = n
	return nil
}
func (f *fakeDeps) BatchSize() int { f.mu.Lock(); defer f.mu.Unlock(); return f.batch }
func (f *fakeDeps) SetBatchSize(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.batch = n
	return nil
}
func (f *fakeDeps) BucketInfo(id uint32) (restapi.BucketInfo, error) {
	b, ok := f.buckets[id]
	if !ok {
		return restapi.BucketInfo{}, port.ErrNotFound
	}
	return b, nil
}

func (f *fakeDeps) deps(g prometheus.Gatherer) restapi.Deps {
	return restapi.Deps{
		Ready:     f.ready.Load,
		Gatherer:  g,
		Promotion: f,
		BatchSize: f,
		Buckets:   f,
	}
}

func newHandler(t *testing.T, cfg restapi.Config, d restapi.Deps) http.Handler {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1 // off unless the test is about it
	}
	h, err := restapi.New(cfg, d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

type request struct {
	method, path, body, token, remote string
}

func do(t *testing.T, h http.Handler, r request) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	if r.remote == "" {
		r.remote = "127.0.0.1:40000"
	}
	req.RemoteAddr = r.remote
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// wantStatus checks the status code and, for errors, the error body shape.
func wantStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body %s", w.Code, want, w.Body.String())
	}
	if want < 400 {
		return
	}
	var e struct {
		Error *string `json:"error"`
		Code  *int    `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil || e.Code == nil {
		t.Fatalf("error body %q is not {error, code}: %v", w.Body.String(), err)
	}
	if *e.Code != want || *e.Error == "" {
		t.Fatalf("error body %q: want code %d and a message", w.Body.String(), want)
	}
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

func TestHealth(t *testing.T) {
	h := newHandler(t, restapi.Config{}, restapi.Deps{})
	w := do(t, h, request{path: "/health"})
	wantStatus(t, w, http.StatusOK)
	if got := decode[map[string]string](t, w); got["status"] != "ok" {
		t.Fatalf("body %v", got)
	}
}

func TestReady(t *testing.T) {
	f := newFakeDeps()
	h := newHandler(t, restapi.Config{}, f.deps(nil))
	wantStatus(t, do(t, h, request{path: "/ready"}), http.StatusServiceUnavailable)
	f.ready.Store(true)
	wantStatus(t, do(t, h, request{path: "/ready"}), http.StatusOK)
	f.ready.Store(false) // stopping
	wantStatus(t, do(t, h, request{path: "/ready"}), http.StatusServiceUnavailable)

	// No Ready func at all: never ready.
	h = newHandler(t, restapi.Config{}, restapi.Deps{})
	wantStatus(t, do(t, h, request{path: "/ready"}), http.StatusServiceUnavailable)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cidstore_test_events_total", Help: "Test events."})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cidstore_test_depth", Help: "Test depth."}, []string{"kind"})
	reg.MustRegister(c, g)
	c.Add(3)
	g.WithLabelValues("a").Set(1.5)

	h := newHandler(t, restapi.Config{}, restapi.Deps{Gatherer: reg})
	w := do(t, h, request{path: "/metrics"})
	wantStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	if v := fams["cidstore_test_events_total"].GetMetric()[0].GetCounter().GetValue(); v != 3 {
		t.Fatalf("counter = %v, want 3", v)
	}
	m := fams["cidstore_test_depth"].GetMetric()[0]
	if m.GetGauge().GetValue() != 1.5 || m.GetLabel()[0].GetValue() != "a" {
		t.Fatalf("gauge = %v", m)
	}

	// Without a gatherer the endpoint still answers, empty.
	h = newHandler(t, restapi.Config{}, restapi.Deps{})
	wantStatus(t, do(t, h, request{path: "/metrics"}), http.StatusOK)
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func TestAdminAuth(t *testing.T) {
	pem, err := os.ReadFile("testdata/rsa_test_key.pem")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := jwt.ParseRSAPrivateKeyFromPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	future := testNow.Add(time.Hour).Unix()
	admin := jwt.MapClaims{"role": "admin", "exp": future}
	tokens := []struct {
		name  string
		token string
		raw   string // Authorization header verbatim, when set
		want  int
	}{
		{name: "no token", want: 401},
		{name: "not bearer", raw: "Basic YWRtaW46YWRtaW4=", want: 401},
		{name: "empty bearer", raw: "Bearer ", want: 401},
		{name: "garbage", token: "not.a.jwt", want: 401},
		{name: "bad signature", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-00"), admin), want: 401},
		{name: "expired", token: sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"role": "admin", "exp": testNow.Add(-time.Second).Unix()}), want: 401},
		{name: "not yet valid", token: sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"role": "admin", "exp": future, "nbf": testNow.Add(time.Minute).Unix()}), want: 401},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, admin), want: 401},
		{name: "alg HS384", token: sign(t, jwt.SigningMethodHS384, testSecret, admin), want: 401},
		{name: "alg RS256", token: sign(t, jwt.SigningMethodRS256, rsaKey, admin), want: 401},
		{name: "wrong role", token: sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"role": "reader", "exp": future}), want: 403},
		{name: "no role", token: sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": future}), want: 403},
		{name: "role not a string", token: sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"role": []string{"admin"}, "exp": future}), want: 403},
		{name: "right role", token: sign(t, jwt.SigningMethodHS256, testSecret, admin), want: 200},
		{name: "right role lowercase scheme", raw: "bearer " + sign(t, jwt.SigningMethodHS256, testSecret, admin), want: 200},
		{name: "right role without exp", token: sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"role": "admin"}), want: 401},
	}
	endpoints := []struct{ path, body string }{
		{"/config/promotion_threshold", `{"promotion_threshold": 1}`},
		{"/config/batch_size", `{"batch_size": 512}`},
	}
	for _, secret := range [][]byte{testSecret, nil} {
		for _, ep := range endpoints {
			for _, tc := range tokens {
				name := fmt.Sprintf("secret=%v%s/%s", secret != nil, ep.path, tc.name)
				t.Run(name, func(t *testing.T) {
					f := newFakeDeps()
					h := newHandler(t, restapi.Config{JWTSecret: secret}, f.deps(nil))
					req := httptest.NewRequest(http.MethodPut, ep.path, strings.NewReader(ep.body))
					req.RemoteAddr = "127.0.0.1:40000"
					switch {
					case tc.raw != "":
						req.Header.Set("Authorization", tc.raw)
					case tc.token != "":
						req.Header.Set("Authorization", "Bearer "+tc.token)
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					want := tc.want
					if secret == nil {
						want = 403 // disabled, whatever the token
					}
					wantStatus(t, w, want)
					changed := f.PromotionThreshold() != 2 || f.BatchSize() != 256
					if changed != (want == 200) {
						t.Fatalf("setting changed=%v with status %d", changed, want)
					}
					if want == 401 && w.Header().Get("WWW-Authenticate") == "" {
						t.Fatal("401 without WWW-Authenticate")
					}
				})
			}
		}
	}
}

func TestConfigEndpoints(t *testing.T) {
	f := newFakeDeps()
	h := newHandler(t, restapi.Config{JWTSecret: testSecret}, f.deps(nil))
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"role": "admin", "exp": testNow.Add(time.Hour).Unix()})

	w := do(t, h, request{path: "/config/promotion_threshold"})
	wantStatus(t, w, 200)
	if got := decode[map[string]int](t, w); got["promotion_threshold"] != 2 {
		t.Fatalf("GET promotion = %v", got)
	}
	w = do(t, h, request{path: "/config/batch_size"})
	wantStatus(t, w, 200)
	if got := decode[map[string]int](t, w); got["batch_size"] != 256 {
		t.Fatalf("GET batch = %v", got)
	}

	cases := []struct {
		name, path, body string
		want             int
	}{
		{"promotion 1", "/config/promotion_threshold", `{"promotion_threshold": 1}`, 200},
		{"promotion 2", "/config/promotion_threshold", `{"promotion_threshold":2}`, 200},
		{"promotion 0", "/config/promotion_threshold", `{"promotion_threshold": 0}`, 422},
		{"promotion 3", "/config/promotion_threshold", `{"promotion_threshold": 3}`, 422},
		{"promotion -1", "/config/promotion_threshold", `{"promotion_threshold": -1}`, 422},
		{"promotion malformed", "/config/promotion_threshold", `{"promotion_threshold": `, 400},
		{"promotion string", "/config/promotion_threshold", `{"promotion_threshold": "1"}`, 400},
		{"promotion float", "/config/promotion_threshold", `{"promotion_threshold": 1.5}`, 400},
		{"promotion integral float", "/config/promotion_threshold", `{"promotion_threshold": 1.0}`, 200},
		{"promotion exponent", "/config/promotion_threshold", `{"promotion_threshold": 2e0}`, 200},
		{"promotion huge", "/config/promotion_threshold", `{"promotion_threshold": 100000000000000000000000}`, 422},
		{"promotion huge exponent", "/config/promotion_threshold", `{"promotion_threshold": 1e30}`, 422},
		{"promotion past float64", "/config/promotion_threshold", `{"promotion_threshold": -1e400}`, 422},
		{"promotion fraction out of range", "/config/promotion_threshold", `{"promotion_threshold": 7.5}`, 400},
		{"promotion missing", "/config/promotion_threshold", `{}`, 400},
		{"promotion null", "/config/promotion_threshold", `null`, 400},
		{"promotion empty", "/config/promotion_threshold", ``, 400},
		{"promotion unknown field", "/config/promotion_threshold", `{"promotion_threshold": 1, "x": 1}`, 400},
		{"promotion trailing", "/config/promotion_threshold", `{"promotion_threshold": 1}{}`, 400},
		{"promotion trailing brace", "/config/promotion_threshold", `{"promotion_threshold": 1}}`, 400},
		{"promotion too large", "/config/promotion_threshold", `{"promotion_threshold": 1` + strings.Repeat(" ", 5000) + `}`, 413},
		{"batch 32", "/config/batch_size", `{"batch_size": 32}`, 200},
		{"batch 1024", "/config/batch_size", `{"batch_size": 1024}`, 200},
		{"batch 31", "/config/batch_size", `{"batch_size": 31}`, 422},
		{"batch 1025", "/config/batch_size", `{"batch_size": 1025}`, 422},
		{"batch malformed", "/config/batch_size", `batch_size=64`, 400},
		{"batch wrong field", "/config/batch_size", `{"promotion_threshold": 1}`, 400},
		{"batch overflow", "/config/batch_size", `{"batch_size": 99999999999999999999}`, 422}, // out of range, however large
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeP, beforeB := f.PromotionThreshold(), f.BatchSize()
			w := do(t, h, request{method: http.MethodPut, path: tc.path, body: tc.body, token: tok})
			wantStatus(t, w, tc.want)
			if tc.want != 200 {
				if f.PromotionThreshold() != beforeP || f.BatchSize() != beforeB {
					t.Fatal("a rejected PUT changed a setting")
				}
				return
			}
			// The reply and a following GET both show the new value.
			var sent map[string]float64 // 1.0 and 2e0 are integers too
			if err := json.Unmarshal([]byte(tc.body), &sent); err != nil {
				t.Fatal(err)
			}
			if got := decode[map[string]int](t, w); fmt.Sprint(got) != fmt.Sprint(sent) {
				t.Fatalf("reply %v, want %v", got, sent)
			}
			w = do(t, h, request{path: tc.path})
			if got := decode[map[string]int](t, w); fmt.Sprint(got) != fmt.Sprint(sent) {
				t.Fatalf("GET after PUT %v, want %v", got, sent)
			}
		})
	}

	// Errors from the setter map through the status table.
	for _, tc := range []struct {
		err  error
		want int
	}{
		{restapi.ErrUnavailable, 503},
		{fmt.Errorf("wrapped: %w", port.ErrReadOnly), 503},
		{restapi.ErrOutOfRange, 422},
		{errors.New("disk on fire"), 500},
	} {
		f.setErr = tc.err
		w := do(t, h, request{method: http.MethodPut, path: "/config/batch_size", body: `{"batch_size": 64}`, token: tok})
		wantStatus(t, w, tc.want)
		if tc.want == 500 && strings.Contains(w.Body.String(), "fire") {
			t.Fatalf("internal error leaked: %s", w.Body.String())
		}
	}
	f.setErr = nil

	// Without the ports the endpoints answer 503, not panic.
	h = newHandler(t, restapi.Config{JWTSecret: testSecret}, restapi.Deps{})
	wantStatus(t, do(t, h, request{path: "/config/batch_size"}), 503)
	wantStatus(t, do(t, h, request{path: "/config/promotion_threshold"}), 503)
	wantStatus(t, do(t, h, request{method: http.MethodPut, path: "/config/batch_size", body: `{"batch_size": 64}`, token: tok}), 503)
}

func TestDebugBucket(t *testing.T) {
	f := newFakeDeps()
	h := newHandler(t, restapi.Config{}, f.deps(nil))

	w := do(t, h, request{path: "/debug/bucket/0"})
	wantStatus(t, w, 200)
	got := decode[map[string]any](t, w)
	want := map[string]any{
		"id": 0.0, "local_depth": 3.0, "entry_count": 17.0, "sorted_count": 16.0, "spilled_keys": 1.0,
		"checksum_ok": true, "last_compacted": "2026-11-25T08:30:00Z",
		"danger_score": 0.25, "last_merge": "2026-11-25T08:31:00Z",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bucket 0 = %v, want %v", got, want)
	}
	w = do(t, h, request{path: "/debug/bucket/7", remote: "[::1]:5000"})
	wantStatus(t, w, 200)
	if got := decode[map[string]any](t, w); got["last_compacted"] != nil || got["last_merge"] != nil || got["checksum_ok"] != false {
		t.Fatalf("bucket 7 = %v", got)
	}
	wantStatus(t, do(t, h, request{path: "/debug/bucket/8"}), 404)
	wantStatus(t, do(t, h, request{path: "/debug/bucket/x"}), 400)
	wantStatus(t, do(t, h, request{path: "/debug/bucket/4294967296"}), 400)
	wantStatus(t, do(t, h, request{path: "/debug/bucket/-1"}), 400)

	// Outside the default allow-list: 403, before the id is even looked at.
	for _, remote := range []string{"192.0.2.10:1234", "[2001:db8::1]:1234", "[::ffff:192.0.2.10]:1234"} {
		wantStatus(t, do(t, h, request{path: "/debug/bucket/0", remote: remote}), 403)
		wantStatus(t, do(t, h, request{path: "/debug/bucket/x", remote: remote}), 403)
	}
	// IPv4-mapped loopback is loopback.
	wantStatus(t, do(t, h, request{path: "/debug/bucket/0", remote: "[::ffff:127.0.0.1]:1234"}), 200)
	// Forwarding headers do not change who the caller is.
	req := httptest.NewRequest(http.MethodGet, "/debug/bucket/0", nil)
	req.RemoteAddr = "192.0.2.10:1234"
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	req.Header.Set("X-Real-IP", "127.0.0.1")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	wantStatus(t, w, 403)

	// A configured list replaces the default.
	allow, err := restapi.ParseAllowList("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	h = newHandler(t, restapi.Config{DebugAllow: allow}, f.deps(nil))
	wantStatus(t, do(t, h, request{path: "/debug/bucket/0", remote: "192.0.2.10:1234"}), 200)
	wantStatus(t, do(t, h, request{path: "/debug/bucket/0", remote: "127.0.0.1:1234"}), 403)
	wantStatus(t, do(t, h, request{path: "/debug/bucket/0", remote: "198.51.100.1:1234"}), 403)

	// An empty list allows nobody.
	h = newHandler(t, restapi.Config{DebugAllow: must(restapi.ParseAllowList(""))}, f.deps(nil))
	wantStatus(t, do(t, h, request{path: "/debug/bucket/0"}), 403)
}

// TestDebugBucketOverTCP checks the allow-list against a real loopback peer
// address rather than a hand-set RemoteAddr.
func TestDebugBucketOverTCP(t *testing.T) {
	srv := httptest.NewServer(newHandler(t, restapi.Config{}, newFakeDeps().deps(nil)))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/debug/bucket/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"local_depth":3`)) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
}

func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	h := newHandler(t, restapi.Config{RateLimit: 1, RateBurst: 3, Now: clock}, newFakeDeps().deps(nil))
	for i := range 3 {
		if w := do(t, h, request{path: "/health"}); w.Code != 200 {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
	}
	w := do(t, h, request{path: "/health"})
	wantStatus(t, w, http.StatusTooManyRequests)
	if w.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q, want 1", w.Header().Get("Retry-After"))
	}
	// Every endpoint draws from the same per-client bucket.
	wantStatus(t, do(t, h, request{path: "/metrics"}), http.StatusTooManyRequests)
	// Another client has its own bucket.
	wantStatus(t, do(t, h, request{path: "/health", remote: "127.0.0.2:1"}), 200)
	// Tokens come back with time.
	advance(time.Second)
	wantStatus(t, do(t, h, request{path: "/health"}), 200)
	wantStatus(t, do(t, h, request{path: "/health"}), http.StatusTooManyRequests)

	// A small client table still limits: evicting idle clients does not
	// reset the active one.
	h = newHandler(t, restapi.Config{RateLimit: 1, RateBurst: 1, MaxClients: 2, Now: clock}, restapi.Deps{})
	wantStatus(t, do(t, h, request{path: "/health", remote: "127.0.0.1:1"}), 200)
	advance(2 * time.Second)
	wantStatus(t, do(t, h, request{path: "/health", remote: "127.0.0.2:1"}), 200)
	wantStatus(t, do(t, h, request{path: "/health", remote: "127.0.0.3:1"}), 200) // evicts idle .1
	wantStatus(t, do(t, h, request{path: "/health", remote: "127.0.0.3:1"}), http.StatusTooManyRequests)
}

func TestUnknownRoutes(t *testing.T) {
	h := newHandler(t, restapi.Config{}, restapi.Deps{})
	wantStatus(t, do(t, h, request{path: "/nope"}), 404)
	wantStatus(t, do(t, h, request{method: http.MethodPost, path: "/health"}), 405)
	wantStatus(t, do(t, h, request{method: http.MethodDelete, path: "/config/batch_size"}), 405)
}

func TestParseAllowList(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{name: "empty", in: "", want: "[]"},
		{name: "cidrs", in: "127.0.0.0/8, ::1/128", want: "[127.0.0.0/8 ::1/128]"},
		{name: "bare addresses", in: "10.0.0.1,::1", want: "[10.0.0.1/32 ::1/128]"},
		{name: "host bits masked", in: "192.0.2.77/24", want: "[192.0.2.0/24]"},
		{name: "mapped address", in: "::ffff:10.0.0.1", want: "[10.0.0.1/32]"},
		{name: "bad prefix", in: "10.0.0.0/33", err: true},
		{name: "bad address", in: "localhost", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := restapi.ParseAllowList(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && fmt.Sprint(got) != tc.want {
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := restapi.New(restapi.Config{RateLimit: 1, RateBurst: -1, MaxClients: -1, JWTLeeway: -1}, restapi.Deps{})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"burst", "clients", "leeway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
