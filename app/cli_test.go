package app_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/cidstore/cidstore/app"
)

// runCLI runs the command line in-process with env as the whole
// environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &app.CLI{Version: "test", Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, LookupEnv: envOf(env)}
	code = c.Run(args)
	return code, out.String(), errb.String()
}

func TestCLIUsage(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command", code: 2, stderr: "usage: cidstore COMMAND"},
		{name: "help", args: []string{"help"}, code: 0, stderr: "commands:"},
		{name: "help settings", args: []string{"help", "settings"}, code: 0, stdout: "| `--rest-addr` | `CIDSTORE_REST_ADDR` | `127.0.0.1:8000` |"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, code: 0, stdout: "cidstore test ("},
		{name: "command help", args: []string{"put", "-h"}, code: 0, stderr: "CIDSTORE_DATA_DIR"},
		{name: "unknown flag", args: []string{"get", "--nope", key}, code: 2, stderr: "flag provided but not defined: -nope"},
		{name: "too few args", args: []string{"put", key}, code: 2, stderr: "usage: cidstore put [flags] KEY VALUE"},
		{name: "too many args", args: []string{"get", key, key}, code: 2, stderr: "usage: cidstore get"},
		{name: "bad key", args: []string{"get", "xyz"}, code: 2, stderr: "key: cidstore: invalid argument"},
		{name: "zero value", args: []string{"put", key, "00000000-0000-0000-0000-000000000000"}, code: 2, stderr: "value:"},
		{name: "bad setting", env: map[string]string{"CIDSTORE_SYNC": "sometimes"}, args: []string{"version"}, code: 2,
			stderr: "setting sync (from environment CIDSTORE_SYNC)"},
		{name: "compact needs hdf5", env: map[string]string{"CIDSTORE_BACKEND": "mem"}, args: []string{"compact"}, code: 2,
			stderr: "compact needs backend hdf5"},
		{name: "wal-repair not wired", args: []string{"wal-repair", "/tmp/x.wal"}, code: 1, stderr: "not available"},
		{name: "flags after arguments", args: []string{"get", key, "--client-timeout", "1ms", "--endpoint", "tcp://127.0.0.1:9"},
			code: 1, stderr: "timed out"},
		{name: "-- ends flags", args: []string{"get", "--", "-x"}, code: 2, stderr: `key: cidstore: invalid argument: "-x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("stdout %q, stderr %q; want %q, %q", out, errs, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestCLIWALRepair(t *testing.T) {
	var got string
	var out bytes.Buffer
	c := &app.CLI{Stdout: &out, Stderr: io.Discard, LookupEnv: envOf(nil),
		WALRepair: func(path string, w io.Writer) error { got = path; fmt.Fprintln(w, "repaired"); return nil }}
	if code := c.Run([]string{"wal-repair", "/data/cidstore.wal"}); code != 0 || got != "/data/cidstore.wal" || out.String() != "repaired\n" {
		t.Fatalf("exit %d path %q out %q", code, got, out.String())
	}
}

func TestServeReaderNeedsHDF5(t *testing.T) {
	code, _, errs := runCLI(t, map[string]string{
		"CIDSTORE_ROLE":       "reader",
		"CIDSTORE_BACKEND":    "mem",
		"CIDSTORE_DATA_DIR":   t.TempDir(),
		"CIDSTORE_REST_ADDR":  "127.0.0.1:0",
		"CIDSTORE_LOG_FORMAT": "json",
	}, "serve")
	if code != 2 || !strings.Contains(errs, "role reader needs backend hdf5") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
}
