package client

import (
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
	"time"
)

// MessageState is where an outgoing message is.
type MessageState uint8

const (
	// StateQueued: some fragment has not been sent yet. The message is in
	// the client's state (Config.Store): a restarted client sends it.
	StateQueued MessageState = iota + 1
	// StateSent: every fragment went out at least once; the client waits
	// for their acknowledgements.
	StateSent
	// StateAcked: final for a forward contact: the recipient's provider
	// acknowledged storing every fragment in the recipient's mailbox,
	// where it waits until the recipient's client fetches it (the
	// recipient may be offline).
	StateAcked
	// StateDelivered: final for an anonymous contact: the recipient's
	// client acknowledged every fragment end to end (through a SURB the
	// sender put in each fragment), after storing it.
	StateDelivered
	// StateFailed: final: a fragment went unacknowledged MaxTries times
	// (for an anonymous contact: on two of its SURBs), or could not be
	// sent at all; Err says why.
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
	case StateDelivered:
		return "delivered"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether s is a final state (Acked, Delivered or Failed).
func (s MessageState) Final() bool {
	return s == StateAcked || s == StateDelivered || s == StateFailed
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

// Errors of outgoing messages (MessageStatus.Err).
var (
	// ErrNotDelivered: no end-to-end acknowledgement came back for a
	// fragment sent through an anonymous contact, on either of the two
	// SURBs tried: the recipient is offline (it may still read the
	// message later), another sender used the same SURBs (a contact is
	// for one sender: ask for your own), or the path lost it.
	ErrNotDelivered = errors.New("client: no end-to-end acknowledgement from the recipient")
	// ErrSURBRefused: the sender's provider refused a packet made from a
	// contact's SURB as malformed or not routable now.
	ErrSURBRefused = errors.New("client: the provider refused a packet made from the contact's SURB")
)

// maxSURBTries bounds the SURBs one fragment to an anonymous contact may
// use: each try spends one of the contact's SURBs, and an offline
// recipient would otherwise cost a sender all of them.
const maxSURBTries = 2

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
	// sealed: the fragments carry a ciphertext of the messaging layer;
	// held: they wait, out of the queue, for the state that holds the
	// ratchet step that sealed it to be saved (Send), so that no packet
	// leaves under a message key a crash could hand out again.
	sealed bool
	held   bool
}

func (m *outgoing) final() bool { return m.state.Final() }

func (m *outgoing) kind() byte {
	if m.sealed {
		return kindSealed
	}
	return kindFragment
}

func (m *outgoing) status() MessageStatus {
	return MessageStatus{ID: m.id, State: m.state, Fragments: len(m.frags), FragmentsAcked: m.acked,
		Packets: m.packets, Queued: m.queued, Finished: m.finished, Err: m.err}
}

type outFragment struct {
	msg      *outgoing
	index    int
	data     []byte
	surb     *ContactSURB // anonymous contacts: the SURB reserved for the next try
	tries    int
	inQueue  bool
	inFlight bool
	acked    bool
	deadline time.Time
	timeout  time.Duration // ACK timeout of the latest attempt
	mixes    [][32]byte    // forward and ACK mixes of the latest attempt
	pending  *slotPacket   // built, but refused by the provider: send these bytes again
}

// Send stores body for to and returns its message ID. With a Store the
// message is durable when Send returns: a client restarted from the Store
// sends it. It leaves in payload slots, one fragment per slot, while the
// client is connected; its progress shows in Status and, at its end, in
// Config.OnStatus. Send does not wait for the provider (a message sent
// during an outage leaves when it is back), only, the very first time a
// client runs, for its first PKI document, which fixes the fragment size
// (the Store keeps it). A contact whose provider is not in the document
// held makes it fetch the current document once more before it gives up
// (ErrUnknownProvider).
func (c *Client) Send(ctx context.Context, to *Contact, body []byte) (MessageID, error) {
	select {
	case <-c.geoKnown:
	case <-c.runDone:
		select {
		case <-c.geoKnown:
		default:
			return MessageID{}, fmt.Errorf("%w: %w", ErrNotReady, ErrClosed)
		}
	case <-ctx.Done():
		return MessageID{}, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
	if err := to.validate(); err != nil {
		return MessageID{}, err
	}
	if err := c.payBlocked(); err != nil {
		return MessageID{}, err
	}
	sealed := false
	if ct, err := c.sealE2E(ctx, to, body); err != nil {
		return MessageID{}, err
	} else if ct != nil {
		body, sealed = ct, true
	}
	id, err := c.send(to, body, sealed)
	if errors.Is(err, ErrUnknownProvider) {
		fctx, cancel := context.WithTimeout(ctx, callTimeout)
		if _, ferr := c.fetchDocument(fctx, c.clk0().At(time.Now())); ferr == nil {
			id, err = c.send(to, body, sealed)
		}
		cancel()
	}
	if err != nil {
		return id, err
	}
	if err := c.persist(); err != nil {
		c.mu.Lock()
		c.forget(id)
		c.mu.Unlock()
		return MessageID{}, fmt.Errorf("client: message not sent, the state could not be saved: %w", err)
	}
	c.unhold(id)
	return id, nil
}

// unhold queues the fragments of a sealed message once its state is saved.
func (c *Client) unhold(id MessageID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.out[id]
	if !ok || !m.held {
		return
	}
	m.held = false
	for _, f := range m.frags {
		if f.inQueue {
			c.queue = append(c.queue, f)
		}
	}
}

func (c *Client) send(to *Contact, body []byte, sealed bool) (MessageID, error) {
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
	v, geo := c.latestView(), c.geo
	if geo == nil {
		return id, ErrNotReady
	}
	if to.Network != c.network {
		return id, fmt.Errorf("%w: contact is for network %q, this client is on %q", ErrContact, to.Network, c.network)
	}
	capacity := fragCapacity(geo.UserForwardPayloadLength)
	n := max(1, (len(body)+capacity-1)/capacity)
	if n > MaxFragments {
		return id, fmt.Errorf("%w: %d bytes need %d fragments of %d, at most %d", ErrMessageTooLong, len(body), n, capacity, MaxFragments)
	}
	if c.queued+n > c.cfg.MaxQueued {
		return id, fmt.Errorf("%w: %d fragments waiting", ErrQueueFull, c.queued)
	}
	var surbs []*ContactSURB
	if to.Anonymous() {
		for _, s := range to.SURBs {
			if len(s.SURB) != geo.SURBLength {
				return id, fmt.Errorf("%w: SURB of %d bytes, the network's are %d", ErrContact, len(s.SURB), geo.SURBLength)
			}
		}
		if surbs, err = c.takeSURBs(to, n, now); err != nil {
			return id, err
		}
	} else if v == nil {
		// No document since a restart (the provider is down): the
		// contact's provider is checked when the fragments are built.
	} else if _, ok := v.provider(to.Provider); !ok {
		// The contact's provider must be in the document the client
		// routes with now, if it has one.
		if rv, _, err := c.routeView(now); err != nil || rv == v {
			return id, notInDocument(v, c.clk0().At(now), fmt.Sprintf("the contact's provider %x", to.Provider[:8]))
		}
	}
	if _, err := io.ReadFull(c.entropy, id[:]); err != nil {
		return id, fmt.Errorf("client: message ID: %w", err)
	}
	m := &outgoing{id: id, to: to.clone(), key: key, queued: now, state: StateQueued, sealed: sealed}
	m.held = sealed && c.store != nil
	for i := range n {
		f := &outFragment{msg: m, index: i, data: body[i*capacity : min(len(body), (i+1)*capacity)], inQueue: true}
		f.data = append([]byte(nil), f.data...)
		if surbs != nil {
			f.surb = surbs[i]
		}
		m.frags = append(m.frags, f)
		if !m.held {
			c.queue = append(c.queue, f)
		}
	}
	c.queued += n
	c.out[id] = m
	c.stats.MessagesQueued++
	c.changed()
	return id, nil
}

// forget drops a message Send could not make durable (under c.mu).
func (c *Client) forget(id MessageID) {
	m, ok := c.out[id]
	if !ok {
		return
	}
	for _, f := range m.frags {
		if f.inQueue {
			f.inQueue = false
			c.queued--
		}
	}
	delete(c.out, id)
	c.stats.MessagesQueued--
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

// Pending returns the outgoing messages not yet in a final state (those a
// restarted client resumed among them).
func (c *Client) Pending() []MessageStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MessageStatus
	for _, m := range c.out {
		if !m.final() {
			out = append(out, m.status())
		}
	}
	return out
}

func (c *Client) report(st []MessageStatus) { notify(c.cfg.OnStatus, st) }
