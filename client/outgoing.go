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
	} else if _, ok := v.provider(to.Provider); !ok {
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

func (c *Client) report(st []MessageStatus) {
	if c.cfg.OnStatus == nil {
		return
	}
	for _, s := range st {
		c.cfg.OnStatus(s)
	}
}
