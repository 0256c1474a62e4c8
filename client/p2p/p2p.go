//go:build !(js && wasm)

package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	tcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	websocket "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/link"
	"github.com/sottonet/sotto/core/clientproto"
)

// ErrClosed: the Conn was closed.
var ErrClosed = errors.New("p2p: connection closed")

// errBroken marks a failure of the stream itself (not a reply).
var errBroken = errors.New("p2p: stream to provider broken")

// UserAgent is what identify tells the provider.
const UserAgent = "sotto-client"

// Options configure Dial.
type Options struct {
	// Identity is the client's Ed25519 identity key; the provider serves
	// the client's own mailbox to whoever holds it. Required.
	Identity ed25519.PrivateKey
	// Provider is the provider's peer ID and addresses (see
	// ParseProviderAddr). Required.
	Provider peer.AddrInfo
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// WrapStream, if set, wraps every protocol stream the Conn opens
	// (a recorder of what crosses the link, in tests); nil costs nothing.
	WrapStream func(network.Stream) network.Stream
}

// Conn is a client's connection to its provider: its calls (Document,
// Send, Fetch, Ack, Redeem, Issue) are the embedded link.Caller's, over
// libp2p streams. It is safe for concurrent use.
type Conn struct {
	*link.Caller
	host host.Host
	prov peer.ID
	log  *slog.Logger
	wrap func(network.Stream) network.Stream
}

var (
	_ client.Provider   = (*Conn)(nil)
	_ client.Subscriber = (*Conn)(nil)
)

// ParseProviderAddr parses a provider's multiaddr, which must end in its
// peer ID: /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...
func ParseProviderAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: provider address %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: provider address %q needs a /p2p/ peer ID: %w", s, err)
	}
	return *ai, nil
}

// ProviderID returns the Sotto node ID (Config.ProviderID: the Ed25519
// identity) behind a provider's libp2p peer ID, which embeds it.
func ProviderID(id peer.ID) ([32]byte, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return [32]byte{}, fmt.Errorf("p2p: provider peer ID %s: %w", id, err)
	}
	raw, err := pub.Raw()
	if err != nil || pub.Type() != crypto.Ed25519 || len(raw) != ed25519.PublicKeySize {
		return [32]byte{}, fmt.Errorf("p2p: provider peer ID %s is not an Ed25519 key, so it is not a Sotto node's identity", id)
	}
	return [32]byte(raw), nil
}

// Open builds a client of the provider at addr (a multiaddr ending in
// /p2p/PEER-ID; "" takes the address kept in cfg.Store): it fills in
// cfg.ProviderID from the peer ID, cfg.ProviderAddr, and cfg.Dial, which
// dials the provider under the client's identity (from cfg, or the
// Store). It does no network I/O: the client's Run dials, retrying with
// backoff, so a program can start while its provider is down.
func Open(addr string, cfg client.Config) (*client.Client, error) {
	if addr == "" && cfg.Store != nil {
		var err error
		if addr, err = client.StoredProviderAddr(cfg.Store); err != nil {
			return nil, err
		}
	}
	if addr == "" {
		return nil, errors.New("p2p: no provider address (a multiaddr ending in /p2p/PEER-ID), and none in the state")
	}
	ai, err := ParseProviderAddr(addr)
	if err != nil {
		return nil, err
	}
	if cfg.ProviderID, err = ProviderID(ai.ID); err != nil {
		return nil, err
	}
	cfg.ProviderAddr = addr
	log := cfg.Logger
	cfg.Dial = func(ctx context.Context, identity ed25519.PrivateKey) (client.Provider, error) {
		return Dial(ctx, Options{Identity: identity, Provider: ai, Logger: log})
	}
	return client.New(cfg)
}

// Connect is Open, then the client's Connect: it dials the provider,
// learns the network's epoch clock from its current document (unless cfg
// or the Store has it) and fetches the document to route with. It
// returns client.ErrWrongClock if the network runs on another clock than
// the client's, and the dial's error if the provider cannot be reached
// now (Open and Run ride that out). The caller runs the client (Run) and
// closes it (Close).
func Connect(ctx context.Context, addr string, cfg client.Config) (*client.Client, error) {
	c, err := Open(addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Dial connects to the provider and opens the protocol stream.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	if len(o.Identity) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("p2p: identity of %d bytes, want an Ed25519 private key", len(o.Identity))
	}
	if o.Provider.ID == "" || len(o.Provider.Addrs) == 0 {
		return nil, errors.New("p2p: provider needs a peer ID and an address")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(o.Identity)
	if err != nil {
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(UserAgent),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: starting libp2p host: %w", err)
	}
	c := &Conn{host: h, prov: o.Provider.ID, log: o.Logger.With("component", "p2p", "provider", o.Provider.ID), wrap: o.WrapStream}
	c.Caller = link.New(link.Config{
		Open: func(ctx context.Context) (link.Stream, error) {
			st, err := c.newStream(ctx)
			if err != nil {
				return nil, err
			}
			return st, nil
		},
		Name:          "p2p",
		Closed:        ErrClosed,
		Broken:        errBroken,
		WriteDeadline: true,
		OnRetry: func(err error) {
			c.log.Debug("stream to provider broken; opening another", "err", err)
		},
	})
	h.Peerstore().AddAddrs(o.Provider.ID, o.Provider.Addrs, peerstore.PermanentAddrTTL)
	if err := h.Connect(ctx, o.Provider); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("p2p: connecting to provider %s: %w", o.Provider.ID, err)
	}
	if err := c.Connect(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	return c, nil
}

// Host is the client's libp2p host (for its peer ID and connection state).
func (c *Conn) Host() host.Host { return c.host }

// Close ends the stream and stops the host. Calls in progress fail with
// ErrClosed.
func (c *Conn) Close() error {
	if !c.Shutdown() {
		return nil
	}
	return c.host.Close()
}

// newStream opens a protocol stream to the provider, wrapped by
// Options.WrapStream.
func (c *Conn) newStream(ctx context.Context) (network.Stream, error) {
	if c.host.Network().Connectedness(c.prov) != network.Connected {
		// The connection is gone (the provider restarted, say): dial
		// now. The client paces its own retries (with backoff), so
		// libp2p's dial backoff, which grows to minutes after a few
		// failed dials, would only delay noticing the provider is back.
		if sw, ok := c.host.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(c.prov)
		}
	}
	st, err := c.host.NewStream(ctx, c.prov, clientproto.Protocol)
	if err != nil {
		return nil, err
	}
	if c.wrap != nil {
		st = c.wrap(st)
	}
	return st, nil
}

// Subscribe opens the pushed downstream (docs/SPEC.md, "Pushed
// downstream") on a stream of its own, and returns once the first push
// frame (or the provider's refusal) has arrived (link.Caller.Subscribe).
func (c *Conn) Subscribe(ctx context.Context, cursors []clientproto.Cursor) (client.Downstream, error) {
	d, err := c.Caller.Subscribe(ctx, cursors)
	if err != nil {
		return nil, err
	}
	return d, nil
}
