package plugin

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogHclog is an hclog.Logger that writes into a slog.Logger, so that the
// lines a plugin logs (go-plugin relays them through hclog) land in the
// host's log with their level and fields.
type slogHclog struct {
	l     *slog.Logger
	name  string
	args  []any
	level hclog.Level
}

func newSlogHclog(l *slog.Logger, name string) *slogHclog {
	return &slogHclog{l: l, name: name, level: hclog.Trace}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *slogHclog) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || level == hclog.Off {
		return
	}
	all := make([]any, 0, len(h.args)+len(args)+2)
	all = append(all, "slot", h.name)
	all = append(all, h.args...)
	all = append(all, args...)
	h.l.Log(context.Background(), slogLevel(level), msg, all...)
}

func (h *slogHclog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHclog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHclog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHclog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHclog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHclog) enabled(l hclog.Level) bool {
	return l >= h.level && h.l.Enabled(context.Background(), slogLevel(l))
}
func (h *slogHclog) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *slogHclog) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *slogHclog) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *slogHclog) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *slogHclog) IsError() bool { return h.enabled(hclog.Error) }

func (h *slogHclog) ImpliedArgs() []any { return h.args }

func (h *slogHclog) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *slogHclog) Name() string { return h.name }

func (h *slogHclog) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *slogHclog) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *slogHclog) SetLevel(level hclog.Level) { h.level = level }
func (h *slogHclog) GetLevel() hclog.Level      { return h.level }

func (h *slogHclog) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *slogHclog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
