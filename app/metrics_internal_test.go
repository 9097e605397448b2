package app

import (
	"context"
	"strings"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStoreCollector(t *testing.T) {
	st, err := cidstore.Open(memstore.New(), cidstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	k := cidstore.DeriveString("k")
	for i := range 3 {
		if err := st.Insert(ctx, k, cidstore.DeriveString(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.GC(ctx); err != nil {
		t.Fatal(err)
	}

	h := newStoreHandle(Config{PromotionThreshold: 2})
	c := newStoreCollector(h.stats)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d metrics before the store is open, want 0", n)
	}
	h.set(st)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP cidstore_store_keys Live keys.
# TYPE cidstore_store_keys gauge
cidstore_store_keys 1
# HELP cidstore_store_values Live values over all keys.
# TYPE cidstore_store_values gauge
cidstore_store_values 3
# HELP cidstore_gc_full_scans_total Garbage-collection passes with a full scan.
# TYPE cidstore_gc_full_scans_total counter
cidstore_gc_full_scans_total 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "cidstore_store_keys", "cidstore_store_values", "cidstore_gc_full_scans_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c); n != len(c.descs) {
		t.Fatalf("%d metrics, want %d", n, len(c.descs))
	}
}

func TestZMQObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := newZMQObserver(reg)
	o.ObserveRequest("INSERT", 200, 0.0003)
	o.ObserveRequest("INSERT", 200, 0.002)
	o.ObserveRequest("GET", 422, 0.0001)
	o.ObserveRejected("pull", 400)
	o.ObserveDropped("router", 2)
	o.SetQueueDepth(7)
	o.ObserveNotify(5)

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	for _, tc := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{o.requests.WithLabelValues("INSERT", "200"), 2},
		{o.requests.WithLabelValues("GET", "422"), 1},
		{o.rejected.WithLabelValues("400"), 1},
		{o.dropped.WithLabelValues("router"), 2},
		{o.queue, 7},
		{o.notifications, 5},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("got %v, want %v", got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(o.duration); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry("v1.2.3")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "cidstore_build_info" {
			found = strings.Contains(f.String(), "v1.2.3")
		}
	}
	if !found {
		t.Fatal("cidstore_build_info{version=v1.2.3} missing")
	}
	// The process's registry is never the global default one.
	if prometheus.Registerer(reg) == prometheus.DefaultRegisterer {
		t.Fatal("NewRegistry returned the default registry")
	}
}

func TestStoreHandle(t *testing.T) {
	h := newStoreHandle(Config{PromotionThreshold: 1})
	if h.PromotionThreshold() != 1 {
		t.Fatal("configured threshold not reported before open")
	}
	if err := h.SetPromotionThreshold(2); err == nil {
		t.Fatal("set before open succeeded")
	}
	if _, err := h.BucketInfo(0); err == nil {
		t.Fatal("bucket info before open succeeded")
	}
	st, err := cidstore.Open(memstore.New(), cidstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.set(st)
	if err := h.SetPromotionThreshold(1); err != nil || h.PromotionThreshold() != 1 {
		t.Fatalf("set: %v, now %d", err, h.PromotionThreshold())
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	if err := h.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, ok := h.stats(); ok {
		t.Fatal("stats after close")
	}
}
