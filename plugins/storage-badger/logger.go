package storagebadger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// slogAdapter routes Badger's printf-style logs into slog, so the plugin's
// logs reach the host instead of stderr. Messages are formatted only when
// the handler wants their level.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	a.l.Log(ctx, level, msg, "component", "badger")
}

func (a slogAdapter) Errorf(f string, v ...any)   { a.log(slog.LevelError, f, v) }
func (a slogAdapter) Warningf(f string, v ...any) { a.log(slog.LevelWarn, f, v) }

// Badger logs routine work (table opens, compactions) at Info; that is Debug
// for a node operator.
func (a slogAdapter) Infof(f string, v ...any)  { a.log(slog.LevelDebug, f, v) }
func (a slogAdapter) Debugf(f string, v ...any) { a.log(slog.LevelDebug, f, v) }
