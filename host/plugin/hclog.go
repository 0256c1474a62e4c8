package plugin

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// slogHclog is an hclog.Logger that writes into a slog.Logger, so that the
// lines a plugin logs land in the host's log at their own level, tagged
// with the plugin's slot. go-plugin relays a plugin's stderr through it:
// a line in hclog's JSON format (what interfaces.Serve makes slog write in
// a plugin) arrives here with its level, message and fields; any other
// line arrives at DEBUG, or at the level of a "[WARN]"-style prefix.
type slogHclog struct {
	l     *slog.Logger // already carries the slot
	name  string       // hclog's logger name; go-plugin names it after the binary
	args  []any
	level hclog.Level // NoLevel: whatever the slog handler enables
}

func newSlogHclog(l *slog.Logger, slot string) *slogHclog {
	return &slogHclog{l: l.With("slot", slot), level: hclog.NoLevel}
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
	if level == hclog.Off || !h.enabled(level) {
		return
	}
	// go-plugin appends the plugin's own timestamp to each relayed JSON
	// line; the host's record has its own time, a few microseconds later.
	if n := len(args); n >= 2 && args[n-2] == "timestamp" {
		args = args[:n-2]
	}
	all := make([]any, 0, len(h.args)+len(args))
	all = append(all, h.args...)
	for i := 0; i+1 < len(args); i += 2 {
		k, v := args[i], args[i+1]
		if k == "@module" { // the plugin's logger name, as hclog spells it
			k = "module"
		}
		all = append(all, k, v)
	}
	if len(args)%2 == 1 {
		all = append(all, "extra", args[len(args)-1])
	}
	h.l.Log(context.Background(), slogLevel(level), msg, all...)
}

func (h *slogHclog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHclog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHclog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHclog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHclog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHclog) enabled(l hclog.Level) bool {
	if h.level != hclog.NoLevel && l < h.level {
		return false
	}
	return h.l.Enabled(context.Background(), slogLevel(l))
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

// Name, Named and ResetNamed keep hclog's name but never log it: go-plugin
// names its logger after the plugin's executable, and the slot already
// says which plugin spoke.
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

// GetLevel is the lowest level the host's log takes: go-plugin skips
// parsing a plugin's lines below it.
func (h *slogHclog) GetLevel() hclog.Level {
	if h.level != hclog.NoLevel {
		return h.level
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.l.Enabled(context.Background(), slogLevel(l)) {
			return l
		}
	}
	return hclog.Error
}

func (h *slogHclog) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *slogHclog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}

// lineLogger is an io.Writer that logs each complete line written to it
// as go-plugin logs a plugin's stderr: a Go plugin's writes to os.Stderr
// after it started serving travel in go-plugin's stdio stream, not on the
// process's stderr, and arrive here.
type lineLogger struct {
	h      *slogHclog
	stream string

	mu  sync.Mutex
	buf []byte
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.logLine(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a line that never ends: log it in pieces
		w.logLine(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

func (w *lineLogger) logLine(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	level := hclog.Debug
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}} {
		if strings.HasPrefix(line, p.prefix) {
			level = p.level
			break
		}
	}
	w.h.Log(level, line, "stream", w.stream)
}
