package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	cidstore "github.com/cidstore/cidstore/core"
	"github.com/cidstore/cidstore/transport-zmq/client"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Exit codes of the cidstore command.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed
	ExitUsage = 2 // bad command line or settings
)

// CLI is the cidstore command line. The zero value is not usable: main sets
// every field.
type CLI struct {
	// Version is printed by `cidstore version` and exported as
	// cidstore_build_info.
	Version string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// LookupEnv reads the environment; os.LookupEnv in the binary.
	LookupEnv func(string) (string, bool)
	// WALRepair repairs the WAL file at path, writing a report to w. The
	// binary sets RepairWAL; nil makes `cidstore wal-repair` report that
	// it is not available.
	WALRepair func(path string, w io.Writer) error
}

// command is one subcommand.
type command struct {
	name, args, help string
	minArgs, maxArgs int
	run              func(c *CLI, ctx context.Context, cfg Config, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "", "run the server (role from --role / CIDSTORE_ROLE)", 0, 0, (*CLI).serve},
		{"put", "KEY VALUE", "insert a pair", 2, 2, (*CLI).put},
		{"get", "KEY", "print the values of KEY, one per line, ascending", 1, 1, (*CLI).get},
		{"del", "KEY [VALUE]", "delete KEY, or only VALUE from KEY", 1, 2, (*CLI).del},
		{"import", "FILE", `insert the "KEY VALUE" lines of FILE ("-" = stdin) in batches`, 1, 1, (*CLI).importFile},
		{"stats", "", "print the server's METRICS", 0, 0, (*CLI).stats},
		{"wal-repair", "PATH", "repair the WAL file at PATH (server stopped)", 1, 1, (*CLI).walRepair},
		{"compact", "", "shrink the HDF5 store in DATA_DIR: replay the WAL, maintain, rewrite (server stopped)", 0, 0, (*CLI).compact},
		{"version", "", "print the version", 0, 0, (*CLI).version},
	}
}

// usageError is a bad command line; Run prints it with usage hints.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run runs the command line args (without the program name) and returns
// the process exit code.
func (c *CLI) Run(args []string) int {
	if len(args) == 0 {
		c.usage()
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[1] == "settings" {
			PrintSettings(c.Stdout)
			return ExitOK
		}
		c.usage()
		return ExitOK
	}
	var cmd *command
	for _, k := range commands() {
		if k.name == name {
			cmd = &k
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(c.Stderr, "cidstore: unknown command %q\n", name)
		c.usage()
		return ExitUsage
	}

	fs := flag.NewFlagSet("cidstore "+name, flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	given := Flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "usage: cidstore %s [flags] %s\n  %s\n\nflags (every one also has an environment variable):\n", cmd.name, cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage // the flag package has printed the error
	}
	if len(pos) < cmd.minArgs || len(pos) > cmd.maxArgs {
		fmt.Fprintf(c.Stderr, "usage: cidstore %s [flags] %s\n", cmd.name, cmd.args)
		return ExitUsage
	}
	cfg, err := Load(Sources{Flags: given(), LookupEnv: c.LookupEnv})
	if err != nil {
		fmt.Fprintf(c.Stderr, "cidstore: %v\n", err)
		return ExitUsage
	}
	// Ctrl-C cancels a client command's request; serve handles signals itself.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if cmd.name != "serve" {
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	if err := cmd.run(c, ctx, cfg, pos); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(c.Stderr, "cidstore %s: %v\n", name, err)
			return ExitUsage
		}
		if !errors.Is(err, errReported) {
			fmt.Fprintf(c.Stderr, "cidstore %s: %v\n", name, err)
		}
		return ExitError
	}
	return ExitOK
}

// errReported is a failure the command has already reported (serve logs its
// own errors).
var errReported = errors.New("reported")

// parseInterleaved parses flags anywhere among the positional arguments
// ("put K V --endpoint X" as well as "put --endpoint X K V"); "--" ends flag
// parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *CLI) usage() {
	fmt.Fprintf(c.Stderr, "usage: cidstore COMMAND [flags] [args]\n\ncommands:\n")
	for _, k := range commands() {
		fmt.Fprintf(c.Stderr, "  %-28s %s\n", strings.TrimSpace(k.name+" "+k.args), k.help)
	}
	fmt.Fprintf(c.Stderr, "  %-28s %s\n", "help settings", "print every setting: flag, environment variable, default")
	fmt.Fprintf(c.Stderr, "\nsettings: flag > environment (CIDSTORE_*) > YAML file (--config) > default.\n"+
		"`cidstore COMMAND -h` lists the flags.\n")
}

func (c *CLI) version(context.Context, Config, []string) error {
	fmt.Fprintf(c.Stdout, "cidstore %s (%s %s/%s)\n", c.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// RepairWAL is the wal-repair command's default: core's RepairWAL, which
// keeps every valid record up to the first damaged one.
func RepairWAL(path string, w io.Writer) error {
	n, err := cidstore.RepairWAL(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: kept %d valid records; the store can be opened now\n", path, n)
	return nil
}

func (c *CLI) walRepair(_ context.Context, _ Config, args []string) error {
	if c.WALRepair == nil {
		return errors.New("not available in this build")
	}
	return c.WALRepair(args[0], c.Stdout)
}

// serve runs the server until SIGINT or SIGTERM, then shuts down gracefully
// and returns nil (exit 0). A second signal during shutdown exits at once
// with ExitError.
func (c *CLI) serve(_ context.Context, cfg Config, _ []string) error {
	log := NewLogger(cfg, c.Stderr)
	defer func() { _ = log.Sync() }()
	log.Info("cidstore starting",
		zap.String("version", c.Version),
		zap.String("role", cfg.Role),
		zap.String("data_dir", cfg.DataDir),
		zap.Stringer("sync", cfg.Sync),
		zap.Duration("checkpoint_interval", cfg.CheckpointInterval),
		zap.String("config_file", cfg.ConfigFile))
	if limit, set := memoryLimit(cfg.CacheBytes); set {
		log.Info("go memory limit", zap.Int64("bytes", limit))
	}
	a := fx.New(Module(cfg, c.Version, log))
	if err := a.Err(); err != nil {
		log.Error("wiring", zap.Error(err))
		return errReported
	}
	// Take SIGINT/SIGTERM from now on, so that a signal during a long
	// recovery leads to a graceful stop once the start completes.
	done := a.Wait()
	startCtx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := a.Start(startCtx); err != nil {
		// fx has run the OnStop hooks of what did start.
		log.Error("start", zap.Error(err))
		return errReported
	}
	sig := <-done
	log.Info("shutdown requested", zap.String("signal", sig.Signal.String()))

	force := make(chan os.Signal, 1)
	signal.Notify(force, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(force)
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			log.Error("shutdown", zap.Error(err))
			return errReported
		}
		log.Info("shutdown complete")
		return nil
	case s := <-force:
		log.Error("second signal: exiting without finishing shutdown", zap.String("signal", s.String()))
		return errReported
	}
}

// parseE parses a command-line identifier.
func parseE(what, s string) (cidstore.E, error) {
	e, err := cidstore.ParseE(s)
	if err != nil {
		return e, usageError{fmt.Sprintf("%s: %v", what, err)}
	}
	return e, nil
}

func (c *CLI) put(ctx context.Context, cfg Config, args []string) error {
	k, err := parseE("key", args[0])
	if err != nil {
		return err
	}
	v, err := parseE("value", args[1])
	if err != nil {
		return err
	}
	cl, err := dial(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Insert(ctx, k, v)
}

func (c *CLI) get(ctx context.Context, cfg Config, args []string) error {
	k, err := parseE("key", args[0])
	if err != nil {
		return err
	}
	cl, err := dial(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	vals, err := cl.Get(ctx, k)
	if err != nil {
		return err
	}
	for _, v := range vals {
		fmt.Fprintln(c.Stdout, v.String())
	}
	return nil
}

func (c *CLI) del(ctx context.Context, cfg Config, args []string) error {
	k, err := parseE("key", args[0])
	if err != nil {
		return err
	}
	var v cidstore.E
	if len(args) == 2 {
		if v, err = parseE("value", args[1]); err != nil {
			return err
		}
	}
	cl, err := dial(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if len(args) == 2 {
		return cl.DeleteValue(ctx, k, v)
	}
	return cl.Delete(ctx, k)
}

func (c *CLI) stats(ctx context.Context, cfg Config, _ []string) error {
	cl, err := dial(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := cl.Metrics(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "latency_p99            %g\n", m.LatencyP99Seconds)
	fmt.Fprintf(c.Stdout, "throughput_ops         %g\n", m.ThroughputOps)
	fmt.Fprintf(c.Stdout, "buffer_occupancy       %d\n", m.BufferOccupancy)
	fmt.Fprintf(c.Stdout, "flush_duration         %g\n", m.FlushDurationSeconds)
	fmt.Fprintf(c.Stdout, "lock_contention_ratio  %g\n", m.LockContentionRatio)
	fmt.Fprintf(c.Stdout, "error_rate             %g\n", m.ErrorRate)
	return nil
}

// dial connects the CLI's client to the server's ROUTER socket.
func dial(cfg Config) (*client.Client, error) {
	return client.Dial(cfg.ClientEndpoint(), client.Options{
		Timeout:       cfg.ClientTimeout,
		BatchEntries:  cfg.ImportBatch,
		MaxFrameBytes: cfg.MaxFrameBytes,
	})
}
