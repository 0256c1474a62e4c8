package link

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	tcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	websocket "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/host/config"
)

// UserAgent is what identify tells other peers.
const UserAgent = "sotto"

// Option changes how NewHost builds the host.
type Option func(*options)

type options struct {
	reg prometheus.Registerer
}

// WithRegisterer registers libp2p's own metrics with reg. Without it,
// libp2p's metrics are off (the node has its own).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// NewHost builds the node's libp2p host from a validated config and the
// node's key (keystore.Libp2pKey): TCP and QUIC, plus WebSocket when a
// listen address asks for it (providers, for browsers); Noise; yamux; the
// resource manager with cfg.Limits. identify and ping are on, so stock
// libp2p peers can reach the node; relay, NAT port mapping, hole punching
// and mDNS are off: nodes are publicly reachable servers. The host listens
// at once; Close stops it.
func NewHost(cfg *config.Config, key crypto.PrivKey, opts ...Option) (host.Host, error) {
	// libp2p.New leaks goroutines when it fails to listen, so addresses
	// are checked here first.
	for _, a := range cfg.Listen {
		if err := config.CheckListen(a, cfg.Role); err != nil {
			return nil, fmt.Errorf("link: %w", err)
		}
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	rm, err := resourceManager(cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("link: resource manager: %w", err)
	}
	lopts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.Ping(true),
		libp2p.UserAgent(UserAgent),
	}
	af, err := addrsFactory(cfg.Listen, cfg.Announce)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("link: %w", err)
	}
	lopts = append(lopts, libp2p.AddrsFactory(af))
	if wantsWebSocket(cfg.Listen) {
		lopts = append(lopts, libp2p.Transport(websocket.New))
	}
	if o.reg != nil {
		lopts = append(lopts, libp2p.PrometheusRegisterer(o.reg))
	} else {
		lopts = append(lopts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("link: starting libp2p host: %w", err)
	}
	return h, nil
}

func wantsWebSocket(listen []string) bool {
	for _, a := range listen {
		if strings.HasSuffix(a, "/ws") {
			return true
		}
	}
	return false
}

// resourceManager turns the config's limits into the libp2p resource
// manager's, over its defaults scaled to this machine. The libp2p default
// limits per IP network prefix still apply (and exempt loopback).
func resourceManager(l config.Limits) (network.ResourceManager, error) {
	limits := func(conns, streams int) rcmgr.ResourceLimits {
		c, st := rcmgr.LimitVal(conns), rcmgr.LimitVal(streams)
		return rcmgr.ResourceLimits{
			Conns: c, ConnsInbound: c, ConnsOutbound: c,
			Streams: st, StreamsInbound: st, StreamsOutbound: st,
		}
	}
	sys := limits(l.MaxConns, l.MaxStreams)
	sys.Memory = rcmgr.LimitVal64(int64(l.MaxMemoryMB) << 20)
	cfg := rcmgr.PartialLimitConfig{
		System:      sys,
		PeerDefault: limits(l.MaxConnsPerPeer, l.MaxStreamsPerPeer),
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Build(rcmgr.DefaultLimits.AutoScale())))
}
