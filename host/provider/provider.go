// Package provider is a provider node's client service: the server side of
// the client protocol (clientproto.Protocol, /sotto/client/1.0.0, specified
// in docs/SPEC.md, "Client protocol"). It is the gateway in the path of a
// packet: a client's packet enters the network here (Send), and what the
// node stored in the client's mailboxes leaves here: pushed, one frame of
// one size per interval, to a client that subscribed (downstream.go,
// docs/SPEC.md "Pushed downstream"), or fetched (Fetch, Ack) by one that
// polls.
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
// that Redeem fills. With Allowances set too, allowances survive a restart
// of the provider: a grant is written before its Redeem is answered, and
// spending is written in batches (allowance.go says what a crash can
// cost); without it they live in memory and a restart forgets them.
//
// Slow or hostile clients are bounded: a stream may have MaxInFlight
// requests being served, a client MaxStreamsPerClient streams, an IP
// address MaxStreamsPerIP, every request has a deadline, an idle stream is
// closed (soon if it never sent a request), a frame must arrive whole
// within RequestTimeout, and a stream that sends a frame over the request
// limit or a body of the wrong length is reset (logged once per client),
// without disturbing anyone else; a body of the right length is always
// answered (docs/SPEC.md, "Errors and resets"). Because
// identities are free, per-client bounds alone do not bound the service:
// MaxRequests bounds the requests being served in all, ReplyBytes the bytes
// of the replies they build and wait to write, and a request beyond either
// is answered busy at once. One client may hold at most ReplyBytesPerClient
// of those bytes and one address ReplyBytesPerIP, so that a few addresses
// cannot pin the whole budget. A stream whose client does not read its
// replies is not read either while a reply to it is being written, and a
// reply not written within RequestTimeout of being ready (waiting behind
// another included) resets the stream. A full table of streams (the
// service's, or an address's) does not lock newcomers out: it makes room
// by resetting an idle stream (no request being served) of the heaviest
// address, or the heaviest client at the address, the one idle longest;
// only when no stream in it is idle is the newcomer refused. Sending is
// rate-limited per client (SendRate) and per address (SendRatePerIP).
//
// What a client reads in an error reply is a code and a short reason
// written here; the errors of plugins and of the node behind them (paths,
// plugin internals) go to the log only.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/ratelimit"
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
	DefaultReplyBytesPerClient = 4 << 20
	DefaultReplyBytesPerIP     = 16 << 20
	// A client's own Poisson streams send λP+λL+λD packets per second
	// (4 in the demo); the node passes ten times its document's sum.
	DefaultSendRate       = 50
	DefaultSendBurst      = 500 // 10 s at the default rate
	DefaultSendRatePerIP  = 800 // 16 clients at the default rate
	DefaultSendBurstPerIP = 8000
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
	// ReplyBytesPerClient and ReplyBytesPerIP bound the bytes of
	// ReplyBytes that one client, and all clients at one IPv4 address or
	// IPv6 /64, hold at once (at most ReplyBytes); a request beyond them
	// gets busy. A reply larger than the share is sent only when its
	// client (address) holds nothing else.
	ReplyBytesPerClient int
	ReplyBytesPerIP     int
	// SendRate bounds the packets per second one client may Send, with
	// bursts of SendBurst (a token bucket); SendRatePerIP and
	// SendBurstPerIP bound all clients at one address together. A Send
	// beyond either gets busy and costs nothing.
	SendRate       float64
	SendBurst      int
	SendRatePerIP  float64
	SendBurstPerIP int
	// Allowances, if set (with Accounting), keeps the clients' allowances
	// in namespace AllowanceNamespace, so they survive a restart of the
	// provider; the node passes its Storage's KV under a slot of its own.
	Allowances interfaces.KV
	// AllowanceFlush is how often spent packets are written to Allowances
	// (in one batch); 0 means DefaultAllowanceFlush.
	AllowanceFlush time.Duration
	// CurrentEpoch returns the node's current epoch. A Redeem for an
	// epoch other than it or its two neighbours is refused (bad request)
	// before Accounting sees it. Required with Accounting.
	CurrentEpoch func() uint64
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def(&c.MaxInFlight, DefaultMaxInFlight)
	def(&c.MaxStreamsPerClient, DefaultMaxStreamsPerClient)
	def(&c.MaxStreamsPerIP, DefaultMaxStreamsPerIP)
	def(&c.MaxStreams, DefaultMaxStreams)
	def(&c.MaxRequests, DefaultMaxRequests)
	def(&c.ReplyBytes, DefaultReplyBytes)
	def(&c.FetchLimit, DefaultFetchLimit)
	def(&c.FetchBytes, DefaultFetchBytes)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.FirstRequestTimeout, DefaultFirstRequestTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.ReplyBytesPerClient, DefaultReplyBytesPerClient)
	def(&c.ReplyBytesPerIP, DefaultReplyBytesPerIP)
	def(&c.SendRate, DefaultSendRate)
	def(&c.SendBurst, DefaultSendBurst)
	def(&c.SendRatePerIP, DefaultSendRatePerIP)
	def(&c.SendBurstPerIP, DefaultSendBurstPerIP)
	def(&c.AllowanceFlush, DefaultAllowanceFlush)
}

// def sets a zero config value to its default.
func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
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
	case c.ReplyBytesPerClient < 0 || c.ReplyBytesPerIP < 0:
		return fmt.Errorf("%w: negative reply byte shares", ErrConfig)
	case !(c.SendRate > 0) || !(c.SendRatePerIP > 0) || c.SendBurst < 1 || c.SendBurstPerIP < 1:
		return fmt.Errorf("%w: send rates must be positive and bursts at least 1 (rate %v, burst %d; per IP %v, %d)",
			ErrConfig, c.SendRate, c.SendBurst, c.SendRatePerIP, c.SendBurstPerIP)
	case c.AllowanceFlush < 0:
		return fmt.Errorf("%w: negative AllowanceFlush", ErrConfig)
	case c.Accounting != nil && c.CurrentEpoch == nil:
		return fmt.Errorf("%w: Accounting needs CurrentEpoch", ErrConfig)
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
	bg     sync.WaitGroup // the allowance flusher
	store  *allowanceStore

	requests chan struct{} // one token per request being served (MaxRequests)
	replies  replyBudget

	mu        sync.Mutex
	closed    bool
	streams   map[*clientStream]struct{}
	perClient map[peer.ID]int
	perIP     map[netip.Prefix]int
	allowance map[peer.ID]uint64
	dirty     map[peer.ID]struct{} // allowances changed since the last flush
	garbage   map[peer.ID]struct{} // clients already logged for garbage
	sendRate  rateLimits
	// downstreams is each subscribed client's downstream stream.
	downstreams map[peer.ID]*clientStream
	shapes      shapeCache
	// watching maps a mailbox to the downstreams watching it (Stored).
	watchMu  sync.Mutex
	watching map[clientproto.MailboxID]map[*subscription]clientproto.MailboxRef
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
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "provider"),
		m:        m,
		nodeID:   cfg.Backend.NodeID(),
		ctx:      ctx,
		cancel:   cancel,
		requests: make(chan struct{}, cfg.MaxRequests),
		replies: replyBudget{
			limit: cfg.ReplyBytes, perClient: min(cfg.ReplyBytesPerClient, cfg.ReplyBytes), perIP: min(cfg.ReplyBytesPerIP, cfg.ReplyBytes),
			gauge: m.replyBytes, byClient: map[peer.ID]int{}, byIP: map[netip.Prefix]int{},
		},
		streams:     map[*clientStream]struct{}{},
		perClient:   map[peer.ID]int{},
		perIP:       map[netip.Prefix]int{},
		allowance:   map[peer.ID]uint64{},
		dirty:       map[peer.ID]struct{}{},
		garbage:     map[peer.ID]struct{}{},
		downstreams: map[peer.ID]*clientStream{},
		watching:    map[clientproto.MailboxID]map[*subscription]clientproto.MailboxRef{},
		sendRate: rateLimits{
			client: ratelimit.New[peer.ID](cfg.SendRate, float64(cfg.SendBurst), maxIdleBuckets),
			ip:     ratelimit.New[netip.Prefix](cfg.SendRatePerIP, float64(cfg.SendBurstPerIP), maxIdleBuckets),
		},
	}
	if cfg.Accounting != nil && cfg.Allowances != nil {
		s.store = &allowanceStore{kv: cfg.Allowances}
		lctx, lcancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		err := s.loadAllowances(lctx)
		lcancel()
		if err != nil {
			cancel()
			return nil, err
		}
		s.bg.Add(1)
		go s.allowanceLoop()
	}
	return s, nil
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
	for c := range s.streams {
		_ = c.st.Reset()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.bg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.flushAllowances(ctx); err != nil {
		return fmt.Errorf("provider: the last flush of allowances: %w", err)
	}
	return nil
}

// Allowance is how many packets a client may still send (only meaningful
// with Accounting set).
func (s *Service) Allowance(client peer.ID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allowance[client]
}

// admit registers a new stream, or says why it is refused. A full
// table of the stream's address, or of the service, makes room by
// evicting an idle stream (see victim), which admit returns for the
// caller to reset once the lock is released; a client's own table is its
// own business, and a full one refuses the newcomer.
func (s *Service) admit(c *clientStream) (evicted []*clientStream, refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "closed"
	}
	if s.perClient[c.client] >= s.cfg.MaxStreamsPerClient {
		return nil, "max_streams_per_client"
	}
	if c.ip.IsValid() && s.perIP[c.ip] >= s.cfg.MaxStreamsPerIP {
		// Among the streams of the address, the heaviest client's.
		v := s.victim(func(o *clientStream) (bool, int) { return o.ip == c.ip, s.perClient[o.client] })
		if v == nil {
			return nil, "max_streams_per_ip"
		}
		s.evict(v, "max_streams_per_ip")
		evicted = append(evicted, v)
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		// Among all streams, the heaviest address's.
		v := s.victim(func(o *clientStream) (bool, int) {
			if o.ip.IsValid() {
				return true, s.perIP[o.ip]
			}
			return true, s.perClient[o.client]
		})
		if v == nil {
			return evicted, "max_streams"
		}
		s.evict(v, "max_streams")
		evicted = append(evicted, v)
	}
	s.streams[c] = struct{}{}
	c.registered = true
	s.perClient[c.client]++
	if c.ip.IsValid() {
		s.perIP[c.ip]++
	}
	s.wg.Add(1)
	s.m.streams.Inc()
	return evicted, ""
}

// newStreamGrace is how long a newly admitted stream that has not yet
// sent its first request is spared from eviction (clientStream.asked).
const newStreamGrace = time.Second

// victim picks the stream to evict from a full table: among the idle
// streams (no request being read, served or answered, and not a newcomer
// within newStreamGrace of admission that has yet to ask) that scope
// takes, one of the largest group (the weight scope gives it), and of
// those the one idle longest. An attacker that holds many streams from
// few addresses or identities is evicted before the clients next to it,
// one that keeps every stream busy holds its streams but cannot take
// anyone else's, and its newcomers cannot cut a client's stream before
// that client's first request. Nil if no stream in scope is idle. Called
// with s.mu held.
func (s *Service) victim(scope func(*clientStream) (in bool, weight int)) *clientStream {
	var (
		best       *clientStream
		bestWeight int
		bestActive int64
	)
	now := time.Now().UnixNano()
	for o := range s.streams {
		in, w := scope(o)
		if !in || o.busy.Load() > 0 || (!o.asked.Load() && now-o.admitted < int64(newStreamGrace)) {
			continue
		}
		a := o.active.Load()
		if best == nil || w > bestWeight || (w == bestWeight && a < bestActive) {
			best, bestWeight, bestActive = o, w, a
		}
	}
	return best
}

// evict takes c out of the tables (its handler returns once the caller
// resets it). Called with s.mu held.
func (s *Service) evict(c *clientStream, reason string) {
	c.evicted.Store(true)
	s.unregister(c)
	s.m.streamsEvicted.WithLabelValues(reason).Inc()
}

// unregister takes c out of the tables, once. Called with s.mu held.
func (s *Service) unregister(c *clientStream) {
	if !c.registered {
		return
	}
	c.registered = false
	s.m.streams.Dec()
	delete(s.streams, c)
	if s.perClient[c.client]--; s.perClient[c.client] <= 0 {
		delete(s.perClient, c.client)
	}
	if c.ip.IsValid() {
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
	}
}

func (s *Service) release(c *clientStream) {
	s.mu.Lock()
	s.unregister(c)
	s.mu.Unlock()
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
func (s *Service) startRequest(c *clientStream, op clientproto.Op) (reserved int, ok bool) {
	select {
	case s.requests <- struct{}{}:
	default:
		return 0, false
	}
	reserved = s.replyReserve(op)
	if !s.replies.resize(c, 0, reserved) {
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
func (s *Service) fitReply(c *clientStream, resp *clientproto.Response, held int) (int, bool) {
	need := min(replyLength(resp), s.cfg.ReplyBytes)
	if !s.replies.resize(c, held, need) {
		return held, false
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
	case clientproto.OpIssue:
		n += len(resp.Issued)
	}
	return n
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
	s.dirty[client] = struct{}{}
	if n == 1 {
		delete(s.allowance, client)
	} else {
		s.allowance[client] = n - 1
	}
	return true
}

// grant adds packets to a client's allowance (saturating); the change is
// written with the next flush.
func (s *Service) grant(client peer.ID, n uint64) {
	if s.cfg.Accounting == nil || n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty[client] = struct{}{}
	a := s.allowance[client]
	if a+n < a {
		a = ^uint64(0)
	} else {
		a += n
	}
	s.allowance[client] = a
}
