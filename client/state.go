package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
)

// stateVersion is the version of MarshalState's encoding.
const stateVersion = 1

// The state encoding is JSON (a local file, read by the same program that
// wrote it; binary fields are base64). It holds secrets: SURB keys, the
// capabilities of SURB mailboxes, per-contact HPKE keys. Store it owner-only.
type stateFile struct {
	Version   int            `json:"version"`
	Network   string         `json:"network,omitempty"`
	SURBs     []stateSURB    `json:"contact_surbs,omitempty"`
	Mailboxes []stateMailbox `json:"surb_mailboxes,omitempty"`
	Pending   []statePending `json:"pending,omitempty"`
	Unread    []stateUnread  `json:"unread,omitempty"`
	Done      []stateExpiry  `json:"done,omitempty"`
	UsedSURBs []stateExpiry  `json:"used_surbs,omitempty"`
}

type stateSURB struct {
	ID         []byte    `json:"id"`
	Keys       []byte    `json:"keys"`
	MsgKey     []byte    `json:"msg_key"`
	Expires    time.Time `json:"expires"`
	PayloadLen int       `json:"payload_len"`
	Hops       int       `json:"hops"`
}

type stateMailbox struct {
	Capability []byte    `json:"capability"`
	Expires    time.Time `json:"expires"`
}

// stateUnread is a complete message not yet handed to the application.
type stateUnread struct {
	ID       []byte    `json:"id"`
	Body     []byte    `json:"body"`
	Received time.Time `json:"received"`
	ViaSURB  bool      `json:"via_surb,omitempty"`
}

type statePending struct {
	ID        []byte      `json:"id"`
	Count     int         `json:"count"`
	First     time.Time   `json:"first"`
	ViaSURB   bool        `json:"via_surb,omitempty"`
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

// MarshalState exports what a restarted client needs to keep receiving:
// the keys of the SURBs in its receiver-anonymous contacts, its SURB
// mailboxes, partly reassembled messages, the IDs of recently delivered
// messages (so that a late duplicate is not delivered twice) and the
// contact SURBs it has spent, and the complete messages the application has
// not taken yet (still buffered in Messages once Run has returned, or cut
// off by its end): they are handed over first by the next Run. Outgoing
// messages in flight are not kept: a restart forgets them (their ACKs then
// count as UnknownSURBs).
func (c *Client) MarshalState() ([]byte, error) {
	c.takeBuffered()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := stateFile{Version: stateVersion, Network: c.network}
	for _, m := range c.unread {
		st.Unread = append(st.Unread, stateUnread{ID: m.ID[:], Body: m.Body, Received: m.Received, ViaSURB: m.ViaSURB})
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
			PayloadLen: e.payloadLen, Hops: e.hops})
	}
	for cp, exp := range c.surbMailboxes {
		st.Mailboxes = append(st.Mailboxes, stateMailbox{Capability: cp[:], Expires: exp})
	}
	for id, r := range c.inbox {
		p := statePending{ID: id[:], Count: r.count, First: r.first, ViaSURB: r.viaSURB}
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
	return json.Marshal(&st)
}

// LoadState merges state exported by MarshalState into the client. Call it
// before Run. Everything is checked before anything is merged; bad input
// gives an error wrapping ErrState and changes nothing.
func (c *Client) LoadState(b []byte) error {
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrState, st.Version, stateVersion)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrState}, args...)...)
	}
	surbs := map[[sphinx.SURBIDLength]byte]*surbEntry{}
	for _, s := range st.SURBs {
		if len(s.ID) != sphinx.SURBIDLength {
			return bad("SURB ID of %d bytes", len(s.ID))
		}
		g, err := sphinx.NewGeometry(s.PayloadLen, s.Hops, true)
		if err != nil {
			return bad("SURB geometry: %v", err)
		}
		if len(s.Keys) == 0 || len(s.Keys)%sphinx.SURBKeysEntryLength != 0 || len(s.Keys) > sphinx.SURBKeysEntryLength*(g.NrHops+1) {
			return bad("SURB keys of %d bytes", len(s.Keys))
		}
		k, err := hpkeKEM.NewPrivateKey(s.MsgKey)
		if err != nil {
			return bad("contact key: %v", err)
		}
		surbs[[sphinx.SURBIDLength]byte(s.ID)] = &surbEntry{kind: surbContact, keys: s.Keys, msgKey: k,
			expires: s.Expires, payloadLen: s.PayloadLen, hops: s.Hops}
	}
	mailboxes := map[[16]byte]time.Time{}
	for _, m := range st.Mailboxes {
		if len(m.Capability) != 16 {
			return bad("capability of %d bytes", len(m.Capability))
		}
		mailboxes[[16]byte(m.Capability)] = m.Expires
	}
	if len(st.Pending) > maxPendingMessages {
		return bad("%d pending messages", len(st.Pending))
	}
	inbox := map[MessageID]*reassembly{}
	total := 0
	for _, p := range st.Pending {
		if len(p.ID) != 16 || p.Count < 1 || p.Count > MaxFragments || len(p.Fragments) >= p.Count {
			return bad("pending message of %d fragments, %d held", p.Count, len(p.Fragments))
		}
		r := &reassembly{count: p.Count, frags: map[int][]byte{}, first: p.First, viaSURB: p.ViaSURB}
		for _, f := range p.Fragments {
			if f.Index < 0 || f.Index >= p.Count || len(f.Data) > 1<<16 {
				return bad("fragment %d of %d", f.Index, p.Count)
			}
			if _, dup := r.frags[f.Index]; dup {
				return bad("fragment %d twice", f.Index)
			}
			r.frags[f.Index] = f.Data
			total += len(f.Data)
		}
		inbox[MessageID(p.ID)] = r
	}
	if total > maxPendingBytes {
		return bad("%d pending bytes", total)
	}
	if len(st.Unread) > maxPendingMessages {
		return bad("%d unread messages", len(st.Unread))
	}
	var unread []Message
	for _, u := range st.Unread {
		if len(u.ID) != 16 {
			return bad("unread message ID of %d bytes", len(u.ID))
		}
		total += len(u.Body)
		unread = append(unread, Message{ID: MessageID(u.ID), Body: u.Body, Received: u.Received, ViaSURB: u.ViaSURB})
	}
	if total > maxPendingBytes {
		return bad("%d pending and unread bytes", total)
	}
	done := map[MessageID]time.Time{}
	for _, d := range st.Done {
		if len(d.ID) != 16 {
			return bad("message ID of %d bytes", len(d.ID))
		}
		done[MessageID(d.ID)] = d.Expires
	}
	if len(done) > maxDone {
		return bad("%d delivered IDs", len(done))
	}
	used := map[[32]byte]time.Time{}
	for _, u := range st.UsedSURBs {
		if len(u.ID) != 32 {
			return bad("SURB fingerprint of %d bytes", len(u.ID))
		}
		used[[32]byte(u.ID)] = u.Expires
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if st.Network != "" && c.network != "" && st.Network != c.network {
		return bad("state of network %q, client on %q", st.Network, c.network)
	}
	if c.network == "" {
		c.network = st.Network
	}
	for id, e := range surbs {
		c.surbs[id] = e
	}
	for cp, exp := range mailboxes {
		c.surbMailboxes[cp] = exp
		delete(c.after, clientproto.MailboxRef{SURB: true, Capability: cp})
	}
	for id, r := range inbox {
		c.dropReassembly(id)
		c.inbox[id] = r
		c.inboxBytes += r.size()
	}
	for id, exp := range done {
		c.done[id] = exp
	}
	for fp, exp := range used {
		c.usedSURBs[fp] = exp
	}
	c.unread = append(c.unread, unread...)
	return nil
}

// takeBuffered moves the messages still buffered in Messages into unread,
// once Run has returned (and closed the channel): nobody will read them
// there any more.
func (c *Client) takeBuffered() {
	if !c.exited.Load() {
		return
	}
	for m := range c.messages {
		c.mu.Lock()
		c.unread = append(c.unread, m)
		c.mu.Unlock()
	}
}
