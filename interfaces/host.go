package interfaces

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sottonet/sotto/core/epoch"
	pluginv1 "github.com/sottonet/sotto/interfaces/internal/proto/plugin/v1"
	storagev1 "github.com/sottonet/sotto/interfaces/internal/proto/storage/v1"
)

// Host is what a Sotto host offers the plugins it starts besides their
// config: host services. A plugin's factory finds them with HostFrom; any
// field may be empty when the host offers nothing of that kind (a plugin
// started by a test, a host older than the service), and a plugin that
// needs a service refuses to start without it.
type Host struct {
	// Slot is the config slot the host loaded the plugin into
	// ("accounting", "pki", ...).
	Slot string
	// KV is a key-value space of the node's configured Storage, private to
	// the plugin's slot (no other plugin reads or writes it) and durable
	// before a call returns, as Storage's KV is. Namespaces are the
	// plugin's own; at most MaxHostNamespace bytes each. Out of process it
	// is reached over go-plugin's broker; calls cost a round trip
	// (≈0.1 ms), so a plugin never makes one per packet. It is a
	// KVSwapper: counters and balances update by compare-and-swap (a
	// node whose Storage does not swap answers errors.ErrUnsupported).
	KV KV
	// Clock is the network's epoch clock (genesis, period, grace); its
	// Period is zero when none was offered. Clock.Ticks and WaitNext give
	// epoch-change events.
	Clock epoch.Clock
}

// HasClock reports whether the host offered its epoch clock.
func (h *Host) HasClock() bool { return h != nil && h.Clock.Period() > 0 }

// MaxHostNamespace bounds a namespace of the host KV: the host prefixes
// each with the plugin's slot within Storage's 64-byte limit.
const MaxHostNamespace = 48

type hostKey struct{}

// WithHost returns ctx carrying h, as the host's Configure hands it to a
// plugin's factory. In-process wiring and tests use it to give a factory
// the services a host would.
func WithHost(ctx context.Context, h *Host) context.Context {
	return context.WithValue(ctx, hostKey{}, h)
}

// HostFrom returns the host services in a factory's context.
func HostFrom(ctx context.Context) (*Host, bool) {
	h, ok := ctx.Value(hostKey{}).(*Host)
	return h, ok && h != nil
}

// HostConfigurer is implemented by every host-side shim beside Configurer:
// ConfigureHost configures the plugin and offers it h. The host keeps
// serving h.KV to the plugin for as long as the plugin's connection lives.
type HostConfigurer interface {
	ConfigureHost(ctx context.Context, rawConfig []byte, h *Host) error
}

// SlotKV is kv with every namespace moved under the slot's prefix
// ("slot/ns"), so plugins of different slots sharing one Storage never
// see each other's keys. Hosts wrap their Storage with it before offering
// it as a Host's KV. It is a KVSwapper when kv is.
func SlotKV(kv KV, slot string) KV {
	s := slotKV{kv: kv, prefix: slot + "/"}
	if sw, ok := kv.(KVSwapper); ok {
		return slotSwapKV{s, sw}
	}
	return s
}

type slotKV struct {
	kv     KV
	prefix string
}

func (s slotKV) ns(op, ns string) (string, error) {
	if ns == "" || len(ns) > MaxHostNamespace {
		return "", fmt.Errorf("host kv: %s: namespace of %d bytes, want 1..%d: %w", op, len(ns), MaxHostNamespace, ErrInvalidArgument)
	}
	return s.prefix + ns, nil
}

func (s slotKV) KVPut(ctx context.Context, req *KVPutRequest) (*KVPutResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("host kv: put: nil request: %w", ErrInvalidArgument)
	}
	ns, err := s.ns("put", req.Namespace)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Namespace = ns
	return s.kv.KVPut(ctx, &r)
}

func (s slotKV) KVGet(ctx context.Context, req *KVGetRequest) (*KVGetResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("host kv: get: nil request: %w", ErrInvalidArgument)
	}
	ns, err := s.ns("get", req.Namespace)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Namespace = ns
	return s.kv.KVGet(ctx, &r)
}

func (s slotKV) KVDelete(ctx context.Context, req *KVDeleteRequest) (*KVDeleteResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("host kv: delete: nil request: %w", ErrInvalidArgument)
	}
	ns, err := s.ns("delete", req.Namespace)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Namespace = ns
	return s.kv.KVDelete(ctx, &r)
}

func (s slotKV) KVList(ctx context.Context, req *KVListRequest) (*KVListResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("host kv: list: nil request: %w", ErrInvalidArgument)
	}
	ns, err := s.ns("list", req.Namespace)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Namespace = ns
	return s.kv.KVList(ctx, &r)
}

// slotSwapKV is a slotKV over a KVSwapper.
type slotSwapKV struct {
	slotKV
	sw KVSwapper
}

func (s slotSwapKV) KVSwap(ctx context.Context, req *KVSwapRequest) (*KVSwapResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("host kv: swap: nil request: %w", ErrInvalidArgument)
	}
	ns, err := s.ns("swap", req.Namespace)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Namespace = ns
	return s.sw.KVSwap(ctx, &r)
}

// kvOnly offers a KV through the Storage service: mailbox and replay calls
// are refused, the host KV being a key-value space and nothing more.
type kvOnly struct{ KV }

var errKVOnly = fmt.Errorf("the host KV offers key-value calls only: %w", ErrInvalidArgument)

// KVSwap offers the KV's compare-and-swap, or answers ErrUnsupported
// (UNIMPLEMENTED on the wire) when the KV has none.
func (k kvOnly) KVSwap(ctx context.Context, req *KVSwapRequest) (*KVSwapResponse, error) {
	sw, ok := k.KV.(KVSwapper)
	if !ok {
		return nil, fmt.Errorf("the host KV offers no compare-and-swap: %w", errors.ErrUnsupported)
	}
	return sw.KVSwap(ctx, req)
}

func (kvOnly) AppendMailbox(context.Context, *AppendMailboxRequest) (*AppendMailboxResponse, error) {
	return nil, errKVOnly
}
func (kvOnly) ListMailbox(context.Context, *ListMailboxRequest) (*ListMailboxResponse, error) {
	return nil, errKVOnly
}
func (kvOnly) FetchMailbox(context.Context, *FetchMailboxRequest) (*FetchMailboxResponse, error) {
	return nil, errKVOnly
}
func (kvOnly) AckMailbox(context.Context, *AckMailboxRequest) (*AckMailboxResponse, error) {
	return nil, errKVOnly
}
func (kvOnly) InsertReplayTags(context.Context, *InsertReplayTagsRequest) (*InsertReplayTagsResponse, error) {
	return nil, errKVOnly
}
func (kvOnly) DropReplayEpoch(context.Context, *DropReplayEpochRequest) (*DropReplayEpochResponse, error) {
	return nil, errKVOnly
}

// hostKVClient is the plugin's side of the host KV: the KV calls of the
// storage client shim over the broker connection, KVSwap included (a host
// whose KV does not swap answers it with errors.ErrUnsupported).
type hostKVClient struct {
	*storageGRPCClient
	cc *grpc.ClientConn
}

// ConfigureHost sends Configure with the host services of h (nil: none);
// the host KV is served on a new broker stream. It keeps what the plugin
// reports about itself (Reported).
func (c *configureClient) ConfigureHost(ctx context.Context, raw []byte, h *Host) error {
	req := &pluginv1.ConfigureRequest{Config: raw, Kind: c.kind.Name, ProtocolVersion: uint32(c.kind.ProtocolVersion)}
	if h != nil {
		req.Slot = h.Slot
		if h.HasClock() {
			req.GenesisUnixNs = h.Clock.Genesis().UnixNano()
			req.EpochPeriodNs = int64(h.Clock.Period())
			req.EpochGraceNs = int64(h.Clock.Grace())
		}
		if h.KV != nil {
			if c.broker == nil {
				return fmt.Errorf("%w: no broker to offer the host KV on", ErrUnavailable)
			}
			id := c.broker.NextId()
			srv := &storageGRPCServer{holder: &implHolder{impl: Storage(kvOnly{h.KV})}}
			go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
				s := grpc.NewServer(opts...)
				storagev1.RegisterStorageServer(s, srv)
				return s
			})
			req.HostKv = id
		}
	}
	resp, err := c.lc.Configure(ctx, req)
	if err != nil {
		return fromStatus(err)
	}
	return c.configured(resp)
}

// hostFromRequest builds the plugin's view of the host services in req,
// dialling the host KV over broker.
func hostFromRequest(req *pluginv1.ConfigureRequest, broker *plugin.GRPCBroker) (*Host, error) {
	h := &Host{Slot: req.GetSlot()}
	if p := req.GetEpochPeriodNs(); p > 0 {
		clk, err := epoch.New(time.Unix(0, req.GetGenesisUnixNs()), time.Duration(p), time.Duration(req.GetEpochGraceNs()))
		if err != nil {
			return nil, fmt.Errorf("%w: host clock: %w", ErrInvalidArgument, err)
		}
		h.Clock = clk
	}
	if id := req.GetHostKv(); id != 0 {
		if broker == nil {
			return nil, fmt.Errorf("%w: host KV offered without a broker", ErrUnavailable)
		}
		cc, err := broker.Dial(id)
		if err != nil {
			return nil, fmt.Errorf("%w: dialling the host KV: %w", ErrUnavailable, err)
		}
		h.KV = hostKVClient{newStorageGRPCClient(cc, nil), cc}
	}
	return h, nil
}

// ServePlugin returns the go-plugin adapter that serves p as Serve does:
// the kind's service and Lifecycle, with Configure building the
// implementation through p's factory (and handing it the host services
// the host offers). In-process harnesses use it (plugintest.Configure); a
// plugin's main uses Serve.
//
// The adapter has a Close() error method that closes the implementation
// (if it has Close) and the plugin's connection to the host KV, as a
// plugin process's exit would.
func (p Plugin) ServePlugin() plugin.Plugin {
	h := &implHolder{}
	return servePlugin{p.Kind.newGRPC(h), &lifecycleServer{kind: p.Kind, factory: p.Factory, holder: h}}
}

// Close ends what Configure started.
func (s servePlugin) Close() error {
	h := s.lc.holder
	h.mu.Lock()
	impl, host := h.impl, h.host
	h.mu.Unlock()
	var errs []error
	if c, ok := impl.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	if host != nil {
		if kc, ok := host.KV.(hostKVClient); ok {
			errs = append(errs, kc.cc.Close())
		}
	}
	return errors.Join(errs...)
}

// servePlugin serves Lifecycle beside a kind's service.
type servePlugin struct {
	plugin.Plugin
	lc *lifecycleServer
}

func (s servePlugin) GRPCServer(b *plugin.GRPCBroker, srv *grpc.Server) error {
	pluginv1.RegisterLifecycleServer(srv, s.lc)
	return s.Plugin.(plugin.GRPCPlugin).GRPCServer(b, srv)
}

func (s servePlugin) GRPCClient(ctx context.Context, b *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return s.Plugin.(plugin.GRPCPlugin).GRPCClient(ctx, b, cc)
}
