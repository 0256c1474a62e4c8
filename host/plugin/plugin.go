// Package plugin loads and supervises a node's plugins. From config, a
// plugin is either built in (the sotto binary re-executes itself as
// `sotto plugin NAME`) or external (any executable named by path). It runs
// the plugin under go-plugin, hands it its raw config and the host
// services, relays its logs into the host's slog at their own level with
// the slot's name, and watches it: a crashed plugin is restarted with
// backoff, its death is logged and counted, and calls made while it is down
// fail with errors wrapping interfaces.ErrUnavailable. What a plugin
// reports about itself (name, version) is logged and exported as
// sotto_plugin_info; a slot may pin its executable's SHA-256, or attach to
// a plugin running under a debugger instead of starting one (Config).
//
// The host uses a kind through a supervised handle (Storage for the storage
// kind) that never changes across restarts.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

	reattach *goplugin.ReattachConfig // set: attach to a debug-mode process, start none

	infoMu sync.Mutex
	info   interfaces.PluginInfo

	mu      sync.Mutex
	proc    *proc
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
	case cfg.Reattach == "" && (cfg.Builtin == "") == (cfg.Path == ""):
		return nil, fmt.Errorf("%w: %s plugin %q: set exactly one of builtin and path", ErrConfig, cfg.Kind, cfg.Name)
	case cfg.SHA256 != "" && cfg.Path == "":
		return nil, fmt.Errorf("%w: %s plugin %q: sha256 pins an external executable (path), and none is set", ErrConfig, cfg.Kind, cfg.Name)
	case cfg.SHA256 != "" && !isSHA256Hex(cfg.SHA256):
		return nil, fmt.Errorf("%w: %s plugin %q: sha256 %q is not 64 hex digits", ErrConfig, cfg.Kind, cfg.Name, cfg.SHA256)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Kind
	}
	var reattach *goplugin.ReattachConfig
	if cfg.Reattach != "" {
		r, err := parseReattach(cfg.Reattach, kind)
		if err != nil {
			return nil, fmt.Errorf("%s plugin %q: %w", cfg.Kind, cfg.Name, err)
		}
		reattach = r
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
	if cfg.Builtin != "" && reattach == nil && opts.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("built-in plugin %q: find own executable: %w", cfg.Builtin, err)
		}
		opts.Self = self
	}
	p := &Plugin{
		cfg: cfg, opts: opts, kind: kind, m: metricsOf(opts.Registerer), reattach: reattach,
		log:     opts.Logger.With("plugin", cfg.Name, "kind", cfg.Kind),
		changed: make(chan struct{}),
		poke:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	p.life, p.stop = context.WithCancel(context.Background())
	pr, shim, err := p.launch(ctx)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.proc, p.shim = pr, shim
	p.started = time.Now()
	info := p.Info()
	p.log.Info("plugin started", "name", info.Name, "version", info.Version, "pid", p.Pid())
	go p.supervise(p.life)
	return p, nil
}

func isSHA256Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// Info is what the plugin reported about itself when last configured
// (interfaces.PluginInfo), its Name defaulting to the built-in's name or
// the executable's file name when it reported none.
func (p *Plugin) Info() interfaces.PluginInfo {
	p.infoMu.Lock()
	defer p.infoMu.Unlock()
	return p.info
}

// setInfo keeps a (re)started plugin's report and exports it as the
// sotto_plugin_info gauge, replacing the previous process's.
func (p *Plugin) setInfo(info interfaces.PluginInfo) {
	if info.Name == "" {
		switch {
		case p.cfg.Builtin != "":
			info.Name = p.cfg.Builtin
		case p.cfg.Path != "":
			info.Name = filepath.Base(p.cfg.Path)
		}
	}
	p.infoMu.Lock()
	old := p.info
	p.info = info
	p.infoMu.Unlock()
	if old != (interfaces.PluginInfo{}) {
		p.m.info.DeleteLabelValues(p.cfg.Name, p.cfg.Kind, old.Name, old.Version)
	}
	p.m.info.WithLabelValues(p.cfg.Name, p.cfg.Kind, info.Name, info.Version).Set(1)
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
	if p.proc == nil {
		return 0
	}
	if rc := p.proc.client.ReattachConfig(); rc != nil {
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
	pr := p.proc
	p.proc, p.shim = nil, nil
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	pr.kill() // graceful first, so the plugin can flush and close
	p.stop()  // kills a process still in its handshake (a restart)
	<-p.done
	return nil
}
