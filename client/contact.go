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
	"github.com/sottonet/sotto/core/sphinx"
)

// Contact string format (this comment is its specification until
// docs/SPEC.md takes it over):
//
//	"sotto1" + base64url, unpadded, of: body | checksum (4 bytes: SHA-256("sotto contact v1\0" | body)[:4])
//
//	body  = version (1 = 1) | mode (1) | network (u8 length, 1..64 bytes) | HPKE key (32)
//	mode 1, forward:            provider identity (32) | mailbox ID (32)
//	mode 2, receiver-anonymous: epoch (u64) | SURB length (u16) | count (u8, 1..MaxContactSURBs) | count × SURB
//
// The checksum catches typing and copying errors, not forgery: whoever
// hands out a contact is trusted for what it says, as with any address.
const (
	ContactPrefix    = "sotto1"
	MaxContactSURBs  = 64
	maxSURBLength    = 4096
	maxNetworkLen    = 64
	contactVersion   = 1
	modeForward      = 1
	modeAnonymous    = 2
	contactChecksum  = 4
	maxContactLength = len(ContactPrefix) + (2+1+maxNetworkLen+32+8+2+1+MaxContactSURBs*maxSURBLength+contactChecksum)*4/3 + 4
)

// Contact is how to reach a client: in forward mode its provider and
// mailbox, in receiver-anonymous mode a batch of SURBs that deliver into a
// SURB mailbox only the client can read (the sender learns neither its
// provider nor its route). Both carry the HPKE key messages are encrypted
// to.
type Contact struct {
	Network string
	Key     []byte // HPKE public key, DHKEM(X25519): 32 bytes

	// Forward mode.
	Provider [32]byte
	Mailbox  clientproto.MailboxID

	// Receiver-anonymous mode: SURBs (each ending with its first hop's ID),
	// made with the Sphinx keys of Epoch, so usable while that epoch's keys
	// are (until its end plus the grace period).
	Epoch uint64
	SURBs [][]byte
}

// Anonymous reports whether c is a receiver-anonymous (SURB) contact.
func (c *Contact) Anonymous() bool { return len(c.SURBs) > 0 }

func (c *Contact) clone() *Contact {
	d := *c
	d.Key = slices.Clone(c.Key)
	d.SURBs = slices.Clone(c.SURBs)
	return &d
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
	}
	if c.Anonymous() {
		if c.Provider != ([32]byte{}) || c.Mailbox != (clientproto.MailboxID{}) {
			return fmt.Errorf("%w: both a mailbox and SURBs", ErrContact)
		}
		n := len(c.SURBs[0])
		if n == 0 || n > maxSURBLength {
			return fmt.Errorf("%w: SURB of %d bytes", ErrContact, n)
		}
		for _, s := range c.SURBs {
			if len(s) != n {
				return fmt.Errorf("%w: SURBs of different lengths", ErrContact)
			}
		}
		return nil
	}
	if c.Provider == ([32]byte{}) {
		return fmt.Errorf("%w: no provider", ErrContact)
	}
	if c.Epoch != 0 {
		return fmt.Errorf("%w: epoch without SURBs", ErrContact)
	}
	return nil
}

// MarshalText encodes c as a contact string.
func (c *Contact) MarshalText() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b := []byte{contactVersion, modeForward, byte(len(c.Network))}
	if c.Anonymous() {
		b[1] = modeAnonymous
	}
	b = append(b, c.Network...)
	b = append(b, c.Key...)
	if c.Anonymous() {
		b = binary.BigEndian.AppendUint64(b, c.Epoch)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.SURBs[0])))
		b = append(b, byte(len(c.SURBs)))
		for _, s := range c.SURBs {
			b = append(b, s...)
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
	if version != contactVersion {
		return nil, fmt.Errorf("%w: version %d", ErrContact, version)
	}
	c := &Contact{Network: string(r.next(nlen)), Key: slices.Clone(r.next(32))}
	switch mode {
	case modeForward:
		copy(c.Provider[:], r.next(32))
		copy(c.Mailbox[:], r.next(32))
	case modeAnonymous:
		c.Epoch = binary.BigEndian.Uint64(r.next(8))
		n := int(binary.BigEndian.Uint16(r.next(2)))
		count := int(r.byte())
		if n == 0 || n > maxSURBLength || count == 0 || count > MaxContactSURBs {
			return nil, fmt.Errorf("%w: %d SURBs of %d bytes", ErrContact, count, n)
		}
		for range count {
			c.SURBs = append(c.SURBs, slices.Clone(r.next(n)))
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
	// SURBs is how many SURBs (messages of one fragment) the contact
	// carries; 0: DefaultContactSURBs.
	SURBs int
	// Epoch is the epoch whose Sphinx keys the SURBs use: the contact is
	// usable from its start until its end plus the grace period. 0: the
	// current epoch. At most two epochs ahead (what descriptors carry).
	Epoch uint64
}

// NewContact makes a contact for this client. A forward contact needs only
// the network name (Config.Network, or the first document); an anonymous
// one waits, until ctx ends, for the PKI document, and registers the SURB
// mailbox and the SURBs' keys with the client (see MarshalState).
func (c *Client) NewContact(ctx context.Context, opts ContactOptions) (*Contact, error) {
	c.mu.Lock()
	network := c.network
	c.mu.Unlock()
	if !opts.Anonymous && network != "" {
		return &Contact{Network: network, Key: c.MessageKey(), Provider: c.cfg.ProviderID, Mailbox: c.ownMailbox}, nil
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !opts.Anonymous {
		return &Contact{Network: c.network, Key: c.MessageKey(), Provider: c.cfg.ProviderID, Mailbox: c.ownMailbox}, nil
	}
	n := opts.SURBs
	if n == 0 {
		n = DefaultContactSURBs
	}
	if n < 0 || n > MaxContactSURBs {
		return nil, fmt.Errorf("%w: %d SURBs, at most %d", ErrContact, n, MaxContactSURBs)
	}
	now := time.Now()
	cur := c.cfg.Clock.At(now)
	e := opts.Epoch
	if e == 0 {
		e = cur
	}
	if e < cur || e > cur+2 {
		return nil, fmt.Errorf("%w: epoch %d for a contact, now %d", ErrContactExpired, e, cur)
	}
	// The SURBs' path should come from the document of their epoch (nodes
	// look the next hop up in it); the current one stands in for a future
	// epoch whose document has not arrived.
	v := c.docs[e]
	if v == nil {
		v = c.docs[cur]
	}
	if v == nil && cur > 0 {
		v = c.docs[cur-1]
	}
	if v == nil {
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
	expires := c.cfg.Clock.End(e).Add(c.cfg.Clock.Grace()).Add(stored)
	// A fresh HPKE key per anonymous contact, so that two people holding
	// two of this client's anonymous contacts cannot tell they are one.
	key, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("client: contact key: %w", err)
	}
	ct := &Contact{Network: c.network, Key: key.PublicKey().Bytes(), Epoch: e}
	var ids [][sphinx.SURBIDLength]byte
	for range n {
		id, err := c.newSURBID()
		if err != nil {
			return nil, err
		}
		surb, keys, _, err := c.makeSURB(v, e, true, now, &sphinx.SURBReply{ID: id},
			&sphinx.MailboxDelivery{Mailbox: capability, Lifetime: uint32(lifetime / time.Second)})
		if err != nil {
			for _, id := range ids {
				clear(c.surbs[id].keys)
				delete(c.surbs, id)
			}
			return nil, err
		}
		c.surbs[id] = &surbEntry{kind: surbContact, keys: keys, expires: expires,
			payloadLen: v.geo.UserForwardPayloadLength, hops: v.geo.NrHops, msgKey: key}
		ids = append(ids, id)
		ct.SURBs = append(ct.SURBs, surb)
	}
	c.surbMailboxes[capability] = expires
	return ct, nil
}
