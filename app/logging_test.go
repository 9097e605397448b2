package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestLoggerFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		json   bool
	}{
		{"auto", true}, // a regular file is not a terminal
		{"json", true},
		{"console", false},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			l := NewLogger(Config{LogFormat: tc.format, LogLevel: zapcore.InfoLevel}, f)
			newKVLogger(l, "core").Info("checkpoint done", "lsn", 42)
			l.Debug("hidden below info")
			_ = l.Sync()
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 1 {
				t.Fatalf("want 1 line, got %q", b)
			}
			var m map[string]any
			isJSON := json.Unmarshal([]byte(lines[0]), &m) == nil
			if isJSON != tc.json {
				t.Fatalf("json=%v, want %v: %s", isJSON, tc.json, lines[0])
			}
			if tc.json && (m["msg"] != "checkpoint done" || m["lsn"] != 42.0 || m["logger"] != "core") {
				t.Fatalf("fields: %v", m)
			}
			if !tc.json && !strings.Contains(lines[0], `"lsn": 42`) {
				t.Fatalf("console line: %s", lines[0])
			}
		})
	}
}
