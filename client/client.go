package client

import (
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// Bounds on what the receiving side keeps, so that a flood of fragments
// cannot grow it without limit.
const (
	maxPendingMessages = 256
	maxPendingBytes    = 64 << 20
	reassemblyTimeout  = 24 * time.Hour
	maxDone            = 1 << 16
	doneTTL            = 48 * time.Hour
	finishedTTL        = 10 * time.Minute
)

// Client is one Sotto user's endpoint: it keeps the PKI document, sends on
// the Loopix streams, polls its mailboxes, and encrypts, fragments,
// retransmits and reassembles messages. Build it with New (or
// client/p2p.Connect), start it with Run; its methods are safe for
// concurrent use.
type Client struct {
	cfg        Config
	log        *slog.Logger
	refusal    string // the provider's last refusal of a packet, "" once it takes one (noteRefusal)
	pub        ed25519.PublicKey
	ownMailbox clientproto.MailboxID
	msgKey     hpke.PrivateKey
	msgPub     hpke.PublicKey
	msg        Messaging    // the end-to-end layer (Config.Messaging), or nil: HPKE only
	kv         *MessagingKV // its state, part of the client's
	entropy    io.Reader
	store      Store
	prov       atomic.Pointer[Provider]
	clk        atomic.Pointer[epoch.Clock]
	running    atomic.Bool
	pushing    atomic.Bool   // receiving through the pushed downstream (downstream.go), not polling
	runDone    chan struct{} // closed when Run returns
	firstDoc   chan struct{} // closed once the client holds a document
	docOnce    sync.Once
	geoKnown   chan struct{} // closed once the client knows the geometry (a document, or its state)
	geoOnce    sync.Once
	messages   chan Message
	pumpOnce   sync.Once
	kick       chan struct{} // wakes the fetch loop (acks to send)
	saveMu     sync.Mutex    // one Save at a time, in generation order
	closeOnce  sync.Once

	mu            sync.Mutex
	rnd           *rand.Rand
	network       string
	providerAddr  string
	geo           *sphinx.Geometry // the network's, from a document or the state
	docs          map[uint64]*view
	queue         []*outFragment
	queued        int // fragments in queue that still need sending
	out           map[MessageID]*outgoing
	surbs         map[[sphinx.SURBIDLength]byte]*surbEntry
	surbMailboxes map[[16]byte]*surbMailbox
	after         map[clientproto.MailboxRef]uint64
	loops         map[[16]byte]*loopProbe
	health        map[[32]byte]*mixHealth
	replies       []slotPacket // end-to-end ACKs to send, in payload slots
	inbox         map[MessageID]*reassembly
	inboxBytes    int
	done          map[MessageID]time.Time
	usedSURBs     map[[32]byte]time.Time // fingerprints of contact SURBs this client spent
	stats         Stats

	// Incoming messages complete but not Done by the application, oldest
	// first; inboxWake is closed (and replaced) when one is added.
	unread    []*inMsg
	inboxWake chan struct{}
	// Mailbox entries to acknowledge at the provider: acks once the state
	// of generation gen is saved; held, without a Store, until the
	// application is done with the message they belong to.
	acks []pendingAck
	held map[MessageID][]entryRef
	// The state's generation (one more at each change) and the last one
	// the Store holds.
	gen, savedGen uint64

	// Paying the provider (pay.go).
	payment payState
	payWG   sync.WaitGroup

	// Connection (conn.go).
	started, everConnected bool
	linkErr                error
	conn                   Event
	readyCh                chan struct{}
}

// New checks cfg, reads the Store (identity, clock, state) and builds a
// client; a fresh identity is saved to the Store at once. It does no
// network I/O: Connect and Run do.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{
		log:           cfg.Logger.With("component", "client"),
		entropy:       cfg.Entropy,
		store:         cfg.Store,
		network:       cfg.Network,
		providerAddr:  cfg.ProviderAddr,
		runDone:       make(chan struct{}),
		firstDoc:      make(chan struct{}),
		geoKnown:      make(chan struct{}),
		messages:      make(chan Message),
		kick:          make(chan struct{}, 1),
		kv:            newMessagingKV(),
		readyCh:       make(chan struct{}),
		inboxWake:     make(chan struct{}),
		docs:          map[uint64]*view{},
		out:           map[MessageID]*outgoing{},
		surbs:         map[[sphinx.SURBIDLength]byte]*surbEntry{},
		surbMailboxes: map[[16]byte]*surbMailbox{},
		after:         map[clientproto.MailboxRef]uint64{},
		loops:         map[[16]byte]*loopProbe{},
		health:        map[[32]byte]*mixHealth{},
		inbox:         map[MessageID]*reassembly{},
		done:          map[MessageID]time.Time{},
		usedSURBs:     map[[32]byte]time.Time{},
		held:          map[MessageID][]entryRef{},
		conn:          Event{State: Connecting},
	}
	if c.entropy == nil {
		c.entropy = crand.Reader
	}
	var st *loadedState
	if c.store != nil {
		b, err := c.store.Load()
		if err != nil {
			return nil, err
		}
		if b != nil {
			if st, err = decodeState(b); err != nil {
				return nil, err
			}
		}
	}
	fresh := false
	switch {
	case cfg.Identity == nil && st != nil && st.identity != nil:
		cfg.Identity = st.identity
	case cfg.Identity == nil:
		_, key, err := ed25519.GenerateKey(c.entropy)
		if err != nil {
			return nil, fmt.Errorf("client: generating an identity: %w", err)
		}
		cfg.Identity, fresh = key, true
	}
	if cfg.MessageKey == nil && st != nil {
		cfg.MessageKey = st.messageKey
	}
	if cfg.Clock.Period() > 0 {
		clk := cfg.Clock
		c.clk.Store(&clk)
	} else if st != nil && st.clock != nil {
		c.clk.Store(st.clock)
	}
	c.cfg = cfg
	c.pub = cfg.Identity.Public().(ed25519.PublicKey)
	if cfg.Provider != nil {
		p := cfg.Provider
		c.prov.Store(&p)
	}
	c.ownMailbox = clientproto.OwnMailbox(c.pub)
	var err error
	if cfg.MessageKey != nil {
		c.msgKey, err = hpkeKEM.NewPrivateKey(cfg.MessageKey)
	} else {
		c.msgKey, err = deriveMessageKey(cfg.Identity.Seed())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: message key: %w", ErrConfig, err)
	}
	c.msgPub = c.msgKey.PublicKey()
	c.rnd = cfg.Rand
	if c.rnd == nil {
		var seed [32]byte
		if _, err := io.ReadFull(c.entropy, seed[:]); err != nil {
			return nil, fmt.Errorf("client: seeding: %w", err)
		}
		c.rnd = rand.New(rand.NewChaCha8(seed))
	}
	if st != nil {
		if err := c.merge(st); err != nil {
			return nil, err
		}
		// What the Store holds is saved, unless cfg brought something new.
		if (cfg.ProviderAddr == "" || cfg.ProviderAddr == st.providerAddr) && (cfg.Clock.Period() == 0 || st.clock != nil) {
			c.savedGen = c.gen
		}
	}
	if cfg.Messaging != nil {
		m, err := cfg.Messaging(c.kv)
		if err != nil {
			return nil, fmt.Errorf("client: messaging layer: %w", err)
		}
		c.msg = m
	}
	if (fresh || c.gen > c.savedGen || c.kv.dirty.Load()) && c.store != nil {
		c.mu.Lock()
		c.changed()
		c.mu.Unlock()
		if err := c.persist(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// MessageKey returns the client's HPKE public key (what forward contacts
// carry).
func (c *Client) MessageKey() []byte { return c.msgPub.Bytes() }

// Identity returns the client's Ed25519 identity key (from Config, the
// Store, or made by New).
func (c *Client) Identity() ed25519.PrivateKey { return c.cfg.Identity }

// Run connects (see Connect), then sends the cover streams, polls the
// mailboxes and keeps documents current until ctx ends, riding out
// outages of the provider (see Connection). It returns nil when ctx ends,
// ErrWrongClock or ErrNoClock if the network's clock does not fit, and an
// error if the client already ran. Run may be called once. Before it
// returns it saves the state.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("client: Run called twice")
	}
	defer close(c.runDone)
	defer func() {
		if err := c.persist(); err != nil {
			c.log.Warn("saving the state at exit", "err", err)
		}
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bo := backoff{min: connectBackoffMin, max: connectBackoffMax}
	for {
		err := c.connect(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrWrongClock) || errors.Is(err, ErrNoClock) {
			return err
		}
		d := bo.next()
		c.log.Warn("waiting for the provider", "attempt", bo.failures(), "retry_in", d.Round(time.Millisecond), "err", err)
		if !sleep(ctx, d) {
			return nil
		}
	}
	c.mu.Lock()
	c.started = true
	c.linkErr = nil
	evs := c.updateConn(time.Now())
	c.mu.Unlock()
	c.emit(evs)
	var wg sync.WaitGroup
	wg.Go(func() { c.docLoop(ctx, cancel) })
	if s, ok := c.link().(Subscriber); ok {
		c.pushing.Store(true)
		wg.Go(func() { c.downstreamLoop(ctx, s) })
	}
	wg.Go(func() { c.fetchLoop(ctx) })
	c.sendLoop(ctx)
	wg.Wait()
	c.payWG.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// Close ends the client's link to its provider (Config.Provider, or the
// one Dial made). Stop Run first. The Store is the caller's to close.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if p := c.prov.Load(); p != nil {
			err = (*p).Close()
		}
	})
	return err
}

func randID16(r io.Reader) ([16]byte, error) {
	var b [16]byte
	_, err := io.ReadFull(r, b[:])
	return b, err
}
