// Package plugin loads and supervises a node's plugins. From config, a
// plugin is either built in (the sotto binary re-executes itself as
// `sotto plugin NAME`) or external (any executable named by path). It runs
// the plugin under go-plugin, hands it its raw config, relays its logs into
// the host's slog, and watches it: a crashed plugin is restarted with
// backoff, its death is logged and counted, and calls made while it is down
// fail with errors wrapping interfaces.ErrUnavailable.
//
// The host uses a kind through a supervised handle (Storage for the storage
// kind) that never changes across restarts.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sottonet/sotto/interfaces"
)

// Errors of the loader.
var (
	// ErrConfig: the plugin slot's config is wrong. Wraps ErrInvalidArgument.
	ErrConfig = fmt.Errorf("plugin config: %w", interfaces.ErrInvalidArgument)
	// ErrHandshake: the executable is not a plugin of the expected kind and
	// protocol version.
	ErrHandshake = errors.New("plugin handshake refused")
	// ErrClosed: the plugin was closed. Wraps ErrUnavailable.
	ErrClosed = fmt.Errorf("plugin closed: %w", interfaces.ErrUnavailable)
)

// Plugin is one supervised plugin process.
type Plugin struct {
	cfg  Config
	opts Options
	kind *interfaces.Kind
	log  *slog.Logger
	m    *metrics

	mu      sync.Mutex
	client  *goplugin.Client
	shim    any // the dispensed host-side shim; nil while down
	closed  bool
	changed chan struct{} // closed and replaced when shim changes
	poke    chan struct{} // a call saw the plugin unavailable

	life context.Context // ends at Close; plugin processes die with it
	stop context.CancelFunc
	done chan struct{}

	// Owned by the supervisor goroutine (and Start before it runs).
	started  time.Time
	lastWait time.Duration
}

// Start launches the plugin, hands it its config and starts supervising
// it. It fails (without leaving a process behind) if the first start fails:
// a node must not come up with a broken slot. Close stops it.
func Start(ctx context.Context, cfg Config, opts Options) (*Plugin, error) {
	kind, ok := interfaces.LookupKind(cfg.Kind)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unknown plugin kind %q (known: %s)", ErrConfig, cfg.Kind, strings.Join(interfaces.Kinds(), ", "))
	case (cfg.Builtin == "") == (cfg.Path == ""):
		return nil, fmt.Errorf("%w: %s plugin %q: set exactly one of builtin and path", ErrConfig, cfg.Kind, cfg.Name)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Kind
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(10*time.Second, opts.MinBackoff)
	}
	if cfg.Builtin != "" && opts.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("built-in plugin %q: find own executable: %w", cfg.Builtin, err)
		}
		opts.Self = self
	}
	p := &Plugin{
		cfg: cfg, opts: opts, kind: kind, m: metricsOf(opts.Registerer),
		log:     opts.Logger.With("plugin", cfg.Name, "kind", cfg.Kind),
		changed: make(chan struct{}),
		poke:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	p.life, p.stop = context.WithCancel(context.Background())
	client, shim, err := p.launch(ctx)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.client, p.shim = client, shim
	p.started = time.Now()
	go p.supervise(p.life)
	return p, nil
}

// WaitReady blocks until the plugin is up (it may be restarting), the
// context ends, or the plugin is closed.
func (p *Plugin) WaitReady(ctx context.Context) error {
	for {
		p.mu.Lock()
		up, closed, ch := p.shim != nil, p.closed, p.changed
		p.mu.Unlock()
		switch {
		case closed:
			return fmt.Errorf("%s: %w", p.what(), ErrClosed)
		case up:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s: wait for restart: %w", p.what(), ctx.Err())
		}
	}
}

// Pid returns the plugin process's ID, or 0 while it is down.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return 0
	}
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close stops supervising and stops the plugin process (gracefully, then
// by force); no process outlives it. Calls made after Close fail with
// ErrClosed.
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	client := p.client
	p.client, p.shim = nil, nil
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if client != nil {
		client.Kill() // graceful first, so the plugin can flush and close
	}
	p.stop() // kills a process still in its handshake (a restart)
	<-p.done
	return nil
}
