package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// Contact string format: docs/SPEC.md, "Client messages", "Contacts".
const (
	ContactPrefix    = "sotto1"
	MaxContactSURBs  = 64
	maxSURBLength    = 4096
	maxNetworkLen    = 64
	maxForLen        = 64
	maxContactEpochs = 8
	contactV1        = 1
	contactV2        = 2
	contactV3        = 3 // v2 and a messaging card
	modeForward      = 1
	modeAnonymous    = 2
	contactChecksum  = 4
	maxContactLength = len(ContactPrefix) + (2+1+maxNetworkLen+32+1+maxForLen+2+MaxCardLen+2+1+maxContactEpochs*9+MaxContactSURBs*maxSURBLength+contactChecksum)*4/3 + 4
)

// Contact is how to reach a client: in forward mode its provider and
// mailbox, in receiver-anonymous mode a batch of SURBs that deliver into a
// SURB mailbox only the client can read (the sender learns neither its
// provider nor its route). Both carry the HPKE key messages are encrypted
// to.
type Contact struct {
	Network string
	Key     []byte // HPKE public key, DHKEM(X25519): 32 bytes
	// For says whom the contact was made for ("" for anyone). An anonymous
	// contact's SURBs are single use: two senders sharing one spoil each
	// other's messages (the second is dropped as a replay and its sender
	// told ErrNotDelivered), so a receiver makes one per sender. The
	// receiver sees it as Message.Contact.
	For string
	// Card is the messaging layer's card of the contact's owner (identity
	// key, signed prekey, one-time prekeys: docs/SPEC.md, "Messaging
	// layer"), at most MaxCardLen bytes; a sender with a messaging layer
	// seals messages through it. Nil in contacts of clients without one
	// (messages to them are sealed to Key only).
	Card []byte

	// Forward mode.
	Provider [32]byte
	Mailbox  clientproto.MailboxID

	// Receiver-anonymous mode: SURBs, each made with the Sphinx keys of its
	// epoch and usable during that epoch (see ContactOptions).
	SURBs []ContactSURB
}

// ContactSURB is one SURB of an anonymous contact: its bytes (ending with
// its first hop's node ID) and the epoch whose keys it uses.
type ContactSURB struct {
	Epoch uint64
	SURB  []byte
}

// Expires is when the last of c's SURBs stops being usable (the end of
// its epoch plus the grace period), or the zero time for a forward
// contact, which does not expire.
func (c *Contact) Expires(clk epoch.Clock) time.Time {
	var last time.Time
	for _, s := range c.SURBs {
		if t := clk.End(s.Epoch).Add(clk.Grace()); t.After(last) {
			last = t
		}
	}
	return last
}

// Anonymous reports whether c is a receiver-anonymous (SURB) contact.
func (c *Contact) Anonymous() bool { return len(c.SURBs) > 0 }

func (c *Contact) clone() *Contact {
	d := *c
	d.Key = slices.Clone(c.Key)
	d.Card = slices.Clone(c.Card)
	d.SURBs = slices.Clone(c.SURBs)
	return &d
}

// epochs returns the epochs of c's SURBs in ascending order, each once.
func (c *Contact) epochs() []uint64 {
	var es []uint64
	for _, s := range c.SURBs {
		if !slices.Contains(es, s.Epoch) {
			es = append(es, s.Epoch)
		}
	}
	slices.Sort(es)
	return es
}

func (c *Contact) validate() error {
	switch {
	case c == nil:
		return fmt.Errorf("%w: nil", ErrContact)
	case len(c.Network) == 0 || len(c.Network) > maxNetworkLen:
		return fmt.Errorf("%w: network name of %d bytes", ErrContact, len(c.Network))
	case len(c.Key) != 32:
		return fmt.Errorf("%w: key of %d bytes", ErrContact, len(c.Key))
	case len(c.SURBs) > MaxContactSURBs:
		return fmt.Errorf("%w: %d SURBs, at most %d", ErrContact, len(c.SURBs), MaxContactSURBs)
	case len(c.For) > maxForLen:
		return fmt.Errorf("%w: a for-name of %d bytes, at most %d", ErrContact, len(c.For), maxForLen)
	case len(c.Card) > MaxCardLen:
		return fmt.Errorf("%w: a card of %d bytes, at most %d", ErrContact, len(c.Card), MaxCardLen)
	}
	if c.Anonymous() {
		if c.Provider != ([32]byte{}) || c.Mailbox != (clientproto.MailboxID{}) {
			return fmt.Errorf("%w: both a mailbox and SURBs", ErrContact)
		}
		n := len(c.SURBs[0].SURB)
		if n == 0 || n > maxSURBLength {
			return fmt.Errorf("%w: SURB of %d bytes", ErrContact, n)
		}
		for i, s := range c.SURBs {
			if len(s.SURB) != n {
				return fmt.Errorf("%w: SURBs of different lengths", ErrContact)
			}
			if i > 0 && s.Epoch < c.SURBs[i-1].Epoch {
				return fmt.Errorf("%w: SURBs not in epoch order", ErrContact)
			}
		}
		if len(c.epochs()) > maxContactEpochs {
			return fmt.Errorf("%w: SURBs of %d epochs, at most %d", ErrContact, len(c.epochs()), maxContactEpochs)
		}
		return nil
	}
	if c.Provider == ([32]byte{}) {
		return fmt.Errorf("%w: no provider", ErrContact)
	}
	return nil
}

// MarshalText encodes c as a contact string: version 1 for a forward
// contact made for anyone (what older clients read), version 3 for one
// with a messaging card, version 2 otherwise.
func (c *Contact) MarshalText() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	version := byte(contactV1)
	if c.Anonymous() || c.For != "" {
		version = contactV2
	}
	if len(c.Card) > 0 {
		version = contactV3
	}
	b := []byte{version, modeForward, byte(len(c.Network))}
	if c.Anonymous() {
		b[1] = modeAnonymous
	}
	b = append(b, c.Network...)
	b = append(b, c.Key...)
	if version >= contactV2 {
		b = append(b, byte(len(c.For)))
		b = append(b, c.For...)
	}
	if version == contactV3 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.Card)))
		b = append(b, c.Card...)
	}
	if c.Anonymous() {
		es := c.epochs()
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.SURBs[0].SURB)))
		b = append(b, byte(len(es)))
		for _, e := range es {
			b = binary.BigEndian.AppendUint64(b, e)
			n := 0
			for _, s := range c.SURBs {
				if s.Epoch == e {
					n++
				}
			}
			b = append(b, byte(n))
			for _, s := range c.SURBs {
				if s.Epoch == e {
					b = append(b, s.SURB...)
				}
			}
		}
	} else {
		b = append(b, c.Provider[:]...)
		b = append(b, c.Mailbox[:]...)
	}
	sum := contactSum(b)
	b = append(b, sum[:contactChecksum]...)
	out := make([]byte, len(ContactPrefix)+base64.RawURLEncoding.EncodedLen(len(b)))
	copy(out, ContactPrefix)
	base64.RawURLEncoding.Encode(out[len(ContactPrefix):], b)
	return out, nil
}

// String returns the contact string, or a note saying why there is none.
func (c *Contact) String() string {
	b, err := c.MarshalText()
	if err != nil {
		return "invalid contact: " + err.Error()
	}
	return string(b)
}

// UnmarshalText is ParseContact for encoding.TextUnmarshaler users.
func (c *Contact) UnmarshalText(b []byte) error {
	p, err := ParseContact(string(b))
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// ParseContact decodes and checks a contact string. Surrounding white space
// is ignored; anything else that is not the canonical encoding, or whose
// checksum does not match, is refused with an error wrapping ErrContact. It
// never panics.
func ParseContact(s string) (*Contact, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxContactLength {
		return nil, fmt.Errorf("%w: %d characters", ErrContact, len(s))
	}
	rest, ok := strings.CutPrefix(s, ContactPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: no %q prefix", ErrContact, ContactPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != rest {
		return nil, fmt.Errorf("%w: not base64url", ErrContact)
	}
	if len(raw) < 3+contactChecksum {
		return nil, fmt.Errorf("%w: too short", ErrContact)
	}
	body, sum := raw[:len(raw)-contactChecksum], raw[len(raw)-contactChecksum:]
	want := contactSum(body)
	if !bytes.Equal(sum, want[:contactChecksum]) {
		return nil, fmt.Errorf("%w: checksum mismatch (mistyped or truncated)", ErrContact)
	}
	r := reader{b: body}
	version, mode, nlen := r.byte(), r.byte(), int(r.byte())
	if version != contactV1 && version != contactV2 && version != contactV3 {
		return nil, fmt.Errorf("%w: version %d", ErrContact, version)
	}
	c := &Contact{Network: string(r.next(nlen)), Key: slices.Clone(r.next(32))}
	if version >= contactV2 {
		c.For = string(r.next(int(r.byte())))
	}
	if version == contactV3 {
		n := int(binary.BigEndian.Uint16(r.next(2)))
		if n == 0 || n > MaxCardLen {
			return nil, fmt.Errorf("%w: a card of %d bytes", ErrContact, n)
		}
		c.Card = slices.Clone(r.next(n))
	}
	switch mode {
	case modeForward:
		copy(c.Provider[:], r.next(32))
		copy(c.Mailbox[:], r.next(32))
	case modeAnonymous:
		if version == contactV1 {
			// epoch | SURB length | count | count × SURB
			e := binary.BigEndian.Uint64(r.next(8))
			n := int(binary.BigEndian.Uint16(r.next(2)))
			count := int(r.byte())
			if n == 0 || n > maxSURBLength || count == 0 || count > MaxContactSURBs {
				return nil, fmt.Errorf("%w: %d SURBs of %d bytes", ErrContact, count, n)
			}
			for range count {
				c.SURBs = append(c.SURBs, ContactSURB{Epoch: e, SURB: slices.Clone(r.next(n))})
			}
			break
		}
		// SURB length | groups | groups × (epoch | count | count × SURB)
		n := int(binary.BigEndian.Uint16(r.next(2)))
		groups := int(r.byte())
		if n == 0 || n > maxSURBLength || groups == 0 || groups > maxContactEpochs {
			return nil, fmt.Errorf("%w: %d epochs of SURBs of %d bytes", ErrContact, groups, n)
		}
		var prev uint64
		for g := range groups {
			e := binary.BigEndian.Uint64(r.next(8))
			count := int(r.byte())
			if count == 0 || len(c.SURBs)+count > MaxContactSURBs || (g > 0 && e <= prev) || r.short {
				return nil, fmt.Errorf("%w: SURB group %d (epoch %d, %d SURBs)", ErrContact, g, e, count)
			}
			prev = e
			for range count {
				c.SURBs = append(c.SURBs, ContactSURB{Epoch: e, SURB: slices.Clone(r.next(n))})
			}
		}
	default:
		return nil, fmt.Errorf("%w: mode %d", ErrContact, mode)
	}
	if r.short || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: truncated or trailing bytes", ErrContact)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if version == contactV1 && c.Anonymous() {
		return c, nil // re-encodes as v2: the canonical check below is for what this client writes
	}
	if again, err := c.MarshalText(); err != nil || string(again) != s {
		return nil, fmt.Errorf("%w: not in canonical form", ErrContact)
	}
	return c, nil
}

func contactSum(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("sotto contact v1\x00"))
	h.Write(body)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// reader takes bytes off a slice; a short read sets short and yields zeros,
// so decoders check once at the end.
type reader struct {
	b     []byte
	short bool
}

func (r *reader) next(n int) []byte {
	if n > len(r.b) {
		r.short = true
		r.b = nil
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte { return r.next(1)[0] }

// ContactOptions choose what NewContact makes.
type ContactOptions struct {
	// Anonymous makes a receiver-anonymous contact: SURBs into a fresh SURB
	// mailbox on the client's provider.
	Anonymous bool
	// NoCard leaves the messaging layer's card out of the contact: its
	// identity keys would let two holders of this client's contacts tell
	// that they are one user. Messages through it are then sealed to the
	// contact's own HPKE key only, without forward secrecy (docs/SPEC.md,
	// "Messaging layer"). For anonymous contacts that must stay unlinkable.
	NoCard bool
	// For names whom the contact is for (at most 64 bytes; "" for
	// anyone). It travels in the contact, and messages that come through
	// an anonymous contact carry it (Message.Contact), so a receiver that
	// hands each sender their own contact knows who wrote.
	For string
	// SURBs is how many SURBs (fragments it can carry) the contact has for
	// each epoch it covers; 0: DefaultContactSURBs.
	SURBs int
	// Epoch is the first epoch the contact covers; 0: the current one.
	// At most two epochs ahead (what descriptors carry keys for).
	Epoch uint64
	// Epochs is how many epochs it covers from Epoch on; 0: every epoch
	// whose Sphinx keys are published now (the current one and the next
	// two, so a contact lasts two to three epochs). The SURBs of an epoch
	// are usable during that epoch only; a sender uses those of the epoch
	// it sends in. SURBs of an epoch whose document the client does not
	// hold yet follow the layers that epoch's document will have if the
	// network does not change meanwhile (layers are a function of the
	// epoch and the mixes).
	Epochs int
}

// NewContact makes a contact for this client. A forward contact needs only
// the network name (Config.Network, or the first document); an anonymous
// one waits, until ctx ends, for the PKI document, registers the SURB
// mailbox and the SURBs' keys with the client and saves them to the Store
// before it returns.
func (c *Client) NewContact(ctx context.Context, opts ContactOptions) (*Contact, error) {
	if len(opts.For) > maxForLen {
		return nil, fmt.Errorf("%w: a for-name of %d bytes, at most %d", ErrContact, len(opts.For), maxForLen)
	}
	c.mu.Lock()
	network := c.network
	c.mu.Unlock()
	var card []byte
	if !opts.NoCard {
		var err error
		if card, err = c.card(ctx); err != nil {
			return nil, err
		}
	}
	fwd := func() *Contact {
		return &Contact{Network: network, Key: c.MessageKey(), For: opts.For, Card: card, Provider: c.cfg.ProviderID, Mailbox: c.ownMailbox}
	}
	if !opts.Anonymous && network != "" {
		return fwd(), nil
	}
	select {
	case <-c.firstDoc:
	case <-c.runDone:
		select {
		case <-c.firstDoc:
		default:
			return nil, fmt.Errorf("%w: %w", ErrNotReady, ErrClosed)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
	if !opts.Anonymous {
		c.mu.Lock()
		network = c.network
		c.mu.Unlock()
		return fwd(), nil
	}
	ct, err := c.newAnonymousContact(opts)
	if err != nil {
		return nil, err
	}
	ct.Card = card
	if err := c.persist(); err != nil {
		return nil, fmt.Errorf("client: contact not saved: %w", err)
	}
	return ct, nil
}

// card returns the messaging layer's current card (nil without one),
// saving what making it changed (a rotated or replenished prekey).
func (c *Client) card(ctx context.Context) ([]byte, error) {
	if c.msg == nil {
		return nil, nil
	}
	card, err := c.msg.ContactCard(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: messaging card: %w", err)
	}
	if len(card) == 0 || len(card) > MaxCardLen {
		return nil, fmt.Errorf("%w: the messaging layer's card is %d bytes, at most %d", ErrConfig, len(card), MaxCardLen)
	}
	if err := c.persist(); err != nil {
		return nil, fmt.Errorf("client: contact not saved: %w", err)
	}
	return card, nil
}

func (c *Client) newAnonymousContact(opts ContactOptions) (*Contact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := opts.SURBs
	if n == 0 {
		n = DefaultContactSURBs
	}
	clk := c.clk0()
	now := time.Now()
	cur := clk.At(now)
	first := opts.Epoch
	if first == 0 {
		first = cur
	}
	if first < cur || first > cur+2 {
		return nil, fmt.Errorf("%w: epoch %d for a contact, now %d", ErrContactExpired, first, cur)
	}
	epochs := opts.Epochs
	if epochs == 0 {
		epochs = int(cur + 3 - first)
	}
	if epochs < 1 || first+uint64(epochs) > cur+3 {
		return nil, fmt.Errorf("%w: %d epochs from %d: keys are published up to epoch %d", ErrContact, epochs, first, cur+2)
	}
	if n < 0 || n*epochs > MaxContactSURBs {
		return nil, fmt.Errorf("%w: %d SURBs per epoch for %d epochs, at most %d in all", ErrContact, n, epochs, MaxContactSURBs)
	}
	base := c.latestView()
	if base == nil {
		return nil, fmt.Errorf("%w: epoch %d", ErrNotReady, cur)
	}
	capability, err := randID16(c.entropy)
	if err != nil {
		return nil, err
	}
	lifetime := c.cfg.SURBLifetime
	stored := lifetime
	if stored == 0 {
		stored = clientproto.DefaultLifetime
	}
	last := first + uint64(epochs) - 1
	expires := clk.End(last).Add(clk.Grace()).Add(stored)
	// A fresh HPKE key per anonymous contact, so that two people holding
	// two of this client's anonymous contacts cannot tell they are one.
	key, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("client: contact key: %w", err)
	}
	ct := &Contact{Network: c.network, Key: key.PublicKey().Bytes(), For: opts.For}
	var ids [][sphinx.SURBIDLength]byte
	undo := func() {
		for _, id := range ids {
			clear(c.surbs[id].keys)
			delete(c.surbs, id)
		}
	}
	for e := first; e <= last; e++ {
		// The SURBs' path must follow the layers of their epoch's document
		// (nodes check the next hop in it, and the provider accepts a
		// reply's first hop only if it is in layer 0 now).
		v, err := c.viewFor(e, base)
		if err != nil {
			undo()
			return nil, err
		}
		for range n {
			id, err := c.newSURBID()
			if err != nil {
				undo()
				return nil, err
			}
			surb, keys, _, err := c.makeSURB(v, e, true, now, &sphinx.SURBReply{ID: id},
				&sphinx.MailboxDelivery{Mailbox: capability, Lifetime: uint32(lifetime / time.Second)})
			if err != nil {
				undo()
				return nil, err
			}
			c.surbs[id] = &surbEntry{kind: surbContact, keys: keys, expires: expires,
				payloadLen: v.geo.UserForwardPayloadLength, hops: v.geo.NrHops, msgKey: key, label: opts.For}
			ids = append(ids, id)
			ct.SURBs = append(ct.SURBs, ContactSURB{Epoch: e, SURB: surb})
		}
	}
	c.surbMailboxes[capability] = &surbMailbox{expires: expires, label: opts.For}
	c.changed()
	return ct, nil
}

// takeSURBs picks n unused SURBs of contact to for fragments sent now, at
// random (two senders who were handed one contact then collide less), and
// marks them used (under c.mu). The SURBs of the current epoch are
// preferred; those of the previous one are taken only in its grace period
// when the current epoch has none.
func (c *Client) takeSURBs(to *Contact, n int, now time.Time) ([]*ContactSURB, error) {
	clk := c.clk0()
	cur := clk.At(now)
	var pick []*ContactSURB
	for _, want := range []uint64{cur, cur - 1} {
		if len(pick) > 0 || (want == cur-1 && (cur == 0 || !clk.KeyValid(want, now))) {
			break
		}
		for i := range to.SURBs {
			s := &to.SURBs[i]
			if _, used := c.usedSURBs[surbFingerprint(s.SURB)]; s.Epoch == want && !used {
				pick = append(pick, s)
			}
		}
	}
	if len(pick) < n {
		es := to.epochs()
		switch {
		case es[len(es)-1] < cur && !clk.KeyValid(es[len(es)-1], now):
			return nil, fmt.Errorf("%w: SURBs for epochs %d to %d, now epoch %d", ErrContactExpired, es[0], es[len(es)-1], cur)
		case es[0] > cur:
			return nil, fmt.Errorf("%w: the contact's SURBs are for epochs %d to %d, now epoch %d", ErrNoSURBs, es[0], es[len(es)-1], cur)
		}
		return nil, fmt.Errorf("%w: %d fragments, %d unused SURBs for epoch %d", ErrNoSURBs, n, len(pick), cur)
	}
	c.rnd.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
	pick = pick[:n]
	for _, s := range pick {
		c.usedSURBs[surbFingerprint(s.SURB)] = clk.End(s.Epoch).Add(clk.Grace())
	}
	return pick, nil
}
