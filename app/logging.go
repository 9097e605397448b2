package app

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the process logger writing to w at cfg.LogLevel: JSON
// lines when w is not a terminal (containers, files, log shippers), a
// readable console format on a terminal; cfg.LogFormat forces either.
func NewLogger(cfg Config, w io.Writer) *zap.Logger {
	console := cfg.LogFormat == "console" || (cfg.LogFormat == "auto" && isTerminal(w))
	var enc zapcore.Encoder
	if console {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "ts"
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		ec.EncodeDuration = zapcore.SecondsDurationEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	ws := zapcore.Lock(zapcore.AddSync(w))
	return zap.New(zapcore.NewCore(enc, ws, cfg.LogLevel), zap.AddCaller(), zap.ErrorOutput(ws))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// kvLogger adapts zap to the small Info/Warn/Error(msg, kv...) logger that
// core (port.Logger) and the transports take. kv alternates keys and values.
type kvLogger struct{ s *zap.SugaredLogger }

func newKVLogger(l *zap.Logger, name string) kvLogger {
	return kvLogger{l.Named(name).WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l kvLogger) Info(msg string, kv ...any)  { l.s.Infow(msg, kv...) }
func (l kvLogger) Warn(msg string, kv ...any)  { l.s.Warnw(msg, kv...) }
func (l kvLogger) Error(msg string, kv ...any) { l.s.Errorw(msg, kv...) }
