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
	"github.com/sottonet/sotto/core/cover"
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
	maxFetchRounds     = 64 // fetches of one mailbox per tick
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

// MessageState is where an outgoing message is.
type MessageState uint8

const (
	// StateQueued: some fragment has not been sent yet.
	StateQueued MessageState = iota + 1
	// StateSent: every fragment went out at least once. Final for a
	// receiver-anonymous contact, which cannot acknowledge.
	StateSent
	// StateAcked: the recipient's provider acknowledged every fragment.
	StateAcked
	// StateFailed: a fragment went unacknowledged MaxTries times, or could
	// not be sent at all; Err says why.
	StateFailed
)

func (s MessageState) String() string {
	switch s {
	case StateQueued:
		return "queued"
	case StateSent:
		return "sent"
	case StateAcked:
		return "acked"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MessageStatus reports an outgoing message.
type MessageStatus struct {
	ID             MessageID
	State          MessageState
	Fragments      int
	FragmentsAcked int
	Packets        int // packets sent for it, retransmissions included
	Queued         time.Time
	Finished       time.Time // zero until a final state
	Err            error
}

type outgoing struct {
	id       MessageID
	to       *Contact
	key      hpke.PublicKey
	frags    []*outFragment
	queued   time.Time
	finished time.Time
	state    MessageState
	sent     int // fragments sent at least once
	acked    int
	packets  int
	err      error
}

func (m *outgoing) final() bool {
	return m.state == StateAcked || m.state == StateFailed || (m.state == StateSent && m.to.Anonymous())
}

func (m *outgoing) status() MessageStatus {
	return MessageStatus{ID: m.id, State: m.state, Fragments: len(m.frags), FragmentsAcked: m.acked,
		Packets: m.packets, Queued: m.queued, Finished: m.finished, Err: m.err}
}

type outFragment struct {
	msg      *outgoing
	index    int
	data     []byte
	surb     []byte // receiver-anonymous contacts: the SURB reserved for it
	tries    int
	inQueue  bool
	inFlight bool
	acked    bool
	deadline time.Time
	timeout  time.Duration // ACK timeout of the latest attempt
	mixes    [][32]byte    // forward and ACK mixes of the latest attempt
	pending  *slotPacket   // built, but refused by the provider: send these bytes again
}

type surbKind uint8

const (
	surbACK     surbKind = 1 // ACK of a message fragment
	surbLoopACK surbKind = 2 // ACK of a loop
	surbContact surbKind = 3 // handed out in a receiver-anonymous contact
)

type surbEntry struct {
	kind    surbKind
	keys    []byte
	expires time.Time
	frag    *outFragment // surbACK
	mixes   [][32]byte   // surbACK: the attempt's mixes
	loop    [16]byte     // surbLoopACK
	// surbContact: the geometry the reply's payload has, and the contact's
	// own HPKE key.
	payloadLen, hops int
	msgKey           hpke.PrivateKey
}

type loopProbe struct {
	sent                    time.Time
	fwdMixes, ackMixes      [][32]byte
	bodyDeadline, ackDeadln time.Time
	bodyBack, ackBack       bool
	bodyLost, ackLost       bool
}

type mixHealth struct {
	loopsLost        int
	lastLost, lastOK time.Time
	// lostStreak counts losses through the mix since the last success
	// through it: a dead mix's grows without end, while an honest mix that
	// only shared lost loops with it is reset by its own successes.
	lostStreak int
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

// Send queues body for to and returns its message ID. The message leaves in
// payload slots, one fragment per slot; its progress shows in Status and,
// at its end, in Config.OnStatus. Send waits (until ctx ends) for the first
// PKI document, which fixes the fragment size. A contact whose provider is
// not in the document held makes it fetch the current document once more
// before it gives up (ErrUnknownProvider).
func (c *Client) Send(ctx context.Context, to *Contact, body []byte) (MessageID, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return MessageID{}, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
	id, err := c.send(to, body)
	if errors.Is(err, ErrUnknownProvider) {
		if _, ferr := c.fetchDocument(ctx, c.cfg.Clock.At(time.Now())); ferr == nil {
			id, err = c.send(to, body)
		}
	}
	return id, err
}

func (c *Client) send(to *Contact, body []byte) (MessageID, error) {
	var id MessageID
	if err := to.validate(); err != nil {
		return id, err
	}
	key, err := hpkeKEM.NewPublicKey(to.Key)
	if err != nil {
		return id, fmt.Errorf("%w: message key: %w", ErrContact, err)
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	v, _, err := c.routeView(now)
	if err != nil {
		return id, err
	}
	if to.Network != c.network {
		return id, fmt.Errorf("%w: contact is for network %q, this client is on %q", ErrContact, to.Network, c.network)
	}
	capacity := fragCapacity(v.geo.UserForwardPayloadLength)
	n := max(1, (len(body)+capacity-1)/capacity)
	if n > MaxFragments {
		return id, fmt.Errorf("%w: %d bytes need %d fragments of %d, at most %d", ErrMessageTooLong, len(body), n, capacity, MaxFragments)
	}
	if c.queued+n > c.cfg.MaxQueued {
		return id, fmt.Errorf("%w: %d fragments waiting", ErrQueueFull, c.queued)
	}
	var surbs [][]byte
	if to.Anonymous() {
		if !c.cfg.Clock.KeyValid(to.Epoch, now) {
			return id, fmt.Errorf("%w: SURBs for epoch %d, now epoch %d", ErrContactExpired, to.Epoch, c.cfg.Clock.At(now))
		}
		for _, s := range to.SURBs {
			if len(s) != v.geo.SURBLength {
				return id, fmt.Errorf("%w: SURB of %d bytes, the network's are %d", ErrContact, len(s), v.geo.SURBLength)
			}
			if _, used := c.usedSURBs[surbFingerprint(s)]; !used && len(surbs) < n {
				surbs = append(surbs, s)
			}
		}
		if len(surbs) < n {
			return id, fmt.Errorf("%w: %d fragments, %d unused SURBs", ErrNoSURBs, n, len(surbs))
		}
		exp := c.cfg.Clock.End(to.Epoch).Add(c.cfg.Clock.Grace())
		for _, s := range surbs {
			c.usedSURBs[surbFingerprint(s)] = exp
		}
	} else if _, ok := v.byID[to.Provider]; !ok {
		return id, fmt.Errorf("%w: %x", ErrUnknownProvider, to.Provider[:8])
	}
	if _, err := io.ReadFull(c.entropy, id[:]); err != nil {
		return id, fmt.Errorf("client: message ID: %w", err)
	}
	m := &outgoing{id: id, to: to.clone(), key: key, queued: now, state: StateQueued}
	for i := range n {
		f := &outFragment{msg: m, index: i, data: body[i*capacity : min(len(body), (i+1)*capacity)], inQueue: true}
		f.data = append([]byte(nil), f.data...)
		if surbs != nil {
			f.surb = surbs[i]
		}
		m.frags = append(m.frags, f)
		c.queue = append(c.queue, f)
	}
	c.queued += n
	c.out[id] = m
	c.stats.MessagesQueued++
	return id, nil
}

// Status reports an outgoing message; finished messages are forgotten some
// minutes after their final state.
func (c *Client) Status(id MessageID) (MessageStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.out[id]
	if !ok {
		return MessageStatus{}, false
	}
	return m.status(), true
}

// sendLoop sends one packet per slot of the merged Poisson stream. Slots
// are kept on an absolute schedule, so the time building a packet takes
// does not stretch the gaps.
func (c *Client) sendLoop(ctx context.Context) {
	c.mu.Lock()
	r := rand.New(rand.NewPCG(c.rnd.Uint64(), c.rnd.Uint64()))
	c.mu.Unlock()
	var (
		stream *cover.Stream
		rates  cover.Rates
	)
	next := time.Now()
	for {
		c.mu.Lock()
		v, _, err := c.routeView(next)
		c.mu.Unlock()
		if err == nil && (stream == nil || v.rates != rates) {
			rates = v.rates
			stream, err = cover.NewStream(rates, r)
		}
		if stream == nil {
			// Without a document there is nothing to draw from; try again
			// shortly.
			if !sleep(ctx, time.Second) {
				return
			}
			next = time.Now()
			continue
		}
		gap, kind := stream.Next()
		next = next.Add(gap)
		if !sleep(ctx, time.Until(next)) {
			return
		}
		c.slot(ctx, kind)
	}
}

// slot builds and sends the packet of one send slot.
func (c *Client) slot(ctx context.Context, kind cover.Kind) {
	now := time.Now()
	c.mu.Lock()
	sp, finished, err := c.buildSlot(kind, now)
	c.mu.Unlock()
	c.report(finished)
	if err != nil {
		c.mu.Lock()
		c.stats.SkippedSlots++
		c.mu.Unlock()
		c.log.Warn("send slot skipped", "kind", kind, "err", err)
		return
	}
	err = c.cfg.Provider.Send(ctx, sp.hop, sp.pkt)
	if err != nil && ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	switch f := sp.frag; {
	case err == nil && f != nil:
		finished = c.sentFragment(f, time.Now())
	case err != nil:
		c.stats.SendErrors++
		// A fragment the provider refused (busy, or the link is down)
		// goes back to the front of the queue with its packet, to leave
		// in the next payload slot; it does not count as a try.
		if f != nil && !f.acked && !f.msg.final() {
			f.pending = &sp
			c.requeueFront(f)
		}
	}
	c.mu.Unlock()
	c.report(finished)
	if err != nil {
		c.log.Debug("provider refused a packet", "kind", kind, "err", err)
	}
}

func (c *Client) report(st []MessageStatus) {
	if c.cfg.OnStatus == nil {
		return
	}
	for _, s := range st {
		c.cfg.OnStatus(s)
	}
}

// fetchLoop polls every mailbox each FetchInterval, then checks timeouts.
func (c *Client) fetchLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.FetchInterval)
	defer t.Stop()
	for {
		c.fetchAll(ctx)
		c.mu.Lock()
		finished := c.maintain(time.Now())
		c.mu.Unlock()
		c.report(finished)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Client) fetchAll(ctx context.Context) {
	now := time.Now()
	refs := []clientproto.MailboxRef{{}}
	c.mu.Lock()
	for cp, exp := range c.surbMailboxes {
		if now.Before(exp) {
			refs = append(refs, clientproto.MailboxRef{SURB: true, Capability: cp})
		}
	}
	c.mu.Unlock()
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		c.fetchMailbox(ctx, ref)
	}
}

func (c *Client) fetchMailbox(ctx context.Context, ref clientproto.MailboxRef) {
	for range maxFetchRounds {
		c.mu.Lock()
		after := c.after[ref]
		c.mu.Unlock()
		msgs, err := c.cfg.Provider.Fetch(ctx, ref, after, 0)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("fetch failed", "surb", ref.SURB, "err", err)
			}
			return
		}
		if len(msgs) == 0 {
			return
		}
		now := time.Now()
		ids := make([]uint64, 0, len(msgs))
		var complete []Message
		c.mu.Lock()
		var finished []MessageStatus
		for _, m := range msgs {
			ids = append(ids, m.ID)
			after = max(after, m.ID)
			got, fin := c.consume(m.StoredMessage, now)
			if got != nil {
				complete = append(complete, *got)
			}
			finished = append(finished, fin...)
		}
		c.mu.Unlock()
		c.report(finished)
		for i, m := range complete {
			select {
			case c.messages <- m:
			case <-ctx.Done():
				// Already marked delivered: keep the rest for the next
				// Run (MarshalState saves them), never drop them.
				c.mu.Lock()
				c.unread = append(c.unread, complete[i:]...)
				c.mu.Unlock()
				return
			}
		}
		if err := c.cfg.Provider.Ack(ctx, ref, ids); err != nil && ctx.Err() == nil {
			c.log.Debug("ack failed", "surb", ref.SURB, "err", err)
		}
		c.mu.Lock()
		c.after[ref] = after
		c.mu.Unlock()
	}
}

func surbFingerprint(s []byte) [32]byte {
	return sha256Sum(s)
}

func randID16(r io.Reader) ([16]byte, error) {
	var b [16]byte
	_, err := io.ReadFull(r, b[:])
	return b, err
}
