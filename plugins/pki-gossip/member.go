package pkigossip

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// queueSize is the gossipsub queue depth. With the defaults (32) bursts of
// ~100 messages were dropped silently across three hosts on this project's
// machines; 1024 delivered everything.
const queueSize = 1024

// Member is one participant of the gossip PKI. It implements
// interfaces.PKI. Build it with New; stop it with Close.
type Member struct {
	cfg   Config
	clock epoch.Clock
	log   *slog.Logger
	host  host.Host
	bw    *metrics.BandwidthCounter
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	store *store
	boot  []peer.AddrInfo // bootstrap peers, redialled while unreachable

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	accepted, rejected, ignored, equivocations atomic.Uint64
}

var _ interfaces.PKI = (*Member)(nil)

// Option adjusts a Member.
type Option func(*Member)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Member) { m.log = l } }

// New starts a member: its libp2p host, the gossip topic, the document
// protocol and the anti-entropy loop. It dials the bootstrap peers and pulls
// their state before returning (failures to reach them are logged, not
// fatal: the sync loop keeps trying). ctx bounds only the start.
func New(ctx context.Context, cfg Config, opts ...Option) (*Member, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clock, _ := epoch.New(cfg.Genesis, cfg.EpochPeriod, cfg.Grace) // validated above
	m := &Member{cfg: cfg, clock: clock, log: slog.Default(), store: newStore(cfg.StateDir), bw: metrics.NewBandwidthCounter()}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With("plugin", "pki-gossip", "network", cfg.Network)

	if cfg.StateDir != "" {
		recs, err := loadRecords(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			m.ingest(r) // expired or bad records are simply not taken back
		}
	}

	var priv crypto.PrivKey
	var err error
	if len(cfg.IdentitySeed) == 32 {
		priv, err = crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(cfg.IdentitySeed))
	} else {
		priv, _, err = crypto.GenerateEd25519Key(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("pki-gossip: host key: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.BandwidthReporter(m.bw),
	)
	if err != nil {
		return nil, fmt.Errorf("pki-gossip: libp2p host: %w", err)
	}
	m.host = h
	if err := m.start(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return m, nil
}

func (m *Member) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	ps, err := pubsub.NewGossipSub(runCtx, m.host,
		pubsub.WithPeerOutboundQueueSize(queueSize),
		pubsub.WithValidateQueueSize(queueSize),
		pubsub.WithMaxMessageSize(4*interfaces.MaxDescriptorSize),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(msg *pb.Message) string {
			h := sha256.Sum256(msg.Data)
			return string(h[:])
		}),
	)
	if err != nil {
		cancel()
		return fmt.Errorf("pki-gossip: gossipsub: %w", err)
	}
	m.ps = ps
	if err := ps.RegisterTopicValidator(m.cfg.topic(), m.validate); err != nil {
		cancel()
		return fmt.Errorf("pki-gossip: validator: %w", err)
	}
	if m.topic, err = ps.Join(m.cfg.topic()); err != nil {
		cancel()
		return fmt.Errorf("pki-gossip: join: %w", err)
	}
	if m.sub, err = m.topic.Subscribe(pubsub.WithBufferSize(queueSize)); err != nil {
		cancel()
		return fmt.Errorf("pki-gossip: subscribe: %w", err)
	}
	m.host.SetStreamHandler(ProtocolID, m.serveStream)

	for _, s := range m.cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			m.log.Warn("bad bootstrap address", "addr", s, "err", err)
			continue
		}
		m.boot = append(m.boot, *ai)
	}
	m.wg.Add(3)
	go m.drain(runCtx)
	go m.syncLoop(runCtx)
	go m.pruneLoop(runCtx)

	for _, ai := range m.boot {
		if err := m.host.Connect(ctx, ai); err != nil {
			m.log.Warn("bootstrap peer unreachable; will retry", "peer", ai.ID, "err", err)
			continue
		}
		m.syncWith(ctx, ai.ID)
	}
	return nil
}

// redialBootstrap dials the bootstrap peers the member is not connected
// to, so that members started in any order (or a bootstrap peer that was
// down) still meet.
func (m *Member) redialBootstrap(ctx context.Context) {
	for _, ai := range m.boot {
		if ai.ID == m.host.ID() || m.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := m.host.Connect(cctx, ai)
		cancel()
		if err == nil {
			m.log.Info("bootstrap peer reached", "peer", ai.ID)
			m.syncWith(ctx, ai.ID)
		}
	}
}

// drain consumes the subscription: validation already stored every message,
// but a subscription that is not read stalls delivery.
func (m *Member) drain(ctx context.Context) {
	defer m.wg.Done()
	for {
		if _, err := m.sub.Next(ctx); err != nil {
			return
		}
	}
}

func (m *Member) pruneLoop(ctx context.Context) {
	defer m.wg.Done()
	for e := range m.clock.Ticks(ctx) {
		if e > m.cfg.Keep {
			m.store.prune(e - m.cfg.Keep)
		}
	}
}

// ingest verifies raw descriptor bytes from anywhere (gossip, sync, disk)
// and stores them.
func (m *Member) ingest(raw []byte) (verdict, error) {
	sd, err := interfaces.ParseSignedDescriptor(raw)
	if err != nil {
		return 0, err
	}
	if sd.Descriptor.Network != m.cfg.Network {
		return 0, fmt.Errorf("%w: descriptor for network %q", interfaces.ErrInvalidArgument, sd.Descriptor.Network)
	}
	if err := interfaces.CheckEpochWindow(sd.Descriptor.Epoch, m.clock.Now(), m.cfg.Ahead); err != nil {
		return 0, err
	}
	v, err := m.store.add(sd)
	if err != nil {
		m.log.Error("state not persisted", "err", err)
	}
	switch v {
	case verdictNew:
		m.accepted.Add(1)
	case verdictEquivocation:
		m.equivocations.Add(1)
		m.log.Warn("equivocation: identity excluded", "epoch", sd.Descriptor.Epoch,
			"identity", fmt.Sprintf("%x", sd.Descriptor.Identity[:8]))
	}
	return v, nil
}

// validate is the gossipsub validator. Rejected messages count against the
// sending peer's score; ignored ones are merely not forwarded.
func (m *Member) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	v, err := m.ingest(msg.Data)
	switch {
	case errors.Is(err, interfaces.ErrEpochWindow):
		m.ignored.Add(1)
		return pubsub.ValidationIgnore
	case err != nil:
		m.rejected.Add(1)
		m.log.Debug("descriptor rejected", "err", err)
		return pubsub.ValidationReject
	case v == verdictNew || v == verdictEquivocation:
		// Evidence is forwarded too, so every member learns of it.
		return pubsub.ValidationAccept
	default:
		m.ignored.Add(1)
		return pubsub.ValidationIgnore
	}
}

// Publish implements interfaces.PKI.
func (m *Member) Publish(ctx context.Context, req *interfaces.PublishRequest) (*interfaces.PublishResponse, error) {
	if req == nil || req.Descriptor == nil {
		return nil, fmt.Errorf("pki-gossip: publish: %w: no descriptor", interfaces.ErrInvalidArgument)
	}
	sd, err := interfaces.ParseSignedDescriptor(req.Descriptor.Raw)
	if err != nil {
		return nil, fmt.Errorf("pki-gossip: publish: %w", err)
	}
	if sd.Descriptor.Network != m.cfg.Network {
		return nil, fmt.Errorf("pki-gossip: publish: %w: descriptor for network %q, member of %q",
			interfaces.ErrInvalidArgument, sd.Descriptor.Network, m.cfg.Network)
	}
	if err := interfaces.CheckEpochWindow(sd.Descriptor.Epoch, m.clock.Now(), m.cfg.Ahead); err != nil {
		return nil, fmt.Errorf("pki-gossip: publish: %w", err)
	}
	if m.store.excluded(sd.Descriptor.Epoch, sd.Descriptor.Identity) {
		return nil, fmt.Errorf("pki-gossip: publish: %w", interfaces.ErrEquivocation)
	}
	if m.store.holds(sd) {
		return &interfaces.PublishResponse{}, nil
	}
	pubErr := m.topic.Publish(ctx, sd.Raw) // the local validator stores it
	if m.store.excluded(sd.Descriptor.Epoch, sd.Descriptor.Identity) {
		return nil, fmt.Errorf("pki-gossip: publish: %w", interfaces.ErrEquivocation)
	}
	if !m.store.holds(sd) {
		if pubErr == nil {
			pubErr = errors.New("descriptor not stored")
		}
		return nil, fmt.Errorf("pki-gossip: publish: %w", pubErr)
	}
	return &interfaces.PublishResponse{}, nil
}

// Document implements interfaces.PKI.
func (m *Member) Document(_ context.Context, req *interfaces.DocumentRequest) (*interfaces.DocumentResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki-gossip: document: %w: nil request", interfaces.ErrInvalidArgument)
	}
	doc, h, err := m.store.document(m.cfg.Network, req.Epoch, m.cfg.Params)
	if err != nil {
		return nil, err
	}
	return &interfaces.DocumentResponse{Document: doc, Hash: h}, nil
}

// Evidence implements interfaces.PKI.
func (m *Member) Evidence(_ context.Context, req *interfaces.EvidenceRequest) (*interfaces.EvidenceResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki-gossip: evidence: %w: nil request", interfaces.ErrInvalidArgument)
	}
	return &interfaces.EvidenceResponse{Equivocations: m.store.evidence(req.Epoch)}, nil
}

// Stats are a member's counters since it started.
type Stats struct {
	Accepted, Rejected, Ignored, Equivocations uint64
	BytesIn, BytesOut                          int64
}

// Stats returns the member's counters, libp2p traffic included.
func (m *Member) Stats() Stats {
	bw := m.bw.GetBandwidthTotals()
	return Stats{
		Accepted: m.accepted.Load(), Rejected: m.rejected.Load(),
		Ignored: m.ignored.Load(), Equivocations: m.equivocations.Load(),
		BytesIn: bw.TotalIn, BytesOut: bw.TotalOut,
	}
}

// Host returns the member's libp2p host (for its ID and addresses).
func (m *Member) Host() host.Host { return m.host }

// Addrs returns the member's full multiaddrs, /p2p/<id> included, as
// bootstrap strings for other members.
func (m *Member) Addrs() []string {
	var out []string
	mas, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: m.host.ID(), Addrs: m.host.Addrs()})
	for _, a := range mas {
		out = append(out, a.String())
	}
	return out
}

// Clock returns the member's epoch clock.
func (m *Member) Clock() epoch.Clock { return m.clock }

// Close stops the member and its host. Idempotent.
func (m *Member) Close() error {
	var err error
	m.closed.Do(func() {
		m.cancel()
		m.sub.Cancel()
		m.host.RemoveStreamHandler(ProtocolID)
		m.wg.Wait()
		m.topic.Close()
		err = m.host.Close()
	})
	return err
}

// jitter spreads sync rounds so members do not hit peers in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
