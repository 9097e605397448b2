package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	restapi "github.com/cidstore/cidstore/transport-rest"
	zmqserver "github.com/cidstore/cidstore/transport-zmq"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Module is the fx wiring of `cidstore serve`. The logger is built by the
// caller (it also reports configuration errors) and supplied here.
//
// Start order (OnStart hooks, registered by the Invokes in this order):
//
//  1. REST: bind and serve, so /health answers and /ready says 503 while
//     the store recovers;
//  2. data plane: start the write batcher and the auto-tuner's loop (role
//     writer), bind the ZeroMQ sockets, so that requests arriving while
//     the store recovers are answered 503 "not ready" (PROTOCOL.md §1.3);
//  3. store: open the backend and replay the WAL (bounded by
//     start_timeout; this is the one hook that takes long). Role reader
//     starts the replica instead, which loads the writer's file in the
//     background: /ready stays 503 until its first load;
//  4. readiness: Ready.
//
// fx runs OnStop hooks in reverse, which is the shutdown order of STYLE.md:
// readiness Stopping (/ready 503, new data-plane requests 503) → close the
// ZeroMQ server, draining in-flight requests (its stop hook is registered
// after the store's, although its start hook runs before), then stop the
// auto-tuner's loop and close the write batcher, which flushes the groups
// it holds → close the store
// (final checkpoint, WAL sync, backend close; a reader stops refreshing and
// closes its read-only store and file) → stop REST last, so probes and
// scrapes see the whole shutdown.
func Module(cfg Config, version string, log *zap.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func(l *zap.Logger) fxevent.Logger {
			fl := &fxevent.ZapLogger{Logger: l.Named("fx")}
			// fx's own events, failures included, are debug detail: the
			// serve command logs the error that matters once.
			fl.UseLogLevel(zapcore.DebugLevel)
			fl.UseErrorLevel(zapcore.DebugLevel)
			return fl
		}),
		fx.StartTimeout(cfg.StartTimeout),
		fx.StopTimeout(cfg.ShutdownTimeout),
		fx.Provide(
			func() *prometheus.Registry { return NewRegistry(version) },
			func(r *prometheus.Registry) prometheus.Registerer { return r },
			func(r *prometheus.Registry) prometheus.Gatherer { return r },
			newReadiness,
			newStoreHandle,
			newTuner,
			newZMQObserver,
			newRESTServer,
			newDataPlane,
		),
		fx.Invoke(
			registerREST,
			registerDataPlane,
			registerStore,
			registerDataPlaneStop,
			registerReadiness,
		),
	)
}

// restServer is the REST control plane's HTTP server.
type restServer struct {
	srv *http.Server
	log *zap.Logger
}

func newRESTServer(cfg Config, reg prometheus.Gatherer, ready *Readiness, st *storeHandle,
	tuner *tuner, log *zap.Logger) (*restServer, error) {
	rl := cfg.RateLimit
	if rl == 0 {
		rl = -1 // restapi: negative disables
	}
	h, err := restapi.New(restapi.Config{
		JWTSecret:  cfg.JWTSecret,
		DebugAllow: cfg.DebugAllow,
		RateLimit:  rl,
		RateBurst:  cfg.RateBurst,
	}, restapi.Deps{
		Ready:     ready.Ready,
		Gatherer:  reg,
		Promotion: st,
		BatchSize: tuner,
		Buckets:   st,
		Logger:    newKVLogger(log, "rest"),
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.JWTSecret) == 0 {
		log.Info("admin endpoints disabled: no jwt_secret configured")
	} else if len(cfg.JWTSecret) < 32 {
		log.Warn("jwt_secret is shorter than 32 bytes; HS256 secrets should be at least 32 random bytes")
	}
	errLog, err := zap.NewStdLogAt(log.Named("http"), zapcore.WarnLevel)
	if err != nil {
		return nil, err
	}
	return &restServer{
		srv: &http.Server{
			Addr:              cfg.RESTAddr,
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          errLog,
		},
		log: log,
	}, nil
}

func registerREST(lc fx.Lifecycle, rs *restServer) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", rs.srv.Addr)
			if err != nil {
				return fmt.Errorf("rest: listen %s: %w", rs.srv.Addr, err)
			}
			rs.log.Info("rest listening", zap.String("addr", ln.Addr().String()))
			go func() {
				if err := rs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					rs.log.Error("rest: serve", zap.Error(err))
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			if err := rs.srv.Shutdown(ctx); err != nil {
				return fmt.Errorf("rest: shutdown: %w", err)
			}
			rs.log.Info("rest stopped")
			return nil
		},
	})
}

func registerStore(lc fx.Lifecycle, cfg Config, h *storeHandle, ready *Readiness, reg prometheus.Registerer, log *zap.Logger) error {
	if err := reg.Register(newStoreCollector(h.stats)); err != nil {
		return err
	}
	if cfg.Role == "reader" {
		return registerReplica(lc, cfg, h, ready, reg, log)
	}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ready.Set(StateRecovering)
			t0 := time.Now()
			st, err := openStore(cfg, newKVLogger(log, "store"), h.notify)
			if err != nil {
				return err
			}
			h.set(st)
			s := st.Stats()
			log.Info("store open",
				zap.String("role", cfg.Role),
				zap.String("backend", cfg.Backend),
				zap.String("data_dir", cfg.DataDir),
				zap.Uint64("keys", s.Keys),
				zap.Uint64("values", s.Values),
				zap.Uint64("recovered_records", s.RecoveredRecords),
				zap.Duration("took", time.Since(t0)))
			return nil
		},
		OnStop: func(context.Context) error {
			t0 := time.Now()
			if err := h.close(); err != nil {
				return fmt.Errorf("close store: %w", err)
			}
			log.Info("store closed", zap.Duration("took", time.Since(t0)))
			return nil
		},
	})
	return nil
}

// registerReplica is the store hook of role reader: it starts the replica,
// which loads the writer's file in the background (/ready answers 503
// until the first load), and stops it on shutdown.
func registerReplica(lc fx.Lifecycle, cfg Config, h *storeHandle, ready *Readiness, reg prometheus.Registerer, log *zap.Logger) error {
	r := newReplica(cfg, h, log)
	if err := reg.Register(newReplicaCollector(r)); err != nil {
		return err
	}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ready.Set(StateRecovering)
			r.start()
			log.Info("replica started",
				zap.String("role", cfg.Role),
				zap.String("path", cfg.H5Path()),
				zap.Duration("refresh", cfg.ReaderRefreshInterval()))
			return nil
		},
		OnStop: func(context.Context) error {
			t0 := time.Now()
			if err := r.close(); err != nil {
				return fmt.Errorf("close replica: %w", err)
			}
			log.Info("store closed", zap.Duration("took", time.Since(t0)))
			return nil
		},
	})
	return nil
}

// dataPlane holds the ZeroMQ server between its start hook (before the
// store opens) and its stop hook (before the store closes), and, for a
// writer, the write batcher between the server and the store.
type dataPlane struct {
	srv     *zmqserver.Server
	batcher *Batcher
}

func newDataPlane() *dataPlane { return &dataPlane{} }

func registerDataPlane(lc fx.Lifecycle, cfg Config, h *storeHandle, ready *Readiness, obs *zmqObserver,
	dp *dataPlane, tu *tuner, log *zap.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			// The server reaches the store through the handle: until the
			// store is open, Ready is false and every request gets 503.
			// A writer's single-pair mutations go through the batcher,
			// whose knobs the auto-tuner's loop turns.
			var st zmqserver.Store = replicaView{h}
			if cfg.Role != "reader" {
				dp.batcher = NewBatcher(writerView{h}, tu.ctrl, tu.met.observeGroup)
				tu.start(dp.batcher)
				st = dp.batcher
			}
			srv, err := zmqserver.New(st, zmqserver.Config{
				RouterEndpoint:  cfg.RouterEndpoint,
				PullEndpoint:    cfg.PullEndpoint,
				PubEndpoint:     cfg.PubEndpoint,
				MaxFrameBytes:   cfg.MaxFrameBytes,
				MaxBatchEntries: cfg.MaxBatchEntries,
				QueueDepth:      cfg.QueueDepth,
				Workers:         cfg.Workers,
				ReadOnly:        cfg.Role == "reader",
				Ready:           ready.Ready,
			}, obs, newKVLogger(log, "zmq"))
			if err == nil {
				err = srv.Start()
			}
			if err != nil {
				dp.stopBatcher(tu)
				return err
			}
			dp.srv = srv
			h.setNotify(srv.Notify)
			return nil
		},
	})
}

// stopBatcher stops the auto-tuner's loop and closes the batcher, which
// flushes what it holds (the store is still open).
func (dp *dataPlane) stopBatcher(tu *tuner) {
	tu.halt()
	if dp.batcher != nil {
		dp.batcher.Close()
		dp.batcher = nil
	}
}

// registerDataPlaneStop closes the data plane, draining in-flight requests,
// then the batcher, before the store closes.
func registerDataPlaneStop(lc fx.Lifecycle, h *storeHandle, dp *dataPlane, tu *tuner, log *zap.Logger) {
	lc.Append(fx.Hook{
		OnStop: func(context.Context) error {
			if dp.srv == nil {
				dp.stopBatcher(tu)
				return nil
			}
			err := dp.srv.Close()
			dp.stopBatcher(tu)
			h.setNotify(nil)
			if err != nil {
				return fmt.Errorf("close data plane: %w", err)
			}
			log.Info("data plane closed")
			return nil
		},
	})
}

func registerReadiness(lc fx.Lifecycle, ready *Readiness, log *zap.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ready.Set(StateReady)
			log.Info("ready")
			return nil
		},
		OnStop: func(context.Context) error {
			ready.Set(StateStopping)
			log.Info("stopping")
			return nil
		},
	})
}
