package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/plugin/v1/plugin.proto

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/sottonet/sotto/interfaces/internal/proto/plugin/v1"
)

// Kind describes one plugin kind on the wire: its name, the version of its
// gRPC protocol, and the magic cookie that tells a Sotto plugin binary that
// a host of this kind started it. A kind registers itself from its own
// <kind>_grpc.go (see storage_grpc.go for the pattern) with registerKind,
// so adding a kind means adding files, not editing this one. The kinds are
// StorageKind, PKIKind, AccountingKind and MessagingKind; the gRPC shims
// behind them are unexported, so they can change without breaking plugins
// (docs/PLUGINS.md, "What the interfaces package exports, and why").
type Kind struct {
	// Name is the kind's short name ("storage"); it is also the name under
	// which go-plugin dispenses it.
	Name string
	// ProtocolVersion is the version of the kind's proto package
	// (sotto.<kind>.v<N>). Host and plugin must agree.
	ProtocolVersion uint
	// newGRPC returns the go-plugin adapter for the kind; impl is nil on the
	// host side and the plugin's configured implementation on the plugin
	// side (set later, by Configure).
	newGRPC func(h *implHolder) plugin.Plugin
}

// implHolder keeps a plugin-side implementation once Configure has built
// it. Kind shims read it on every call; before Configure it is empty and
// calls fail with ErrUnavailable.
type implHolder struct {
	mu     sync.RWMutex
	impl   any
	broker *plugin.GRPCBroker // the plugin side's, for host services
	host   *Host              // what Configure was offered
}

// setBroker keeps the plugin side's broker for Configure (nil-safe: a test
// harness serves already configured implementations without a holder).
func (h *implHolder) setBroker(b *plugin.GRPCBroker) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.broker = b
	h.mu.Unlock()
}

// get returns the configured implementation, or an error wrapping
// ErrUnavailable if Configure has not run yet.
func (h *implHolder) get() (any, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.impl == nil {
		return nil, fmt.Errorf("%w: plugin not configured yet", ErrUnavailable)
	}
	return h.impl, nil
}

func (h *implHolder) set(impl any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.impl != nil {
		return fmt.Errorf("%w: plugin configured twice", ErrInvalidArgument)
	}
	h.impl = impl
	return nil
}

// CookieKey is the environment variable through which a host tells a plugin
// which kind it expects; the value is the kind's cookie (CookieValue).
const CookieKey = "SOTTO_PLUGIN_KIND"

// CookieValue is the magic cookie value for a kind.
func (k *Kind) CookieValue() string { return "sotto-plugin-" + k.Name }

// Handshake is go-plugin's handshake for this kind: a host loading a
// storage plugin refuses a binary that serves another kind or another
// protocol version.
func (k *Kind) Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  k.ProtocolVersion,
		MagicCookieKey:   CookieKey,
		MagicCookieValue: k.CookieValue(),
	}
}

// String names the kind and its protocol version, as in "storage v1".
func (k *Kind) String() string { return fmt.Sprintf("%s v%d", k.Name, k.ProtocolVersion) }

// GRPCPlugin returns the go-plugin adapter for a host (client) side: the
// value it dispenses implements the kind's interface and Configurer.
func (k *Kind) GRPCPlugin() plugin.Plugin { return k.newGRPC(nil) }

// ServerPlugin returns the go-plugin adapter serving impl, already
// configured. Tests and in-process wiring use it; a plugin's main uses Serve.
func (k *Kind) ServerPlugin(impl any) plugin.Plugin {
	h := &implHolder{impl: impl}
	return k.newGRPC(h)
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]*Kind{}
)

// registerKind makes a kind known to Serve and the host (LookupKind). It
// panics on a duplicate name: that is a programming error found at init
// time.
func registerKind(name string, version uint, newGRPC func(h *implHolder) plugin.Plugin) *Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[name]; dup {
		panic("interfaces: kind registered twice: " + name)
	}
	k := &Kind{Name: name, ProtocolVersion: version, newGRPC: newGRPC}
	kinds[name] = k
	return k
}

// LookupKind returns a registered kind by name.
func LookupKind(name string) (*Kind, bool) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds lists the registered kinds' names, sorted.
func Kinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	var out []string
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Configurer is implemented by every host-side shim: Configure hands the
// plugin its raw config (Caddy-style: bytes the plugin decodes, defaults and
// validates itself). A bad config gives an error wrapping
// ErrInvalidArgument. It must be called once, before any other call.
type Configurer interface {
	Configure(ctx context.Context, rawConfig []byte) error
}

// Plugin is what a plugin's main hands to Serve: a kind and a factory that
// builds the implementation from raw config. Make one with the kind's
// constructor, e.g. StoragePlugin, and name it:
//
//	p := interfaces.AccountingPlugin(factory)
//	p.Name, p.Version = "accounting-quota", "v0.2.0"
//	interfaces.Serve(p)
type Plugin struct {
	Kind    *Kind
	Factory func(ctx context.Context, rawConfig []byte) (any, error)
	// Name and Version are what the plugin reports to the host when
	// configured (PluginInfo): the host shows them in its logs and in the
	// sotto_plugin_info metric. Both optional; an empty Version is the
	// main module's version from the binary's build info, if it has one.
	Name, Version string
}

// PluginInfo is what a plugin reports about itself when the host
// configures it (the framework's ConfigureResponse). Fields the plugin
// leaves empty are empty.
type PluginInfo struct {
	Name    string // e.g. "accounting-quota"
	Version string // free-form, e.g. "v0.2.0"
	// Kind and ProtocolVersion are what the plugin says it serves; the host
	// refuses a plugin whose report differs from what it configured.
	Kind            string
	ProtocolVersion uint
}

// Reporter is implemented by every host-side shim beside Configurer:
// Reported returns what the plugin reported when configured (the zero
// PluginInfo before Configure).
type Reporter interface {
	Reported() PluginInfo
}

func (p Plugin) info() PluginInfo {
	v := p.Version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return PluginInfo{Name: p.Name, Version: v, Kind: p.Kind.Name, ProtocolVersion: p.Kind.ProtocolVersion}
}

// Serve serves one plugin over go-plugin's gRPC transport and returns when
// the host shuts the plugin down (or exits the process with status 1 if the
// host is not a Sotto host of the plugin's kind, with a message that names
// both kinds). A plugin's main is typically:
//
//	func main() {
//		interfaces.Serve(interfaces.StoragePlugin(
//			func(ctx context.Context, raw []byte) (interfaces.Storage, error) {
//				cfg, err := mystore.ParseConfig(raw)
//				if err != nil {
//					return nil, err // wrap interfaces.ErrInvalidArgument
//				}
//				return mystore.Open(cfg)
//			}))
//	}
//
// The factory runs when the host calls Configure, with the raw config bytes
// from the host's config. If the implementation has a Close() error method,
// Serve calls it after the host has stopped the plugin, so stores flush.
//
// Logs: Serve makes log/slog's default logger (and so the log package's)
// write go-plugin's JSON log lines to the process's stderr, at every level;
// the host re-emits each line at its level, with the plugin's slot, and
// drops what is below the node's log level. So slog.Warn in a plugin is a
// WARN line in the node's log.
//
// Debugging: with DebugEnv set (SOTTO_PLUGIN_DEBUG=1), Serve needs no host
// to start it: it listens, prints to stderr the environment variable that
// points a node's slot at it (SOTTO_PLUGINS__<KIND>__REATTACH='{...}'), and
// serves the first node that attaches, until that node stops it. Run the
// binary so under a debugger (dlv exec ./plugin), then start the node
// (docs/PLUGINS.md, "Debugging a plugin under a live node").
func Serve(p Plugin) {
	stderr := os.Stderr // go-plugin swaps os.Stderr for its stdio stream once serving
	debugMode := os.Getenv(DebugEnv) != ""
	if !debugMode {
		if err := checkHostKind(p.Kind); err != nil {
			fmt.Fprintln(stderr, err)
			os.Exit(1)
		}
	}
	slog.SetDefault(slog.New(NewLogHandler(stderr)))
	h := &implHolder{}
	lc := &lifecycleServer{kind: p.Kind, factory: p.Factory, holder: h, info: p.info()}
	cfg := &plugin.ServeConfig{
		HandshakeConfig: p.Kind.Handshake(),
		Plugins:         plugin.PluginSet{p.Kind.Name: p.Kind.newGRPC(h)},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			pluginv1.RegisterLifecycleServer(s, lc)
			return s
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       p.Kind.Name,
			Level:      hclog.Trace,
			Output:     stderr,
			JSONFormat: true,
		}),
	}
	if debugMode {
		serveDebug(cfg, p.Kind, stderr)
	} else {
		plugin.Serve(cfg)
	}
	if impl, err := h.get(); err == nil {
		if c, ok := impl.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				slog.Error("closing the plugin", "err", err)
			}
		}
	}
}

// DebugEnv, set to any value in a plugin's environment, makes Serve run
// the plugin for a debugger: started by hand, it prints how to point a
// node at it and waits for the node to attach (see Serve).
const DebugEnv = "SOTTO_PLUGIN_DEBUG"

// reattachInfo is what a plugin in debug mode prints and what a node's
// slot takes as `reattach` (host/plugin.Config.Reattach): how to reach a
// running plugin process instead of starting one.
type reattachInfo struct {
	Kind            string `json:"kind"`
	ProtocolVersion int    `json:"protocol_version"`
	Network         string `json:"network"`
	Addr            string `json:"addr"`
	Pid             int    `json:"pid"`
}

// serveDebug serves in go-plugin's test mode: no cookie, no handshake line
// on stdout, a reattach config instead, and an end on SIGINT or SIGTERM.
func serveDebug(cfg *plugin.ServeConfig, k *Kind, stderr io.Writer) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ch := make(chan *plugin.ReattachConfig, 1)
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: ch}
	go func() {
		select {
		case rc := <-ch:
			b, _ := json.Marshal(reattachInfo{
				Kind: k.Name, ProtocolVersion: rc.ProtocolVersion,
				Network: rc.Addr.Network(), Addr: rc.Addr.String(), Pid: rc.Pid,
			})
			fmt.Fprintf(stderr, "Sotto %s plugin serving for a debugger (pid %d). Point a node's %s slot at it with:\n\n\tSOTTO_PLUGINS__%s__REATTACH='%s'\n\n",
				k, rc.Pid, k.Name, strings.ToUpper(k.Name), b)
		case <-ctx.Done():
		}
	}()
	plugin.Serve(cfg)
}

// NewLogHandler returns a slog.Handler that writes go-plugin's (hclog's)
// JSON log lines to w: one object per line with "@level" (trace, debug,
// info, warn, error), "@message", "@timestamp" and the record's
// attributes. A Sotto host reads a plugin's stderr in this format and
// re-emits each line at its level; Serve installs it as slog's default, so
// plugins need it only to build a logger of their own.
func NewLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug - 4, // everything: the host filters by its own level
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				// The exact layout go-plugin parses; any other and the line
				// would arrive as plain text at DEBUG.
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				l, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevelName(l))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
}

func hclogLevelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// ErrWrongKind: the host expected another plugin kind than the binary
// serves. It wraps ErrInvalidArgument.
var ErrWrongKind = fmt.Errorf("wrong plugin kind: %w", ErrInvalidArgument)

func checkHostKind(k *Kind) error {
	got, ok := os.LookupEnv(CookieKey)
	switch {
	case !ok:
		return fmt.Errorf("this binary is a Sotto %s plugin: a Sotto node starts it, it is not meant to run by itself", k)
	case got != k.CookieValue():
		return fmt.Errorf("%w: this binary serves Sotto plugin kind %s, the host asked for kind %q",
			ErrWrongKind, k, strings.TrimPrefix(got, "sotto-plugin-"))
	}
	return nil
}

type lifecycleServer struct {
	pluginv1.UnimplementedLifecycleServer
	kind    *Kind
	factory func(ctx context.Context, raw []byte) (any, error)
	holder  *implHolder
	info    PluginInfo
}

func (l *lifecycleServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	if req.GetKind() != l.kind.Name || uint(req.GetProtocolVersion()) != l.kind.ProtocolVersion {
		return nil, toStatus(fmt.Errorf("%w: host configures kind %s v%d, plugin serves %s",
			ErrWrongKind, req.GetKind(), req.GetProtocolVersion(), l.kind))
	}
	l.holder.mu.RLock()
	broker := l.holder.broker
	l.holder.mu.RUnlock()
	host, err := hostFromRequest(req, broker)
	if err != nil {
		return nil, toStatus(fmt.Errorf("configure %s plugin: %w", l.kind.Name, err))
	}
	l.holder.mu.Lock()
	l.holder.host = host
	l.holder.mu.Unlock()
	impl, err := l.factory(WithHost(ctx, host), req.GetConfig())
	if err != nil {
		return nil, toStatus(fmt.Errorf("configure %s plugin: %w", l.kind.Name, err))
	}
	if impl == nil {
		return nil, toStatus(fmt.Errorf("configure %s plugin: factory returned no implementation", l.kind.Name))
	}
	if err := l.holder.set(impl); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ConfigureResponse{
		Name: l.info.Name, Version: l.info.Version,
		Kind: l.kind.Name, ProtocolVersion: uint32(l.kind.ProtocolVersion),
	}, nil
}

// configureClient is the host side of Lifecycle, embedded in every kind's
// client shim.
type configureClient struct {
	kind   *Kind
	lc     pluginv1.LifecycleClient
	broker *plugin.GRPCBroker // the host side's, to serve host services on

	mu       sync.Mutex
	reported PluginInfo
}

func (c *configureClient) Configure(ctx context.Context, raw []byte) error {
	return c.ConfigureHost(ctx, raw, nil)
}

// Reported returns what the plugin said about itself when configured.
func (c *configureClient) Reported() PluginInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reported
}

// configured keeps the plugin's report, refusing one that names another
// kind or protocol version than the host configured (a plugin, say in
// another language, that ignored the request's kind).
func (c *configureClient) configured(resp *pluginv1.ConfigureResponse) error {
	info := PluginInfo{
		Name: resp.GetName(), Version: resp.GetVersion(),
		Kind: resp.GetKind(), ProtocolVersion: uint(resp.GetProtocolVersion()),
	}
	if (info.Kind != "" && info.Kind != c.kind.Name) || (info.ProtocolVersion != 0 && info.ProtocolVersion != c.kind.ProtocolVersion) {
		return fmt.Errorf("%w: host configured kind %s, the plugin reports serving %s v%d", ErrWrongKind, c.kind, info.Kind, info.ProtocolVersion)
	}
	c.mu.Lock()
	c.reported = info
	c.mu.Unlock()
	return nil
}

func newConfigureClient(k *Kind, cc *grpc.ClientConn, broker *plugin.GRPCBroker) configureClient {
	return configureClient{kind: k, lc: pluginv1.NewLifecycleClient(cc), broker: broker}
}
