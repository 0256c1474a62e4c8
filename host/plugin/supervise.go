package plugin

import (
	"context"
	"time"
)

// stableAfter is how long a plugin must run for its next crash to be
// restarted without growing backoff.
const stableAfter = 30 * time.Second

// supervise watches the process and restarts it when it dies.
func (p *Plugin) supervise(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.poke:
		}
		p.mu.Lock()
		pr, up, closed := p.proc, p.shim != nil, p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		if up && pr != nil && !pr.client.Exited() {
			continue
		}
		exited := pr == nil || pr.client.Exited()
		// A call noticed first: give the process a moment to be reaped, so
		// the log says whether it died or hung.
		for wait := 0; !exited && wait < 10; wait++ {
			time.Sleep(50 * time.Millisecond)
			exited = pr.client.Exited()
		}
		p.setDown(pr)
		p.m.crashes.WithLabelValues(p.cfg.Name).Inc()
		if exited {
			p.log.Error("plugin process died; restarting", "what", p.what())
		} else {
			p.log.Error("plugin unreachable; killing and restarting it", "what", p.what())
		}
		if !p.restart(ctx) {
			return
		}
	}
}

func (p *Plugin) setDown(old *proc) {
	p.mu.Lock()
	p.proc, p.shim = nil, nil
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	old.kill() // reaps the process and its goroutines
}

func (p *Plugin) restart(ctx context.Context) bool {
	// A plugin that dies soon after each start waits longer each time; one
	// that ran for a while starts again at once.
	wait := p.opts.MinBackoff
	if time.Since(p.started) < stableAfter {
		wait = min(max(p.lastWait*2, p.opts.MinBackoff), p.opts.MaxBackoff)
	}
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		pr, shim, err := p.launch(ctx)
		if err == nil {
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				pr.kill()
				return false
			}
			p.proc, p.shim = pr, shim
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
			p.started, p.lastWait = time.Now(), wait
			p.m.restarts.WithLabelValues(p.cfg.Name).Inc()
			info := p.Info()
			p.log.Warn("plugin restarted", "attempt", attempt, "name", info.Name, "version", info.Version)
			return true
		}
		p.log.Error("plugin restart failed", "attempt", attempt, "err", err, "retry_in", wait*2)
		wait = min(wait*2, p.opts.MaxBackoff)
	}
}

// suspect takes a shim that failed a call as unavailable out of service
// (later calls fail fast, WaitReady waits for the restart) and wakes the
// supervisor, which kills and restarts the process.
func (p *Plugin) suspect(shim any) {
	p.mu.Lock()
	if p.shim == shim && shim != nil {
		p.shim = nil
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	select {
	case p.poke <- struct{}{}:
	default:
	}
}
