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
	"os/exec"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/interfaces"
)

// Config says which plugin fills one slot of the node.
type Config struct {
	// Name names this slot in logs and metrics ("storage").
	Name string
	// Kind is the plugin kind ("storage"); it picks the handshake.
	Kind string
	// Builtin names a plugin compiled into the sotto binary. Exactly one of
	// Builtin and Path is set.
	Builtin string
	// Path is an external plugin executable; Args are passed to it.
	Path string
	Args []string
	// RawConfig is the plugin's own config, passed to it verbatim.
	RawConfig []byte
	// CallTimeout bounds a call that carries no earlier deadline. Default 10s.
	CallTimeout time.Duration
	// StartTimeout bounds the handshake and Configure. Default 30s.
	StartTimeout time.Duration
}

// Options are what the host lends its plugins.
type Options struct {
	// Logger receives host events and the plugins' own logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means metrics are not registered
	// (they are still counted).
	Registerer prometheus.Registerer
	// Self is the executable re-executed for built-in plugins. Default
	// os.Executable(). Tests point it at their own binary.
	Self string
	// Env is added to a plugin's environment (tests use it).
	Env []string
	// MinBackoff and MaxBackoff bound the wait between restarts. Defaults
	// 100ms and 10s; the wait doubles after each failed start.
	MinBackoff, MaxBackoff time.Duration
}

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

// Metrics of all plugins of one host, registered once per registry.
type metrics struct {
	restarts *prometheus.CounterVec
	crashes  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

var (
	metricsMu  sync.Mutex
	metricsFor = map[prometheus.Registerer]*metrics{}
)

func metricsOf(reg prometheus.Registerer) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsFor[reg]; ok && reg != nil {
		return m
	}
	m := &metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "restarts_total",
			Help: "Plugin processes restarted after they died.",
		}, []string{"plugin"}),
		crashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "crashes_total",
			Help: "Plugin processes that died while the host needed them.",
		}, []string{"plugin"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "call_seconds",
			Help:    "Latency of calls into plugins.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}, []string{"plugin", "method", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.restarts, m.crashes, m.latency)
		metricsFor[reg] = m
	}
	return m
}

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

// stableAfter is how long a plugin must run for its next crash to be
// restarted without growing backoff.
const stableAfter = 30 * time.Second

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

// stderrTail keeps the last lines a plugin wrote to stderr, to explain a
// plugin that died before its handshake.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

func (s *stderrTail) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, b...)
	if len(s.buf) > 4096 {
		s.buf = s.buf[len(s.buf)-4096:]
	}
	return len(b), nil
}

func (s *stderrTail) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(string(s.buf))
}

// command builds the plugin's command line. The process is tied to the
// Plugin's lifetime: Close kills it even while go-plugin's handshake (which
// takes no context) is still waiting for it.
func (p *Plugin) command() *exec.Cmd {
	var cmd *exec.Cmd
	if p.cfg.Builtin != "" {
		cmd = exec.CommandContext(p.life, p.opts.Self, "plugin", p.cfg.Builtin)
	} else {
		cmd = exec.CommandContext(p.life, p.cfg.Path, p.cfg.Args...)
	}
	cmd.Env = append(os.Environ(), p.opts.Env...)
	return cmd
}

func (p *Plugin) what() string {
	if p.cfg.Builtin != "" {
		return fmt.Sprintf("%s plugin %q (built-in %s)", p.cfg.Kind, p.cfg.Name, p.cfg.Builtin)
	}
	return fmt.Sprintf("%s plugin %q (%s)", p.cfg.Kind, p.cfg.Name, p.cfg.Path)
}

// launch starts one plugin process, dispenses the kind and configures it.
// On any failure the process is killed before returning.
func (p *Plugin) launch(ctx context.Context) (*goplugin.Client, any, error) {
	tail := &stderrTail{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  p.kind.Handshake(),
		Plugins:          goplugin.PluginSet{p.kind.Name: p.kind.GRPCPlugin()},
		Cmd:              p.command(),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           newSlogHclog(p.opts.Logger, p.cfg.Name),
		Stderr:           tail,
		StartTimeout:     p.cfg.StartTimeout,
	})
	fail := func(err error) (*goplugin.Client, any, error) {
		client.Kill()
		return nil, nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		msg := err.Error()
		if strings.Contains(strings.ToLower(msg), "incompatible api version") {
			return fail(fmt.Errorf("%w: %s: host speaks %s, plugin does not: %v", ErrHandshake, p.what(), p.kind, err))
		}
		if t := tail.String(); t != "" {
			return fail(fmt.Errorf("%w: %s: %v; plugin said: %s", ErrHandshake, p.what(), err, lastLine(t)))
		}
		return fail(fmt.Errorf("%w: %s: %v", ErrHandshake, p.what(), err))
	}
	raw, err := rpc.Dispense(p.kind.Name)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %v", ErrHandshake, p.what(), err))
	}
	conf, ok := raw.(interfaces.Configurer)
	if !ok {
		return fail(fmt.Errorf("%s: shim %T cannot be configured", p.what(), raw))
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if err := conf.Configure(cctx, p.cfg.RawConfig); err != nil {
		return fail(fmt.Errorf("%s: configure: %w", p.what(), err))
	}
	return client, raw, nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

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
		client, up, closed := p.client, p.shim != nil, p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		if up && client != nil && !client.Exited() {
			continue
		}
		exited := client == nil || client.Exited()
		// A call noticed first: give the process a moment to be reaped, so
		// the log says whether it died or hung.
		for wait := 0; !exited && wait < 10; wait++ {
			time.Sleep(50 * time.Millisecond)
			exited = client.Exited()
		}
		p.setDown(client)
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

func (p *Plugin) setDown(old *goplugin.Client) {
	p.mu.Lock()
	p.client, p.shim = nil, nil
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if old != nil {
		old.Kill() // reaps the process and its goroutines
	}
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
		client, shim, err := p.launch(ctx)
		if err == nil {
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				client.Kill()
				return false
			}
			p.client, p.shim = client, shim
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
			p.started, p.lastWait = time.Now(), wait
			p.m.restarts.WithLabelValues(p.cfg.Name).Inc()
			p.log.Warn("plugin restarted", "attempt", attempt)
			return true
		}
		p.log.Error("plugin restart failed", "attempt", attempt, "err", err, "retry_in", wait*2)
		wait = min(wait*2, p.opts.MaxBackoff)
	}
}

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
	if outcome == "unavailable" {
		p.suspect(v)
	}
	p.m.latency.WithLabelValues(p.cfg.Name, method, outcome).Observe(time.Since(start).Seconds())
	return r, err
}
