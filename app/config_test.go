package app_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/cidstore/cidstore/app"
	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/core/autotune"
)

// fakeFS serves files from a map, so config tests touch no disk.
type fakeFS map[string]string

func (f fakeFS) read(path string) ([]byte, error) {
	s, ok := f[path]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
	}
	return []byte(s), nil
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedence(t *testing.T) {
	files := fakeFS{
		"/etc/cidstore.yaml": `
data_dir: /file/data
sync: interval
checkpoint_interval: 2s
rest_addr: 127.0.0.1:9100
debug_allow: [10.0.0.0/8, "::1"]
cache_bytes: 2GiB
rate_limit: 2.5
`,
		"/other.yaml": "data_dir: /other/data\n",
		"/pub.yaml":   "data_dir: /pub/data\npub_endpoint: tcp://127.0.0.1:5559\njwt_secret: from-file\n",
		"/secret":     "s3cret-from-file\n",
	}
	cases := []struct {
		name  string
		flags map[string]string
		env   map[string]string
		check func(t *testing.T, c app.Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c app.Config) {
				eq(t, c.DataDir, "./data")
				eq(t, c.Role, "writer")
				eq(t, c.Backend, "hdf5")
				eq(t, c.ReaderRefresh, time.Duration(0))
				eq(t, c.RouterEndpoint, "tcp://127.0.0.1:5558")
				eq(t, c.PullEndpoint, "tcp://127.0.0.1:5557")
				eq(t, c.PubEndpoint, "")
				eq(t, c.RESTAddr, "127.0.0.1:8000")
				eq(t, string(c.JWTSecret), "")
				eq(t, c.Sync, cidstore.SyncAlways)
				eq(t, c.CheckpointInterval, 5*time.Second)
				eq(t, c.CacheBytes, int64(1<<30))
				eq(t, c.WALSizeBytes, int64(cidstore.DefaultWALSizeBytes)) // the service and core agree
				eq(t, c.BatchSize, 256)
				eq(t, c.AutoTune, true)
				eq(t, c.AutoTuneMode, autotune.Hybrid)
				eq(t, c.PromotionThreshold, 2)
				eq(t, fmt.Sprint(c.DebugAllow), "[127.0.0.0/8 ::1/128]")
				eq(t, c.RateLimit, 100.0)
				eq(t, c.ConfigFile, "")
			},
		},
		{
			name: "file over default",
			env:  map[string]string{"CIDSTORE_CONFIG": "/etc/cidstore.yaml"},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.ConfigFile, "/etc/cidstore.yaml")
				eq(t, c.DataDir, "/file/data")
				eq(t, c.Sync, cidstore.SyncInterval)
				eq(t, c.CheckpointInterval, 2*time.Second)
				eq(t, c.RESTAddr, "127.0.0.1:9100")
				eq(t, fmt.Sprint(c.DebugAllow), "[10.0.0.0/8 ::1/128]")
				eq(t, c.CacheBytes, int64(2<<30))
				eq(t, c.RateLimit, 2.5)
				eq(t, c.Role, "writer") // not in the file: default
			},
		},
		{
			name: "env over file",
			env: map[string]string{
				"CIDSTORE_CONFIG":              "/etc/cidstore.yaml",
				"CIDSTORE_DATA_DIR":            "/env/data",
				"CIDSTORE_SYNC":                "none",
				"CIDSTORE_CHECKPOINT_INTERVAL": "7s",
			},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.DataDir, "/env/data")
				eq(t, c.Sync, cidstore.SyncNone)
				eq(t, c.CheckpointInterval, 7*time.Second)
				eq(t, c.RESTAddr, "127.0.0.1:9100") // file still wins over default
			},
		},
		{
			name:  "flag over env over file",
			flags: map[string]string{"data_dir": "/flag/data", "sync": "always"},
			env: map[string]string{
				"CIDSTORE_CONFIG":    "/etc/cidstore.yaml",
				"CIDSTORE_DATA_DIR":  "/env/data",
				"CIDSTORE_SYNC":      "none",
				"CIDSTORE_REST_ADDR": "127.0.0.1:9200",
			},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.DataDir, "/flag/data")
				eq(t, c.Sync, cidstore.SyncAlways)
				eq(t, c.RESTAddr, "127.0.0.1:9200")
				eq(t, c.CheckpointInterval, 2*time.Second)
			},
		},
		{
			name:  "config path: flag over env",
			flags: map[string]string{"config": "/other.yaml"},
			env:   map[string]string{"CIDSTORE_CONFIG": "/etc/cidstore.yaml"},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.DataDir, "/other/data")
				eq(t, c.Sync, cidstore.SyncAlways) // /etc/cidstore.yaml not read
			},
		},
		{
			name: "empty env var counts as unset",
			env:  map[string]string{"CIDSTORE_CONFIG": "/etc/cidstore.yaml", "CIDSTORE_DATA_DIR": ""},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.DataDir, "/file/data")
			},
		},
		{
			// "empty = off" (PROTOCOL.md §4): an empty variable turns the
			// socket off even over the default and the file.
			name: "empty env var switches off what empty means off",
			env:  map[string]string{"CIDSTORE_CONFIG": "/pub.yaml", "CIDSTORE_PULL_ENDPOINT": "", "CIDSTORE_PUB_ENDPOINT": "", "CIDSTORE_JWT_SECRET": "", "CIDSTORE_DATA_DIR": ""},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.PullEndpoint, "")
				eq(t, c.PubEndpoint, "")
				eq(t, len(c.JWTSecret), 0)
				eq(t, c.DataDir, "/pub/data") // an empty CIDSTORE_DATA_DIR still counts as unset
			},
		},
		{
			name:  "auto-tuning settings",
			flags: map[string]string{"auto_tune_mode": "latency"},
			env:   map[string]string{"CIDSTORE_AUTO_TUNE": "false"},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.AutoTune, false)
				eq(t, c.AutoTuneMode, autotune.Latency)
			},
		},
		{
			name:  "empty flag counts as set",
			flags: map[string]string{"pull_endpoint": ""},
			check: func(t *testing.T, c app.Config) {
				eq(t, c.PullEndpoint, "")
			},
		},
		{
			name: "jwt secret from file",
			env:  map[string]string{"CIDSTORE_JWT_SECRET_FILE": "/secret"},
			check: func(t *testing.T, c app.Config) {
				eq(t, string(c.JWTSecret), "s3cret-from-file")
			},
		},
		{
			name:  "debug allow none",
			flags: map[string]string{"debug_allow": "none"},
			check: func(t *testing.T, c app.Config) {
				eq(t, len(c.DebugAllow), 0)
				if c.DebugAllow == nil {
					t.Fatal("none must give an empty, non-nil list (nil means loopback)")
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.Load(app.Sources{Flags: tc.flags, LookupEnv: envOf(tc.env), ReadFile: files.read})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	files := fakeFS{
		"/typo.yaml":   "data_dri: /x\n",
		"/nested.yaml": "data_dir: {a: 1}\n",
		"/bad.yaml":    "sync: sometimes\n",
		"/notyaml":     "a: [\n",
		"/empty":       "\n",
	}
	cases := []struct {
		name  string
		flags map[string]string
		env   map[string]string
		want  []string // substrings of the error
	}{
		{name: "bad sync from env", env: map[string]string{"CIDSTORE_SYNC": "sometimes"},
			want: []string{"setting sync (from environment CIDSTORE_SYNC)"}},
		{name: "bad sync from file", env: map[string]string{"CIDSTORE_CONFIG": "/bad.yaml"},
			want: []string{"setting sync (from file /bad.yaml)"}},
		{name: "every error at once", flags: map[string]string{"checkpoint_interval": "soon", "cache_bytes": "lots", "role": "boss"},
			want: []string{"flag --checkpoint-interval", "flag --cache-bytes", "flag --role"}},
		{name: "out of range", flags: map[string]string{"batch_size": "31", "promotion_threshold": "3"},
			want: []string{"batch_size 31", "promotion_threshold 3"}},
		{name: "unknown file key", flags: map[string]string{"config": "/typo.yaml"}, want: []string{`unknown setting "data_dri"`}},
		{name: "nested value", flags: map[string]string{"config": "/nested.yaml"}, want: []string{"data_dir"}},
		{name: "not yaml", flags: map[string]string{"config": "/notyaml"}, want: []string{"/notyaml"}},
		{name: "missing file", flags: map[string]string{"config": "/nope.yaml"}, want: []string{"/nope.yaml"}},
		{name: "both secrets", env: map[string]string{"CIDSTORE_JWT_SECRET": "a", "CIDSTORE_JWT_SECRET_FILE": "/empty"},
			want: []string{"both set"}},
		{name: "empty secret file", env: map[string]string{"CIDSTORE_JWT_SECRET_FILE": "/empty"}, want: []string{"is empty"}},
		{name: "bad cidr", flags: map[string]string{"debug_allow": "10.0.0.0/99"}, want: []string{"debug_allow"}},
		{name: "bad auto-tune settings", flags: map[string]string{"auto_tune": "maybe", "auto_tune_mode": "fast"},
			want: []string{"flag --auto-tune", "flag --auto-tune-mode", "want throughput, latency or hybrid"}},
		{name: "bad backend", flags: map[string]string{"backend": "sqlite"}, want: []string{"flag --backend", "want hdf5 or mem"}},
		{name: "reader on mem", flags: map[string]string{"role": "reader", "backend": "mem"}, want: []string{"role reader needs backend hdf5"}},
		{name: "bad reader refresh", env: map[string]string{"CIDSTORE_READER_REFRESH": "-1s"}, want: []string{"environment CIDSTORE_READER_REFRESH"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.Load(app.Sources{Flags: tc.flags, LookupEnv: envOf(tc.env), ReadFile: files.read})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	given := app.Flags(fs)
	if err := fs.Parse([]string{"--data-dir", "/d", "-sync=none", "--pub-endpoint="}); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(given())
	if want := "map[data_dir:/d pub_endpoint: sync:none]"; got != want {
		t.Fatalf("given = %s, want %s", got, want)
	}
}

func TestSettingsTable(t *testing.T) {
	// PROTOCOL.md §4: these variables exist with these defaults.
	want := map[string]string{
		"CIDSTORE_DATA_DIR":            "./data",
		"CIDSTORE_ROLE":                "writer",
		"CIDSTORE_BACKEND":             "hdf5",
		"CIDSTORE_READER_REFRESH":      "",
		"CIDSTORE_ROUTER_ENDPOINT":     "tcp://127.0.0.1:5558",
		"CIDSTORE_PULL_ENDPOINT":       "tcp://127.0.0.1:5557",
		"CIDSTORE_PUB_ENDPOINT":        "",
		"CIDSTORE_REST_ADDR":           "127.0.0.1:8000",
		"CIDSTORE_JWT_SECRET":          "",
		"CIDSTORE_SYNC":                "always",
		"CIDSTORE_CHECKPOINT_INTERVAL": "5s",
		"CIDSTORE_CACHE_BYTES":         "1GiB",
		"CIDSTORE_CONFIG":              "",
		"CIDSTORE_LOG_LEVEL":           "info",
		"CIDSTORE_WAL_SIZE":            "128MiB",
		"CIDSTORE_DEBUG_ALLOW":         "127.0.0.0/8,::1/128",
		"CIDSTORE_RATE_LIMIT":          "100",
	}
	seen := map[string]bool{}
	for _, s := range app.Settings() {
		if seen[s.Env()] {
			t.Errorf("duplicate setting %s", s.Env())
		}
		seen[s.Env()] = true
		if def, ok := want[s.Env()]; ok && def != s.Default {
			t.Errorf("%s default %q, want %q", s.Env(), s.Default, def)
		}
		if s.Usage == "" {
			t.Errorf("%s has no usage", s.Key)
		}
	}
	for env := range want {
		if !seen[env] {
			t.Errorf("missing setting %s", env)
		}
	}
	var b bytes.Buffer
	app.PrintSettings(&b)
	if !strings.Contains(b.String(), "| `--data-dir` | `CIDSTORE_DATA_DIR` | `./data` |") {
		t.Fatalf("settings table:\n%s", b.String())
	}
}

func TestReaderRefreshInterval(t *testing.T) {
	for _, tc := range []struct{ refresh, ckpt, want time.Duration }{
		{0, 5 * time.Second, time.Second},
		{0, 200 * time.Millisecond, 200 * time.Millisecond},
		{50 * time.Millisecond, 5 * time.Second, 50 * time.Millisecond},
	} {
		c := app.Config{ReaderRefresh: tc.refresh, CheckpointInterval: tc.ckpt}
		eq(t, c.ReaderRefreshInterval(), tc.want)
	}
}

func TestClientEndpoint(t *testing.T) {
	for _, tc := range []struct{ router, endpoint, want string }{
		{"tcp://127.0.0.1:5558", "", "tcp://127.0.0.1:5558"},
		{"tcp://*:5558", "", "tcp://127.0.0.1:5558"},
		{"tcp://0.0.0.0:5558", "", "tcp://127.0.0.1:5558"},
		{"tcp://[::]:5558", "", "tcp://[::1]:5558"},
		{"tcp://*:5558", "tcp://db1:6000", "tcp://db1:6000"},
		{"ipc:///run/cidstore.sock", "", "ipc:///run/cidstore.sock"},
	} {
		t.Run(tc.router+"|"+tc.endpoint, func(t *testing.T) {
			c := app.Config{RouterEndpoint: tc.router, Endpoint: tc.endpoint}
			eq(t, c.ClientEndpoint(), tc.want)
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}
