// Package provider is a provider node's client service: the server side of
// the client protocol (clientproto.Protocol, /sotto/client/1.0.0, specified
// in docs/SPEC.md, "Client protocol"). It is the gateway in the path of a
// packet: a client's packet enters the network here (Send), and what the
// node stored in the client's mailboxes leaves here (Fetch, Ack).
//
// The node builds a Service with New, installs Handle on its libp2p host
// with h.SetStreamHandler(clientproto.Protocol, svc.Handle), and calls
// Close when it stops. The node itself is reached through Backend: the
// service hands packets to the node's pipeline (Inject) or forwards a SURB
// reply's packet to its first hop (Forward), and asks for PKI documents.
//
// A client is who libp2p's Noise handshake says it is: its peer ID's public
// key must be Ed25519, and its own mailbox is clientproto.OwnMailbox of that
// key. Any client may fetch a SURB mailbox whose capability it presents.
// With Accounting set, sending costs one packet of a per-client allowance
// that Redeem fills; the allowance lives in memory, so a restart of the
// provider forgets what clients had left (they redeem again).
//
// Slow or hostile clients are bounded: a stream may have MaxInFlight
// requests being served, a client MaxStreamsPerClient streams, an IP
// address MaxStreamsPerIP, every request has a deadline, an idle stream is
// closed (soon if it never sent a request), a frame must arrive whole
// within RequestTimeout, and a stream that sends bytes that do not parse is
// reset (logged once per client), without disturbing anyone else. Because
// identities are free, per-client bounds alone do not bound the service:
// MaxRequests bounds the requests being served in all, ReplyBytes the bytes
// of the replies they build and wait to write, and a request beyond either
// is answered busy at once. A stream whose client does not read its replies
// is not read either while a reply to it is being written, so its unread
// replies hold at most MaxInFlight requests' share of the budget until the
// write deadline resets it.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
)

// Backend is what the service needs from its node. The packet slices
// passed to Inject and Forward are the Backend's to keep: the service
// allocates one per request and never reuses it.
type Backend interface {
	// NodeID is this provider's Sphinx node ID (its Ed25519 identity public key).
	NodeID() [32]byte
	// Inject hands a client's packet to the node's pipeline, which unwraps it as this provider's hop. It must not block; it returns an error wrapping clientproto.ErrBusy when the pipeline is full.
	Inject(packet []byte) error
	// Forward sends a client's packet unprocessed to another node (the first hop of a reply made from a SURB). It returns an error if `to` is not a layer-0 mix of the current document, or wrapping clientproto.ErrBusy when the link's queue is full.
	Forward(to [32]byte, packet []byte) error
	// Document returns the canonical encoding of the PKI document of an epoch, or an error wrapping clientproto.ErrNoDocument.
	Document(ctx context.Context, epoch uint64) ([]byte, error)
}

// Defaults of the limits in Config.
const (
	DefaultMaxInFlight         = 16
	DefaultMaxStreamsPerClient = 4
	DefaultMaxStreamsPerIP     = 64
	DefaultMaxStreams          = 4096
	DefaultMaxRequests         = 1024
	DefaultReplyBytes          = 64 << 20
	DefaultFetchLimit          = 64
	DefaultFetchBytes          = 256 << 10
	DefaultRequestTimeout      = 10 * time.Second
	DefaultFirstRequestTimeout = 10 * time.Second
	DefaultIdleTimeout         = 5 * time.Minute
)

// Config is what a Service is made of. Backend, Mailboxes and PacketLength
// are required; zero limits take their defaults.
type Config struct {
	// Backend is the node.
	Backend Backend
	// Mailboxes is the storage plugin's mailbox API.
	Mailboxes interfaces.Mailboxes
	// Accounting, if set, makes sending cost credit that clients Redeem;
	// nil makes the service free.
	Accounting interfaces.Accounting
	// PacketLength is the network's Sphinx packet length; a Send of any
	// other length is refused.
	PacketLength int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the service's metrics
	// (sotto_provider_*).
	Registerer prometheus.Registerer

	// MaxInFlight bounds the requests of one stream being served at once;
	// the service stops reading a stream that has that many.
	MaxInFlight int
	// MaxStreamsPerClient bounds one client's open streams; further ones
	// are reset at once.
	MaxStreamsPerClient int
	// MaxStreamsPerIP bounds the open streams of all clients at one remote
	// IPv4 address or IPv6 /64 (identities are free; addresses are not);
	// further ones are reset at once.
	MaxStreamsPerIP int
	// MaxStreams bounds all open client streams.
	MaxStreams int
	// MaxRequests bounds the requests being served at once by the whole
	// service (each has a goroutine); a request beyond it gets busy.
	MaxRequests int
	// ReplyBytes bounds the bytes of all replies being built or waiting to
	// be written. A request reserves its reply's share before it is served
	// (a Fetch: FetchBytes) and gives it back once the reply is written or
	// the write failed; a request that finds no room gets busy. A reply
	// larger than ReplyBytes (a huge document) is sent only when it can
	// have the whole budget. At least FetchBytes.
	ReplyBytes int
	// FetchLimit is the default and the maximum number of messages of one
	// Fetch reply (at most clientproto.MaxFetchLimit).
	FetchLimit int
	// FetchBytes is the byte budget of one Fetch reply (at most
	// clientproto.MaxFetchBytes). One message is always returned if any
	// exists, even when it alone exceeds the budget.
	FetchBytes int
	// RequestTimeout bounds serving one request (storage, accounting and
	// document calls), reading one frame once its first bytes arrived,
	// and writing one reply.
	RequestTimeout time.Duration
	// FirstRequestTimeout closes a stream whose first request has not
	// started for that long (at most IdleTimeout): a stream that never
	// asks for anything is not held for IdleTimeout.
	FirstRequestTimeout time.Duration
	// IdleTimeout closes a stream on which no request started for that long.
	IdleTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxInFlight, DefaultMaxInFlight)
	def(&c.MaxStreamsPerClient, DefaultMaxStreamsPerClient)
	def(&c.MaxStreamsPerIP, DefaultMaxStreamsPerIP)
	def(&c.MaxStreams, DefaultMaxStreams)
	def(&c.MaxRequests, DefaultMaxRequests)
	def(&c.ReplyBytes, DefaultReplyBytes)
	def(&c.FetchLimit, DefaultFetchLimit)
	def(&c.FetchBytes, DefaultFetchBytes)
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.FirstRequestTimeout == 0 {
		c.FirstRequestTimeout = DefaultFirstRequestTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
}

// ErrConfig is wrapped by every configuration error of New.
var ErrConfig = errors.New("provider: invalid config")

func (c *Config) validate() error {
	switch {
	case c.Backend == nil:
		return fmt.Errorf("%w: no Backend", ErrConfig)
	case c.Mailboxes == nil:
		return fmt.Errorf("%w: no Mailboxes", ErrConfig)
	case c.PacketLength <= 0 || c.PacketLength > clientproto.MaxPacketLength:
		return fmt.Errorf("%w: PacketLength %d (1 to %d)", ErrConfig, c.PacketLength, clientproto.MaxPacketLength)
	case c.MaxInFlight < 0 || c.MaxStreamsPerClient < 0 || c.MaxStreamsPerIP < 0 || c.MaxStreams < 0 || c.MaxRequests < 0:
		return fmt.Errorf("%w: negative stream limits", ErrConfig)
	case c.FetchLimit < 0 || c.FetchLimit > clientproto.MaxFetchLimit:
		return fmt.Errorf("%w: FetchLimit %d (1 to %d)", ErrConfig, c.FetchLimit, clientproto.MaxFetchLimit)
	case c.FetchBytes < 0 || c.FetchBytes > clientproto.MaxFetchBytes:
		return fmt.Errorf("%w: FetchBytes %d (1 to %d)", ErrConfig, c.FetchBytes, clientproto.MaxFetchBytes)
	case c.ReplyBytes < c.FetchBytes:
		return fmt.Errorf("%w: ReplyBytes %d is less than FetchBytes %d", ErrConfig, c.ReplyBytes, c.FetchBytes)
	case c.RequestTimeout < 0 || c.FirstRequestTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrConfig)
	}
	return nil
}

// Service serves the client protocol. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	nodeID [32]byte

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // stream handlers and their requests

	requests chan struct{} // one token per request being served (MaxRequests)
	replies  replyBudget

	mu        sync.Mutex
	closed    bool
	streams   map[network.Stream]struct{}
	perClient map[peer.ID]int
	perIP     map[netip.Prefix]int
	allowance map[peer.ID]uint64
	garbage   map[peer.ID]struct{} // clients already logged for garbage
}

// New validates cfg and returns a Service. It registers the metrics with
// cfg.Registerer.
func New(cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("provider: registering metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "provider"),
		m:         m,
		nodeID:    cfg.Backend.NodeID(),
		ctx:       ctx,
		cancel:    cancel,
		requests:  make(chan struct{}, cfg.MaxRequests),
		replies:   replyBudget{limit: cfg.ReplyBytes, gauge: m.replyBytes},
		streams:   map[network.Stream]struct{}{},
		perClient: map[peer.ID]int{},
		perIP:     map[netip.Prefix]int{},
		allowance: map[peer.ID]uint64{},
		garbage:   map[peer.ID]struct{}{},
	}, nil
}

// Close stops serving: it cancels requests in progress, resets every open
// stream and waits until their handlers have returned. Streams arriving
// later are reset. Close does not close the Backend, Mailboxes or Accounting.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	for st := range s.streams {
		_ = st.Reset()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Allowance is how many packets a client may still send (only meaningful
// with Accounting set).
func (s *Service) Allowance(client peer.ID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allowance[client]
}

// admit registers a new stream, or says why it is refused. ip is the
// stream's remote address as ipKey gives it.
func (s *Service) admit(st network.Stream, client peer.ID, ip netip.Prefix) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return "closed"
	case len(s.streams) >= s.cfg.MaxStreams:
		return "max_streams"
	case s.perClient[client] >= s.cfg.MaxStreamsPerClient:
		return "max_streams_per_client"
	case ip.IsValid() && s.perIP[ip] >= s.cfg.MaxStreamsPerIP:
		return "max_streams_per_ip"
	}
	s.streams[st] = struct{}{}
	s.perClient[client]++
	if ip.IsValid() {
		s.perIP[ip]++
	}
	s.wg.Add(1)
	s.m.streams.Inc()
	return ""
}

func (s *Service) release(st network.Stream, client peer.ID, ip netip.Prefix) {
	s.mu.Lock()
	delete(s.streams, st)
	if s.perClient[client]--; s.perClient[client] <= 0 {
		delete(s.perClient, client)
	}
	if ip.IsValid() {
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
	}
	s.mu.Unlock()
	s.m.streams.Dec()
	s.wg.Done()
}

// ipKey is what a remote address counts against MaxStreamsPerIP: its IPv4
// address, or its IPv6 /64 (what one subscriber usually gets, so a host
// cannot spread itself over many addresses); the zero Prefix, not
// counted, for an address without an IP.
func ipKey(a ma.Multiaddr) netip.Prefix {
	if a == nil {
		return netip.Prefix{}
	}
	raw, err := manet.ToIP(a)
	if err != nil {
		return netip.Prefix{}
	}
	ip, ok := netip.AddrFromSlice(raw)
	if !ok {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// startRequest takes one of the MaxRequests tokens and reserves the
// share of ReplyBytes a request of op needs before it is served; false
// (nothing taken) if either is exhausted. The caller gives the token back
// with endRequest and the reservation with replies.give.
func (s *Service) startRequest(op clientproto.Op) (reserved int, ok bool) {
	select {
	case s.requests <- struct{}{}:
	default:
		return 0, false
	}
	reserved = s.replyReserve(op)
	if !s.replies.take(reserved) {
		<-s.requests
		return 0, false
	}
	return reserved, true
}

func (s *Service) endRequest() { <-s.requests }

// replyOverhead is the most a reply without data takes: its frame length,
// header and the longest error message.
const replyOverhead = 4 + 6 + clientproto.MaxErrorMessageLength

// replyReserve is what a request of op reserves before it is served: its
// largest reply when that is known (a Fetch's is FetchBytes, but for one
// message larger than that), else replyOverhead; a reply found larger is
// resized by fitReply once it is built.
func (s *Service) replyReserve(op clientproto.Op) int {
	n := replyOverhead
	if op == clientproto.OpFetch {
		n += s.cfg.FetchBytes
	}
	return min(n, s.cfg.ReplyBytes)
}

// fitReply resizes a request's reservation from held to what its built
// reply needs (at most the whole budget), or reports false, keeping held,
// if there is no room for it.
func (s *Service) fitReply(resp *clientproto.Response, held int) (int, bool) {
	need := min(replyLength(resp), s.cfg.ReplyBytes)
	switch {
	case need > held:
		if !s.replies.take(need - held) {
			return held, false
		}
	case need < held:
		s.replies.give(held - need)
	}
	return need, true
}

// replyLength is the length of the frame of resp (at most a few bytes
// more).
func replyLength(resp *clientproto.Response) int {
	n := 4 + 6
	if resp.Code != clientproto.CodeOK {
		return n + len(resp.Message)
	}
	switch resp.Op {
	case clientproto.OpDocument:
		n += len(resp.Document)
	case clientproto.OpFetch:
		n += clientproto.FetchReplyLength(resp.Messages)
	case clientproto.OpRedeem:
		n += 8 + len(resp.Receipt)
	}
	return n
}

// replyBudget counts the bytes of replies being built or waiting to be
// written against ReplyBytes.
type replyBudget struct {
	limit int
	gauge prometheus.Gauge

	mu   sync.Mutex
	used int
	peak int // the most ever used, for tests
}

func (b *replyBudget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	b.gauge.Set(float64(b.used))
	return true
}

func (b *replyBudget) give(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.gauge.Set(float64(b.used))
}

// logGarbage logs a client's protocol violation once per client (until
// the set of remembered clients fills up and starts over).
func (s *Service) logGarbage(client peer.ID, err error) {
	s.mu.Lock()
	_, seen := s.garbage[client]
	if !seen {
		if len(s.garbage) >= 4096 {
			clear(s.garbage)
		}
		s.garbage[client] = struct{}{}
	}
	s.mu.Unlock()
	if seen {
		s.log.Debug("client stream reset", "peer", client, "err", err)
		return
	}
	s.log.Warn("client sent a malformed frame; stream reset", "peer", client, "err", err)
}

// takePacket spends one packet of a client's allowance.
func (s *Service) takePacket(client peer.ID) bool {
	if s.cfg.Accounting == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.allowance[client]
	if n == 0 {
		return false
	}
	if n == 1 {
		delete(s.allowance, client)
	} else {
		s.allowance[client] = n - 1
	}
	return true
}

// grant adds packets to a client's allowance (saturating).
func (s *Service) grant(client peer.ID, n uint64) {
	if s.cfg.Accounting == nil || n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allowance[client]
	if a+n < a {
		a = ^uint64(0)
	} else {
		a += n
	}
	s.allowance[client] = a
}
