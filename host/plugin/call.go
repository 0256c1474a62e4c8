package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// current returns the live shim, or an error wrapping ErrUnavailable.
func (p *Plugin) current() (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%s: %w", p.what(), ErrClosed)
	}
	if p.shim == nil {
		return nil, fmt.Errorf("%s: %w: restarting after a crash", p.what(), interfaces.ErrUnavailable)
	}
	return p.shim, nil
}

// call runs one method on the live shim with the slot's deadline, times
// it, and gives its error the plugin's name. A transport failure (the
// process died mid-call) wraps ErrUnavailable and wakes the supervisor.
func call[S, R any](ctx context.Context, p *Plugin, method string, fn func(context.Context, S) (R, error)) (R, error) {
	var zero R
	v, err := p.current()
	if err != nil {
		return zero, err
	}
	s, ok := v.(S)
	if !ok {
		return zero, fmt.Errorf("%s: shim %T is not the expected kind", p.what(), v)
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.CallTimeout)
		defer cancel()
	}
	start := time.Now()
	r, err := fn(ctx, s)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		if errors.Is(err, interfaces.ErrUnavailable) {
			outcome = "unavailable"
		}
		err = fmt.Errorf("%s: %s: %w", p.what(), method, err)
	}
	// Only the transport's failures mark the plugin suspect: a call whose
	// own context ended fails alone, whatever the transport made of it,
	// and a plugin that answered "unavailable" itself (storage-badger on a
	// full disk) is alive: restarting it would only interrupt the calls
	// it still serves (reads, deletes that give space back).
	if outcome == "unavailable" && ctx.Err() == nil && !interfaces.PluginAnswered(err) {
		p.suspect(v)
	}
	p.m.latency.WithLabelValues(p.cfg.Name, method, outcome).Observe(time.Since(start).Seconds())
	return r, err
}
