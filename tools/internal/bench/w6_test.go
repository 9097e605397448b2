package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestW6 runs W6 end to end on a tiny data set with every service engine:
// the servers are real processes (bin/cidstore, redis-server, the echo
// server re-executed from this test binary).
func TestW6(t *testing.T) {
	for _, spec := range ServiceEngines() {
		t.Run(spec.Name, func(t *testing.T) {
			opts := ServiceOptions{Window: 4, Clients: 8, Lookups: 400}
			if err := ServiceEngineAvailable(spec.Name, opts); err != nil {
				t.Skipf("engine %s cannot run here: %v", spec.Name, err)
			}
			dir := t.TempDir()
			cfg := Config{
				Workload: "W6", Engine: spec, Keys: 1500, Batch: 100,
				Sync: true, Seed: 42, Dir: dir, Service: opts, Log: t.Output(),
			}
			r, err := runW6(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Mismatches != 0 {
				t.Fatalf("%d mismatches: %s", r.Mismatches, r.FirstMismatch)
			}
			f := r.ServiceFigures
			if f == nil {
				t.Fatal("no W6 figures")
			}
			const gets = 440 // L + L/10
			if r.Lookups != gets || f.Lookups8 != gets {
				t.Errorf("GETs = %d and %d, want %d each", r.Lookups, f.Lookups8, gets)
			}
			if r.Pairs == 0 || r.InsertPairsPerS <= 0 || r.LookupP50Us <= 0 || f.Lookup8P50Us <= 0 ||
				f.Lookup8OpsPerS <= 0 || r.PeakRSSBytes <= 0 || f.ClientPeakRSSBytes <= 0 {
				t.Errorf("empty figures: %+v %+v", r, *f)
			}
			if f.ServerExitCode != 0 || f.Clients != 8 || f.Window != 4 {
				t.Errorf("exit %d, clients %d, window %d", f.ServerExitCode, f.Clients, f.Window)
			}
			if f.Verified != (spec.Name != "zmq-echo") {
				t.Errorf("verified = %v", f.Verified)
			}
			if spec.Durable(true) && r.DiskBytes <= 0 {
				t.Errorf("disk bytes %d", r.DiskBytes)
			}
			want := map[string]string{"cidstore-zmq": "always", "zmq-echo": "none",
				"redis-always": "always", "redis-everysec": "everysec"}[spec.Name]
			if r.Sync != want {
				t.Errorf("sync = %q, want %q", r.Sync, want)
			}
			checkJSONFields(t, r)
			b, _ := json.Marshal(r)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"lookup8_p50_us", "lookup8_p99_us", "lookup8_p999_us", "lookup8_avg_us",
				"lookup8_ops_per_s", "window", "clients", "server_cpu_s"} {
				if _, ok := m[k]; !ok {
					t.Errorf("JSON line lacks %q: %s", k, b)
				}
			}
			var back Result
			if err := json.Unmarshal(b, &back); err != nil || back.ServiceFigures == nil || *back.ServiceFigures != *f {
				t.Errorf("JSON round trip: %v, %+v", err, back.ServiceFigures)
			}
		})
	}
}

// TestW6Engines checks that W6 refuses the store engines and that the
// service engines refuse the other workloads.
func TestW6Engines(t *testing.T) {
	gomap, err := LookupEngine("gomap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runW6(Config{Workload: "W6", Engine: gomap, Keys: 10, Batch: 10, Dir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "service engines") {
		t.Errorf("W6 on gomap: err = %v", err)
	}
	for _, name := range strings.Split(DefaultServiceEngines, ",") {
		spec, err := LookupEngine(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Open(t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "only in workload W6") {
			t.Errorf("%s: Open err = %v", name, err)
		}
	}
	for _, s := range Engines() {
		if IsServiceEngine(s.Name) {
			t.Errorf("Engines() lists the service engine %s", s.Name)
		}
	}
}

func TestResolveCidstoreBin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cidstore")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := ResolveCidstoreBin(bin); err != nil || got != bin {
		t.Errorf("explicit path: %q, %v", got, err)
	}
	t.Setenv(CidstoreBinEnv, bin)
	if got, err := ResolveCidstoreBin(""); err != nil || got != bin {
		t.Errorf("$%s: %q, %v", CidstoreBinEnv, got, err)
	}
	if _, err := ResolveCidstoreBin(dir); err == nil {
		t.Error("a directory resolved as the binary")
	}
	t.Setenv(CidstoreBinEnv, filepath.Join(dir, "absent"))
	if _, err := ResolveCidstoreBin(""); err == nil || !strings.Contains(err.Error(), CidstoreBinEnv) {
		t.Errorf("absent $%s: err = %v", CidstoreBinEnv, err)
	}
}

// TestServiceFiguresJSONNames checks that no W6 field shares its JSON name
// with another field of Result: encoding/json silently drops both fields of
// a clash between embedded structs.
func TestServiceFiguresJSONNames(t *testing.T) {
	names := func(rt reflect.Type) map[string]bool {
		m := map[string]bool{}
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous || !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			m[name] = true
		}
		return m
	}
	w6 := names(reflect.TypeFor[ServiceFigures]())
	rt := reflect.TypeFor[Result]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == reflect.TypeFor[ServiceFigures]() {
			continue
		}
		others := map[string]bool{}
		if f.Anonymous && ft.Kind() == reflect.Struct {
			others = names(ft)
		} else {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			others[name] = true
		}
		for n := range others {
			if w6[n] {
				t.Errorf("JSON name %q of ServiceFigures is also Result.%s's", n, f.Name)
			}
		}
	}
}
