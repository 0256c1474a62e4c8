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
// retransmits and reassembles messages. Build it with New, start it with
// Run; its methods are safe for concurrent use.
type Client struct {
	cfg        Config
	log        *slog.Logger
	pub        ed25519.PublicKey
	ownMailbox clientproto.MailboxID
	msgKey     hpke.PrivateKey
	msgPub     hpke.PublicKey
	entropy    io.Reader
	messages   chan Message
	ready      chan struct{}
	running    atomic.Bool

	mu            sync.Mutex
	rnd           *rand.Rand
	network       string
	docs          map[uint64]*view
	queue         []*outFragment
	queued        int // fragments in queue that still need sending
	out           map[MessageID]*outgoing
	surbs         map[[sphinx.SURBIDLength]byte]*surbEntry
	surbMailboxes map[[16]byte]time.Time // capability → when its last message expires
	after         map[clientproto.MailboxRef]uint64
	loops         map[[16]byte]*loopProbe
	health        map[[32]byte]*mixHealth
	// unread are complete messages not handed to the application yet
	// (see MarshalState); Run hands them over first.
	unread     []Message
	exited     atomic.Bool // Run has returned and closed messages
	inbox      map[MessageID]*reassembly
	inboxBytes int
	done       map[MessageID]time.Time
	usedSURBs  map[[32]byte]time.Time // fingerprints of contact SURBs this client spent
	stats      Stats
}

// New checks cfg and builds a client. It does no I/O: Run starts it.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "client"),
		pub:           cfg.Identity.Public().(ed25519.PublicKey),
		entropy:       cfg.Entropy,
		network:       cfg.Network,
		messages:      make(chan Message, cfg.MessageBuffer),
		ready:         make(chan struct{}),
		docs:          map[uint64]*view{},
		out:           map[MessageID]*outgoing{},
		surbs:         map[[sphinx.SURBIDLength]byte]*surbEntry{},
		surbMailboxes: map[[16]byte]time.Time{},
		after:         map[clientproto.MailboxRef]uint64{},
		loops:         map[[16]byte]*loopProbe{},
		health:        map[[32]byte]*mixHealth{},
		inbox:         map[MessageID]*reassembly{},
		done:          map[MessageID]time.Time{},
		usedSURBs:     map[[32]byte]time.Time{},
	}
	if c.entropy == nil {
		c.entropy = crand.Reader
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
	return c, nil
}

// MessageKey returns the client's HPKE public key (what contacts carry).
func (c *Client) MessageKey() []byte { return c.msgPub.Bytes() }

// Messages delivers complete incoming messages, each exactly once. It is
// closed when Run returns. A reader that falls behind holds up fetching
// (messages wait in the provider's mailbox meanwhile).
func (c *Client) Messages() <-chan Message { return c.messages }

// Ready is closed once the client holds a usable PKI document.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Run fetches the PKI document, then sends the cover streams, polls the
// mailboxes and keeps documents current until ctx ends. It returns ctx's
// error, or an error if the client already ran. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("client: Run called twice")
	}
	defer func() {
		close(c.messages)
		c.exited.Store(true)
	}()
	if !c.handOverUnread(ctx) {
		return ctx.Err()
	}
	retry := min(c.cfg.Clock.Period()/16, 5*time.Second)
	for {
		e := c.cfg.Clock.Now()
		_, err := c.fetchDocument(ctx, e)
		if err != nil && e > 0 {
			_, err = c.fetchDocument(ctx, e-1)
		}
		if err == nil {
			break
		}
		c.log.Warn("waiting for a PKI document", "epoch", e, "err", err)
		if !sleep(ctx, retry) {
			return ctx.Err()
		}
	}
	close(c.ready)
	var wg sync.WaitGroup
	wg.Go(func() { c.docLoop(ctx) })
	wg.Go(func() { c.fetchLoop(ctx) })
	c.sendLoop(ctx)
	wg.Wait()
	return ctx.Err()
}

// handOverUnread gives the application the messages a previous run
// completed but could not hand over. It reports false if ctx ended first
// (what is left stays unread).
func (c *Client) handOverUnread(ctx context.Context) bool {
	c.mu.Lock()
	unread := c.unread
	c.unread = nil
	c.mu.Unlock()
	for i, m := range unread {
		select {
		case c.messages <- m:
		case <-ctx.Done():
			c.mu.Lock()
			c.unread = append(unread[i:], c.unread...)
			c.mu.Unlock()
			return false
		}
	}
	return true
}

func randID16(r io.Reader) ([16]byte, error) {
	var b [16]byte
	_, err := io.ReadFull(r, b[:])
	return b, err
}
