package zmqserver

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	c := Config{MaxFrameBytes: 10, MaxBatchEntries: -1, QueueDepth: -1, Workers: -2, NotifyQueueLen: -1, ShutdownTimeout: -1}
	err := c.Validate()
	for _, want := range []string{"frame", "batch", "queue", "workers", "notify", "shutdown", "router"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem about %s", err, want)
		}
	}
	d := DefaultConfig()
	if err := d.Validate(); err != nil || d.PullEndpoint != DefaultPullEndpoint || d.PubEndpoint != "" {
		t.Errorf("DefaultConfig() = %+v, %v", d, err)
	}
}
