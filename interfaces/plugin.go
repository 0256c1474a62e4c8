package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/plugin/v1/plugin.proto

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

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
// constructor, e.g. StoragePlugin.
type Plugin struct {
	Kind    *Kind
	Factory func(ctx context.Context, rawConfig []byte) (any, error)
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
// Logs written with log/slog's default logger or to stderr reach the host's
// log.
func Serve(p Plugin) {
	if err := checkHostKind(p.Kind); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h := &implHolder{}
	lc := &lifecycleServer{kind: p.Kind, factory: p.Factory, holder: h}
	plugin.Serve(&plugin.ServeConfig{
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
			Output:     os.Stderr,
			JSONFormat: true,
		}),
	})
	if impl, err := h.get(); err == nil {
		if c, ok := impl.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "sotto plugin: close:", err)
			}
		}
	}
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
	return &pluginv1.ConfigureResponse{}, nil
}

// configureClient is the host side of Lifecycle, embedded in every kind's
// client shim.
type configureClient struct {
	kind   *Kind
	lc     pluginv1.LifecycleClient
	broker *plugin.GRPCBroker // the host side's, to serve host services on
}

func (c *configureClient) Configure(ctx context.Context, raw []byte) error {
	_, err := c.lc.Configure(ctx, &pluginv1.ConfigureRequest{
		Config: raw, Kind: c.kind.Name, ProtocolVersion: uint32(c.kind.ProtocolVersion),
	})
	return fromStatus(err)
}

func newConfigureClient(k *Kind, cc *grpc.ClientConn, broker *plugin.GRPCBroker) configureClient {
	return configureClient{kind: k, lc: pluginv1.NewLifecycleClient(cc), broker: broker}
}
