package client

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// stateVersion is the version of the state encoding; LoadState also
// reads version 1 (no identity, clock or outgoing messages).
const stateVersion = 2

// The state encoding is JSON (a local file, read by the same program that
// wrote it; binary fields are base64). It holds secrets: the identity, SURB
// keys, the capabilities of SURB mailboxes, per-contact HPKE keys. Store it
// owner-only (FileStore does).
type stateFile struct {
	Version  int    `json:"version"`
	Identity []byte `json:"identity,omitempty"` // Ed25519 seed
	// MessageKey is set only when Config.MessageKey was (else it derives
	// from the identity).
	MessageKey   []byte        `json:"message_key,omitempty"`
	ProviderAddr string        `json:"provider_addr,omitempty"`
	Genesis      time.Time     `json:"genesis,omitzero"`
	Period       time.Duration `json:"epoch_period,omitempty"`
	Grace        time.Duration `json:"epoch_grace,omitempty"`
	Network      string        `json:"network,omitempty"`
	// Geometry is the network's packet geometry (the user forward payload
	// and the hops), so that Send can cut messages before the first
	// document after a restart.
	Geometry  *stateGeometry `json:"geometry,omitempty"`
	SURBs     []stateSURB    `json:"contact_surbs,omitempty"`
	Mailboxes []stateMailbox `json:"surb_mailboxes,omitempty"`
	Pending   []statePending `json:"pending,omitempty"`
	Unread    []stateUnread  `json:"unread,omitempty"`
	Done      []stateExpiry  `json:"done,omitempty"`
	UsedSURBs []stateExpiry  `json:"used_surbs,omitempty"`
	Outgoing  []stateOut     `json:"outgoing,omitempty"`
	// Messaging is the messaging layer's state (MessagingKV): ratchet
	// sessions, prekeys, identity.
	Messaging []stateKV `json:"messaging,omitempty"`
	// Wallet is Config.Wallet's state (what it bought and not spent).
	Wallet []byte `json:"wallet,omitempty"`
}

type stateGeometry struct {
	PayloadLen int `json:"payload_len"`
	Hops       int `json:"hops"`
}

type stateSURB struct {
	ID         []byte    `json:"id"`
	Keys       []byte    `json:"keys"`
	MsgKey     []byte    `json:"msg_key"`
	Expires    time.Time `json:"expires"`
	PayloadLen int       `json:"payload_len"`
	Hops       int       `json:"hops"`
	For        string    `json:"for,omitempty"`
}

type stateMailbox struct {
	Capability []byte    `json:"capability"`
	Expires    time.Time `json:"expires"`
	For        string    `json:"for,omitempty"`
}

// stateUnread is a complete message the application has not taken yet.
type stateUnread struct {
	ID       []byte    `json:"id"`
	Body     []byte    `json:"body"`
	Received time.Time `json:"received"`
	ViaSURB  bool      `json:"via_surb,omitempty"`
	Contact  string    `json:"contact,omitempty"`
	Sender   []byte    `json:"sender,omitempty"`
}

type statePending struct {
	ID        []byte      `json:"id"`
	Count     int         `json:"count"`
	First     time.Time   `json:"first"`
	ViaSURB   bool        `json:"via_surb,omitempty"`
	Contact   string      `json:"contact,omitempty"`
	Sealed    bool        `json:"sealed,omitempty"`
	Fragments []stateFrag `json:"fragments"`
}

type stateFrag struct {
	Index int    `json:"index"`
	Data  []byte `json:"data"`
}

type stateExpiry struct {
	ID      []byte    `json:"id"`
	Expires time.Time `json:"expires"`
}

// stateOut is an outgoing message not yet in a final state.
type stateOut struct {
	ID        []byte         `json:"id"`
	To        string         `json:"to"` // the contact string
	Queued    time.Time      `json:"queued"`
	Sealed    bool           `json:"sealed,omitempty"`
	Fragments []stateOutFrag `json:"fragments"`
}

type stateOutFrag struct {
	Data  []byte `json:"data,omitempty"`
	Acked bool   `json:"acked,omitempty"`
	Tries int    `json:"tries,omitempty"`
	// SURB is the contact SURB reserved for the fragment's next try
	// (anonymous contacts), by its index in the contact.
	SURB *int `json:"surb,omitempty"`
}

// Bounds on what a state may hold.
const (
	maxOutgoing = 1 << 16
	maxUnread   = 1 << 16
)

// MarshalState exports the client's state, what a Store holds: its
// identity and the epoch clock it learned, the keys of the SURBs in its
// receiver-anonymous contacts, its SURB mailboxes, partly reassembled
// messages, complete messages the application has not taken (Done), the
// IDs of recently delivered messages (so that a late duplicate is not
// delivered twice), the contact SURBs it has spent, and every outgoing
// message not yet in a final state, which a client loaded with it sends
// again (fragments not acknowledged go once more; the recipient drops
// duplicates).
func (c *Client) MarshalState() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.encodeState()
}

// encodeState encodes the state (under c.mu).
func (c *Client) encodeState() ([]byte, error) {
	st := stateFile{Version: stateVersion, Network: c.network, ProviderAddr: c.providerAddr,
		Identity: c.cfg.Identity.Seed(), MessageKey: c.cfg.MessageKey}
	if clk, ok := c.clock(); ok {
		st.Genesis, st.Period, st.Grace = clk.Genesis(), clk.Period(), clk.Grace()
	}
	if c.geo != nil {
		st.Geometry = &stateGeometry{PayloadLen: c.geo.UserForwardPayloadLength, Hops: c.geo.NrHops}
	}
	if c.cfg.Wallet != nil {
		w, err := c.cfg.Wallet.MarshalState()
		if err != nil {
			return nil, fmt.Errorf("client: exporting the wallet: %w", err)
		}
		st.Wallet = w
	}
	for _, m := range c.unread {
		st.Unread = append(st.Unread, stateUnread{ID: m.ID[:], Body: m.Body, Received: m.Received, ViaSURB: m.ViaSURB, Contact: m.Contact, Sender: m.Sender})
	}
	for id, e := range c.surbs {
		if e.kind != surbContact {
			continue
		}
		k, err := e.msgKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("client: exporting a contact key: %w", err)
		}
		st.SURBs = append(st.SURBs, stateSURB{ID: id[:], Keys: e.keys, MsgKey: k, Expires: e.expires,
			PayloadLen: e.payloadLen, Hops: e.hops, For: e.label})
	}
	for cp, mb := range c.surbMailboxes {
		st.Mailboxes = append(st.Mailboxes, stateMailbox{Capability: cp[:], Expires: mb.expires, For: mb.label})
	}
	for id, r := range c.inbox {
		p := statePending{ID: id[:], Count: r.count, First: r.first, ViaSURB: r.viaSURB, Contact: r.contact, Sealed: r.sealed}
		for i, d := range r.frags {
			p.Fragments = append(p.Fragments, stateFrag{Index: i, Data: d})
		}
		st.Pending = append(st.Pending, p)
	}
	for id, exp := range c.done {
		st.Done = append(st.Done, stateExpiry{ID: id[:], Expires: exp})
	}
	for fp, exp := range c.usedSURBs {
		st.UsedSURBs = append(st.UsedSURBs, stateExpiry{ID: fp[:], Expires: exp})
	}
	for id, m := range c.out {
		if m.final() {
			continue
		}
		to, err := m.to.MarshalText()
		if err != nil {
			return nil, err
		}
		o := stateOut{ID: id[:], To: string(to), Queued: m.queued, Sealed: m.sealed}
		for _, f := range m.frags {
			of := stateOutFrag{Acked: f.acked, Tries: f.tries}
			if !f.acked {
				of.Data = f.data
			}
			if f.surb != nil {
				if i := slices.IndexFunc(m.to.SURBs, func(s ContactSURB) bool { return bytes.Equal(s.SURB, f.surb.SURB) }); i >= 0 {
					of.SURB = &i
				}
			}
			o.Fragments = append(o.Fragments, of)
		}
		st.Outgoing = append(st.Outgoing, o)
	}
	st.Messaging = c.kv.export()
	return json.Marshal(&st)
}

// loadedState is a decoded and checked state, ready to merge.
type loadedState struct {
	identity     ed25519.PrivateKey
	messageKey   []byte
	providerAddr string
	clock        *epoch.Clock
	geo          *sphinx.Geometry
	network      string
	surbs        map[[sphinx.SURBIDLength]byte]*surbEntry
	mailboxes    map[[16]byte]*surbMailbox
	inbox        map[MessageID]*reassembly
	unread       []Message
	done         map[MessageID]time.Time
	used         map[[32]byte]time.Time
	out          []*outgoing
	kv           []stateKV
	wallet       []byte
}

// LoadState merges state exported by MarshalState into the client. Call it
// before Run. Everything is checked before anything is merged; bad input
// gives an error wrapping ErrState and changes nothing. A state of another
// identity than the client's is refused.
func (c *Client) LoadState(b []byte) error {
	st, err := decodeState(b)
	if err != nil {
		return err
	}
	if err := c.merge(st); err != nil {
		return err
	}
	if len(st.kv) > 0 && c.cfg.Messaging != nil {
		// The messaging layer New built read the state before this one
		// was merged: build it again on the merged state.
		m, err := c.cfg.Messaging(c.kv)
		if err != nil {
			return fmt.Errorf("client: messaging layer: %w", err)
		}
		c.mu.Lock()
		c.msg = m
		c.mu.Unlock()
	}
	return nil
}

func decodeState(b []byte) (*loadedState, error) {
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	if st.Version != stateVersion && st.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrState, st.Version, stateVersion)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrState}, args...)...)
	}
	l := &loadedState{network: st.Network, providerAddr: st.ProviderAddr, wallet: st.Wallet}
	if st.Identity != nil {
		if len(st.Identity) != ed25519.SeedSize {
			return nil, bad("identity of %d bytes", len(st.Identity))
		}
		l.identity = ed25519.NewKeyFromSeed(st.Identity)
	}
	if st.MessageKey != nil {
		if len(st.MessageKey) != 32 {
			return nil, bad("message key of %d bytes", len(st.MessageKey))
		}
		l.messageKey = st.MessageKey
	}
	if st.Period != 0 || !st.Genesis.IsZero() {
		clk, err := epoch.New(st.Genesis, st.Period, st.Grace)
		if err != nil {
			return nil, bad("epoch clock: %v", err)
		}
		l.clock = &clk
	}
	if g := st.Geometry; g != nil {
		geo, err := sphinx.NewGeometry(g.PayloadLen, g.Hops, true)
		if err != nil || geo.UserForwardPayloadLength < minBody {
			return nil, bad("geometry: %v", err)
		}
		l.geo = geo
	}
	if len(st.Network) > maxNetworkLen {
		return nil, bad("network name of %d bytes", len(st.Network))
	}
	l.surbs = map[[sphinx.SURBIDLength]byte]*surbEntry{}
	for _, s := range st.SURBs {
		if len(s.ID) != sphinx.SURBIDLength {
			return nil, bad("SURB ID of %d bytes", len(s.ID))
		}
		g, err := sphinx.NewGeometry(s.PayloadLen, s.Hops, true)
		if err != nil {
			return nil, bad("SURB geometry: %v", err)
		}
		if len(s.Keys) == 0 || len(s.Keys)%sphinx.SURBKeysEntryLength != 0 || len(s.Keys) > sphinx.SURBKeysEntryLength*(g.NrHops+1) {
			return nil, bad("SURB keys of %d bytes", len(s.Keys))
		}
		k, err := hpkeKEM.NewPrivateKey(s.MsgKey)
		if err != nil {
			return nil, bad("contact key: %v", err)
		}
		l.surbs[[sphinx.SURBIDLength]byte(s.ID)] = &surbEntry{kind: surbContact, keys: s.Keys, msgKey: k,
			expires: s.Expires, payloadLen: s.PayloadLen, hops: s.Hops, label: s.For}
	}
	l.mailboxes = map[[16]byte]*surbMailbox{}
	for _, m := range st.Mailboxes {
		if len(m.Capability) != 16 {
			return nil, bad("capability of %d bytes", len(m.Capability))
		}
		l.mailboxes[[16]byte(m.Capability)] = &surbMailbox{expires: m.Expires, label: m.For}
	}
	if len(st.Pending) > maxPendingMessages {
		return nil, bad("%d pending messages", len(st.Pending))
	}
	l.inbox = map[MessageID]*reassembly{}
	total := 0
	for _, p := range st.Pending {
		if len(p.ID) != 16 || p.Count < 1 || p.Count > MaxFragments || len(p.Fragments) >= p.Count {
			return nil, bad("pending message of %d fragments, %d held", p.Count, len(p.Fragments))
		}
		r := &reassembly{count: p.Count, frags: map[int][]byte{}, first: p.First, viaSURB: p.ViaSURB, contact: p.Contact, sealed: p.Sealed}
		for _, f := range p.Fragments {
			if f.Index < 0 || f.Index >= p.Count || len(f.Data) > 1<<16 {
				return nil, bad("fragment %d of %d", f.Index, p.Count)
			}
			if _, dup := r.frags[f.Index]; dup {
				return nil, bad("fragment %d twice", f.Index)
			}
			r.frags[f.Index] = f.Data
			total += len(f.Data)
		}
		l.inbox[MessageID(p.ID)] = r
	}
	if total > maxPendingBytes {
		return nil, bad("%d pending bytes", total)
	}
	if len(st.Unread) > maxUnread {
		return nil, bad("%d unread messages", len(st.Unread))
	}
	for _, u := range st.Unread {
		if len(u.ID) != 16 {
			return nil, bad("unread message ID of %d bytes", len(u.ID))
		}
		if slices.ContainsFunc(l.unread, func(m Message) bool { return m.ID == MessageID(u.ID) }) {
			return nil, bad("unread message %x twice", u.ID)
		}
		l.unread = append(l.unread, Message{ID: MessageID(u.ID), Body: u.Body, Received: u.Received, ViaSURB: u.ViaSURB, Contact: u.Contact, Sender: u.Sender})
	}
	l.done = map[MessageID]time.Time{}
	for _, d := range st.Done {
		if len(d.ID) != 16 {
			return nil, bad("message ID of %d bytes", len(d.ID))
		}
		l.done[MessageID(d.ID)] = d.Expires
	}
	if len(l.done) > maxDone {
		return nil, bad("%d delivered IDs", len(l.done))
	}
	l.used = map[[32]byte]time.Time{}
	for _, u := range st.UsedSURBs {
		if len(u.ID) != 32 {
			return nil, bad("SURB fingerprint of %d bytes", len(u.ID))
		}
		l.used[[32]byte(u.ID)] = u.Expires
	}
	if len(st.Outgoing) > maxOutgoing {
		return nil, bad("%d outgoing messages", len(st.Outgoing))
	}
	for _, o := range st.Outgoing {
		if len(o.ID) != 16 || len(o.Fragments) == 0 || len(o.Fragments) > MaxFragments {
			return nil, bad("outgoing message of %d fragments", len(o.Fragments))
		}
		to, err := ParseContact(o.To)
		if err != nil {
			return nil, bad("outgoing message's contact: %v", err)
		}
		key, err := hpkeKEM.NewPublicKey(to.Key)
		if err != nil {
			return nil, bad("outgoing message's contact key: %v", err)
		}
		m := &outgoing{id: MessageID(o.ID), to: to, key: key, queued: o.Queued, state: StateQueued, sealed: o.Sealed}
		for i, of := range o.Fragments {
			if of.Tries < 0 || len(of.Data) > 1<<16 || (of.SURB != nil && (*of.SURB < 0 || *of.SURB >= len(to.SURBs))) {
				return nil, bad("outgoing fragment %d", i)
			}
			f := &outFragment{msg: m, index: i, data: of.Data, acked: of.Acked, tries: of.Tries}
			if of.SURB != nil {
				f.surb = &to.SURBs[*of.SURB]
			}
			if f.acked {
				m.acked++
			}
			if f.tries > 0 {
				m.sent++
			}
			m.frags = append(m.frags, f)
		}
		if m.acked == len(m.frags) {
			continue
		}
		l.out = append(l.out, m)
	}
	for _, e := range st.Messaging {
		if e.NS == "" || len(e.NS) > 64 || len(e.Key) == 0 || len(e.Key) > 1024 {
			return nil, bad("messaging state entry (namespace of %d bytes, key of %d)", len(e.NS), len(e.Key))
		}
	}
	l.kv = st.Messaging
	return l, nil
}

// merge adds a loaded state to the client's.
func (c *Client) merge(l *loadedState) error {
	if l.identity != nil && c.cfg.Identity != nil && !l.identity.Equal(c.cfg.Identity) {
		return fmt.Errorf("%w: the state belongs to another identity (%x), the client is %x", ErrState,
			l.identity.Public().(ed25519.PublicKey)[:8], c.pub[:8])
	}
	if len(l.wallet) > 0 && c.cfg.Wallet != nil {
		if err := c.cfg.Wallet.LoadState(l.wallet); err != nil {
			return fmt.Errorf("%w: %w", ErrState, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.network != "" && c.network != "" && l.network != c.network {
		return fmt.Errorf("%w: state of network %q, client on %q", ErrState, l.network, c.network)
	}
	if c.network == "" {
		c.network = l.network
	}
	if c.providerAddr == "" {
		c.providerAddr = l.providerAddr
	}
	if l.clock != nil && c.clk.Load() == nil {
		c.clk.Store(l.clock)
	}
	if l.geo != nil && c.geo == nil {
		c.geo = l.geo
		c.geoOnce.Do(func() { close(c.geoKnown) })
	}
	for id, e := range l.surbs {
		c.surbs[id] = e
	}
	for cp, mb := range l.mailboxes {
		c.surbMailboxes[cp] = mb
		delete(c.after, clientproto.MailboxRef{SURB: true, Capability: cp})
	}
	for id, r := range l.inbox {
		if old, ok := c.inbox[id]; ok {
			c.inboxBytes -= old.size()
		}
		c.inbox[id] = r
		c.inboxBytes += r.size()
	}
	for id, exp := range l.done {
		c.done[id] = exp
	}
	for fp, exp := range l.used {
		c.usedSURBs[fp] = exp
	}
	c.kv.mu.Lock()
	for _, e := range l.kv {
		space := c.kv.m[e.NS]
		if space == nil {
			space = map[string][]byte{}
			c.kv.m[e.NS] = space
		}
		space[string(e.Key)] = e.Value
	}
	c.kv.mu.Unlock()
	for _, m := range l.unread {
		if !c.isUnread(m.ID) {
			c.deliver(&m)
		}
	}
	for _, m := range l.out {
		if _, ok := c.out[m.id]; ok {
			continue
		}
		if m.sent == len(m.frags) {
			m.state = StateSent
		}
		c.out[m.id] = m
		for _, f := range m.frags {
			if !f.acked {
				f.inQueue = true
				c.queue = append(c.queue, f)
				c.queued++
			}
		}
		c.stats.MessagesQueued++
	}
	c.changed()
	return nil
}

// StoredProviderAddr returns the provider address (Config.ProviderAddr) a
// client kept in s, or "" if s holds none: a restarted program finds its
// provider from its state alone.
func StoredProviderAddr(s Store) (string, error) {
	b, err := s.Load()
	if err != nil || b == nil {
		return "", err
	}
	var st struct {
		ProviderAddr string `json:"provider_addr"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("%w: %w", ErrState, err)
	}
	return st.ProviderAddr, nil
}
