package pkigossip

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
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
	manet "github.com/multiformats/go-multiaddr/net"

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
	cfg    Config
	clock  epoch.Clock
	log    *slog.Logger
	host   host.Host
	bw     *metrics.BandwidthCounter
	ps     *pubsub.PubSub
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	store  *store
	policy policy          // admission: who may be in a document
	boot   []peer.AddrInfo // bootstrap peers, redialled while unreachable

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	accepted, rejected, ignored, equivocations atomic.Uint64
	notAdmitted, throttled, disagreements      atomic.Uint64

	// differ remembers, per peer and epoch, the state hash a peer
	// announced that anti-entropy could not reach, so that a lasting
	// disagreement is logged once when it starts and once when it ends.
	differMu sync.Mutex
	differ   map[differKey][32]byte

	// withhold is a fault injection for this package's tests only (it
	// cannot be set from outside the package, by config or option): when
	// it is set, descriptors this member publishes are not gossiped, and
	// anti-entropy answers leave them out for every peer p with
	// withhold(p) true, while the member's state hash still counts them.
	// own holds the descriptors published through Publish.
	withhold atomic.Pointer[func(peer.ID) bool]
	ownMu    sync.Mutex
	own      map[string]bool
}

type differKey struct {
	p peer.ID
	e uint64
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
	if cfg.StateDir != "" {
		if err := prepareStateDir(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	pol, err := policies[cfg.Admission.Policy](&cfg, clock)
	if err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, clock: clock, log: slog.Default(), store: newStore(cfg.StateDir), policy: pol, bw: metrics.NewBandwidthCounter()}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With("plugin", "pki-gossip", "network", cfg.Network)
	m.logAdmission()

	if cfg.StateDir != "" {
		recs, err := loadRecords(cfg.StateDir)
		if err != nil {
			pol.close()
			return nil, err
		}
		for _, r := range recs {
			// Expired or bad records are simply not taken back.
			m.admitWith(r.msg, func(sd *interfaces.SignedDescriptor, proof []byte) ([]byte, error) {
				return m.policy.restore(ctx, sd, proof, r.rank)
			})
		}
	}

	var priv crypto.PrivKey
	if len(cfg.IdentitySeed) == 32 {
		priv, err = crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(cfg.IdentitySeed))
	} else {
		priv, _, err = crypto.GenerateEd25519Key(nil)
	}
	if err != nil {
		pol.close()
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
		pol.close()
		return nil, fmt.Errorf("pki-gossip: libp2p host: %w", err)
	}
	m.host = h
	if err := m.start(ctx); err != nil {
		h.Close()
		pol.close()
		return nil, err
	}
	return m, nil
}

// logAdmission says at start which admission design the member enforces.
func (m *Member) logAdmission() {
	a := m.cfg.Admission
	switch a.Policy {
	case "endorsed":
		m.log.Info("admission: endorsed", "roots", len(a.Endorsed.Roots), "threshold", a.Endorsed.Threshold,
			"own_endorsements", len(a.Endorsed.Endorsements))
	case "open":
		o := a.Open
		m.log.Info("admission: open, by proof of work", "argon2id_memory_kib", o.MemoryKiB, "passes", o.Passes,
			"difficulty_bits", o.Difficulty, "max_per_epoch", o.MaxPerEpoch, "source_rate", o.SourceRate, "source_burst", o.SourceBurst)
	default:
		m.log.Warn("admission: none: anyone may publish descriptors for free (a baseline for comparison, not a deployment)")
	}
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
	m.host.Network().Notify(&pullOnConnect{m: m, ctx: runCtx, sem: make(chan struct{}, 16)})

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
		if ai.ID == m.host.ID() {
			continue // this member is on its own bootstrap list (every member shares one)
		}
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
		m.policy.forget(e)
		if e > m.cfg.Keep {
			m.store.prune(e - m.cfg.Keep)
		}
	}
}

// ingest verifies a gossip message from anywhere (gossip, sync, disk,
// Publish) and stores its descriptor. source is the address it came from,
// "" for the member itself. Checks run cheapest first: the admission proof
// (a proof of work, under "open") only for a descriptor that is valid, in
// the window and new.
func (m *Member) ingest(ctx context.Context, msg []byte, source string) (verdict, error) {
	return m.admitWith(msg, func(sd *interfaces.SignedDescriptor, proof []byte) ([]byte, error) {
		return m.policy.check(ctx, source, sd, proof)
	})
}

// admitWith is ingest with the admission check given: check, or restore
// for the member's own records.
func (m *Member) admitWith(msg []byte, admit func(*interfaces.SignedDescriptor, []byte) ([]byte, error)) (verdict, error) {
	kind, raw, proof, err := parseMessage(msg)
	if err != nil {
		return 0, err
	}
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
	if m.store.excluded(sd.Descriptor.Epoch, sd.Descriptor.Identity) {
		return verdictExcluded, nil
	}
	if m.store.holds(sd) {
		return verdictDuplicate, nil
	}
	if want := m.policy.kind(); kind != want {
		return 0, fmt.Errorf("%w: admission proof of kind %d, this network's policy %q is kind %d", ErrNotAdmitted, kind, m.cfg.Admission.Policy, want)
	}
	rank, err := admit(sd, proof)
	if err != nil {
		return 0, err
	}
	v, err := m.store.add(sd, msg, rank, m.policy.capacity())
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
// sending peer's score; ignored ones are merely not forwarded. Either way a
// descriptor that fails admission is not relayed.
func (m *Member) validate(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == m.host.ID() {
		return pubsub.ValidationAccept // Publish has ingested it already
	}
	v, err := m.ingest(ctx, msg.Data, m.sourceOf(from))
	return m.judge(v, err, from)
}

// judge counts the outcome of ingesting one message from peer p and turns it
// into a gossipsub verdict.
func (m *Member) judge(v verdict, err error, p peer.ID) pubsub.ValidationResult {
	switch {
	case errors.Is(err, interfaces.ErrEpochWindow):
		m.ignored.Add(1)
		return pubsub.ValidationIgnore
	case errors.Is(err, errThrottled):
		m.throttled.Add(1)
		m.ignored.Add(1)
		return pubsub.ValidationIgnore
	case errors.Is(err, ErrNotAdmitted):
		m.notAdmitted.Add(1)
		m.rejected.Add(1)
		m.log.Debug("descriptor not admitted", "peer", p, "err", err)
		return pubsub.ValidationReject
	case err != nil:
		m.rejected.Add(1)
		m.log.Debug("descriptor rejected", "peer", p, "err", err)
		return pubsub.ValidationReject
	case v == verdictNew || v == verdictEquivocation:
		// Evidence is forwarded too, so every member learns of it.
		return pubsub.ValidationAccept
	default:
		m.ignored.Add(1)
		return pubsub.ValidationIgnore
	}
}

// sourceOf is the source address a peer's messages count against under a
// rate-limited admission policy: the remote IP of its connection.
func (m *Member) sourceOf(p peer.ID) string {
	for _, c := range m.host.Network().ConnsToPeer(p) {
		ip, err := manet.ToIP(c.RemoteMultiaddr())
		if a, ok := netip.AddrFromSlice(ip); err == nil && ok {
			return sourceKey(a)
		}
	}
	return "peer " + p.String() // not connected any more: its ID is all we know
}

// Publish implements interfaces.PKI. The member attaches its admission
// proof (its endorsements, or its proof of work, computed once per epoch)
// and checks the result as any member would before it gossips it.
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
	proof, err := m.policy.prove(ctx, sd)
	if err != nil {
		if errors.Is(err, ErrNotAdmitted) {
			return nil, fmt.Errorf("pki-gossip: publish: %w: %w", interfaces.ErrInvalidArgument, err)
		}
		return nil, fmt.Errorf("pki-gossip: publish: %w", err)
	}
	msg := encodeMessage(m.policy.kind(), sd.Raw, proof)
	v, err := m.ingest(ctx, msg, "")
	switch {
	case errors.Is(err, ErrNotAdmitted):
		return nil, fmt.Errorf("pki-gossip: publish: %w: %w", interfaces.ErrInvalidArgument, err)
	case err != nil:
		return nil, fmt.Errorf("pki-gossip: publish: %w", err)
	case v == verdictFull:
		return nil, fmt.Errorf("pki-gossip: publish: %w: epoch %d is full and this descriptor's admission ranks below every one held",
			ErrNotAdmitted, sd.Descriptor.Epoch)
	case v == verdictExcluded:
		return nil, fmt.Errorf("pki-gossip: publish: %w", interfaces.ErrEquivocation)
	}
	// New, or new evidence: either way every member should learn of it.
	m.ownMu.Lock()
	if m.own == nil {
		m.own = map[string]bool{}
	}
	m.own[string(sd.Raw)] = true
	m.ownMu.Unlock()
	var pubErr error
	if m.withhold.Load() == nil {
		pubErr = m.topic.Publish(ctx, msg)
	}
	if v == verdictEquivocation {
		return nil, fmt.Errorf("pki-gossip: publish: %w", interfaces.ErrEquivocation)
	}
	if pubErr != nil {
		// Stored here; anti-entropy spreads it even if gossip did not.
		m.log.Warn("descriptor stored but not gossiped", "epoch", sd.Descriptor.Epoch, "err", pubErr)
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

// Stats are a member's counters since it started. NotAdmitted counts
// messages rejected for their admission proof (also in Rejected), Throttled
// those ignored because their source was over its rate (also in Ignored).
//
// Disagreements counts anti-entropy rounds in which a peer's answer did not
// hash to the state hash it had just announced: it holds descriptors it
// did not hand over (withheld). One round can also race a descriptor
// arriving at the peer between the two requests, so a lasting
// disagreement shows as a count that keeps growing; it is logged
// when it starts ("PKI views differ") and when it ends ("PKI views agree
// again").
type Stats struct {
	Accepted, Rejected, Ignored, Equivocations uint64
	NotAdmitted, Throttled, Disagreements      uint64
	BytesIn, BytesOut                          int64
}

// Stats returns the member's counters, libp2p traffic included.
func (m *Member) Stats() Stats {
	bw := m.bw.GetBandwidthTotals()
	return Stats{
		Accepted: m.accepted.Load(), Rejected: m.rejected.Load(),
		Ignored: m.ignored.Load(), Equivocations: m.equivocations.Load(),
		NotAdmitted: m.notAdmitted.Load(), Throttled: m.throttled.Load(), Disagreements: m.disagreements.Load(),
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
		m.policy.close()
		m.topic.Close()
		err = m.host.Close()
	})
	return err
}

// jitter spreads sync rounds so members do not hit peers in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
