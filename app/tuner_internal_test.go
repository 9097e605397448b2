package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/core/autotune"
	restapi "github.com/cidstore/cidstore/transport-rest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The REST port sets the controller's batch size (the loop continues from
// it); decisions are counted by reason and logged with their inputs.
func TestTunerWiring(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.DebugLevel)
	tu, err := newTuner(Config{BatchSize: 128, AutoTune: true, AutoTuneMode: autotune.Latency}, reg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if got := tu.BatchSize(); got != 128 {
		t.Fatalf("BatchSize = %d, want the configured 128", got)
	}
	if err := tu.SetBatchSize(1025); !errors.Is(err, restapi.ErrOutOfRange) {
		t.Fatalf("SetBatchSize(1025) = %v, want restapi.ErrOutOfRange", err)
	}
	if err := tu.SetBatchSize(64); err != nil {
		t.Fatal(err)
	}
	if got := tu.ctrl.BatchSize(); got != 64 {
		t.Fatalf("controller batch size %d after PUT 64", got)
	}
	tu.ctrl.Step(autotune.Sample{}) // idle

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP cidstore_autotune_batch_size Current batch size of the write batcher (auto-tuned, or set by PUT /config/batch_size).
# TYPE cidstore_autotune_batch_size gauge
cidstore_autotune_batch_size 64
# HELP cidstore_autotune_circuit_open 1 while the auto-tuner's circuit breaker holds the safe values, else 0.
# TYPE cidstore_autotune_circuit_open gauge
cidstore_autotune_circuit_open 0
# HELP cidstore_autotune_flush_interval_seconds Current flush interval of the write batcher: the longest a group waits for more pairs.
# TYPE cidstore_autotune_flush_interval_seconds gauge
cidstore_autotune_flush_interval_seconds 0.0001
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"cidstore_autotune_batch_size", "cidstore_autotune_circuit_open", "cidstore_autotune_flush_interval_seconds"); err != nil {
		t.Fatal(err)
	}
	for reason, n := range map[autotune.Reason]float64{autotune.ReasonManual: 1, autotune.ReasonIdle: 1, autotune.ReasonAdjust: 0} {
		if got := testutil.ToFloat64(tu.met.decisions.WithLabelValues(string(reason))); got != n {
			t.Errorf("decisions{reason=%s} = %v, want %v", reason, got, n)
		}
	}
	manual := logs.FilterField(zap.String("reason", "manual")).All()
	if len(manual) != 1 || manual[0].ContextMap()["batch_after"] != int64(64) {
		t.Fatalf("manual decision log %v, want one entry with batch_after 64", manual)
	}
	tu.met.observeGroup(7)
	if n := testutil.CollectAndCount(tu.met.groups); n != 1 {
		t.Fatalf("group histogram: %d series", n)
	}
}
