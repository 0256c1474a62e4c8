package client

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Errors callers branch on.
var (
	ErrConfig          = errors.New("client: invalid config")
	ErrNotReady        = errors.New("client: no usable PKI document yet")
	ErrMessageTooLong  = errors.New("client: message too long")
	ErrQueueFull       = errors.New("client: send queue full")
	ErrNoSURBs         = errors.New("client: contact has too few unused SURBs")
	ErrContact         = errors.New("client: malformed contact")
	ErrContactExpired  = errors.New("client: contact's SURBs are not usable now")
	ErrUnknownProvider = errors.New("client: contact's provider is not in the PKI document")
	ErrUnacknowledged  = errors.New("client: message not acknowledged")
	ErrState           = errors.New("client: malformed state")
	ErrFragment        = errors.New("client: malformed fragment")
	// ErrWrongClock: the network's documents state an epoch clock other
	// than the one the client was configured with.
	ErrWrongClock = errors.New("client: the network runs on another epoch clock")
)

// MessageID names one message end to end: the sender draws it at random,
// every fragment carries it, the recipient reassembles and deduplicates by
// it.
type MessageID [16]byte

func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Message is a complete message handed to the application. The mixnet
// hides who sent it and this layer does not authenticate senders (the
// messaging layer above does); what it knows is which contact it came
// through.
type Message struct {
	ID       MessageID
	Body     []byte
	Received time.Time // when its last missing fragment was fetched
	// ViaSURB is set when it arrived through one of this client's
	// receiver-anonymous contacts rather than its forward mailbox, and
	// Contact is then that contact's For (ContactOptions.For): with one
	// contact per sender, who wrote.
	ViaSURB bool
	Contact string
	// Sender is set when the message came through the messaging layer
	// (Config.Messaging): the identity key in its sender's card, which
	// that layer authenticated. Nil for a message sealed to this client's
	// HPKE key only, whose sender nothing names.
	Sender []byte
}

// MaxFragments bounds the fragments of one message (on the default
// geometry about 1.9 MiB of message).
const MaxFragments = 1024

// End-to-end encryption: one HPKE base-mode seal per fragment, the ciphersuite
// fixed by the protocol version, which the info string names.
var (
	hpkeKEM  = hpke.DHKEM(ecdh.X25519())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.ChaCha20Poly1305()
)

const (
	hpkeInfo     = "sotto client message v1"
	hpkeEncLen   = 32 // X25519 encapsulated key
	hpkeTagLen   = 16 // Poly1305
	hpkeOverhead = hpkeEncLen + hpkeTagLen
)

// Fragment plaintext, before HPKE (this comment is its specification until
// docs/SPEC.md takes it over). It fills the body exactly, so that every
// ciphertext has one size:
//
//	kind (1: fragment, 2: loop) | message ID (16) | index (2) | count (2) | data length (2) | data | zero padding
const (
	kindFragment = 1
	kindLoop     = 2
	// kindSealed: a fragment of a message the messaging layer sealed (the
	// reassembled body is its ciphertext).
	kindSealed = 3

	fragmentHeaderLen = 1 + 16 + 2 + 2 + 2
	// minBody is the smallest packet body the client works with.
	minBody = hpkeOverhead + fragmentHeaderLen + 16
)

// fragCapacity is how many message bytes one fragment carries in a body of
// bodyLen bytes.
func fragCapacity(bodyLen int) int { return bodyLen - hpkeOverhead - fragmentHeaderLen }

type fragmentPlain struct {
	kind  byte
	id    MessageID
	index int
	count int
	data  []byte
}

// encode lays f out in a plaintext of size bytes.
func (f *fragmentPlain) encode(size int) ([]byte, error) {
	if len(f.data) > size-fragmentHeaderLen || f.count < 1 || f.count > MaxFragments || f.index >= f.count || f.index < 0 {
		return nil, fmt.Errorf("%w: %d bytes, fragment %d of %d", ErrFragment, len(f.data), f.index, f.count)
	}
	b := make([]byte, size)
	b[0] = f.kind
	copy(b[1:17], f.id[:])
	binary.BigEndian.PutUint16(b[17:], uint16(f.index))
	binary.BigEndian.PutUint16(b[19:], uint16(f.count))
	binary.BigEndian.PutUint16(b[21:], uint16(len(f.data)))
	copy(b[fragmentHeaderLen:], f.data)
	return b, nil
}

// parseFragment decodes a fragment plaintext. It accepts only the
// canonical form (known kind, index below count, zero padding) and never
// panics; data aliases b.
func parseFragment(b []byte) (fragmentPlain, error) {
	var f fragmentPlain
	if len(b) < fragmentHeaderLen {
		return f, fmt.Errorf("%w: %d bytes", ErrFragment, len(b))
	}
	f.kind = b[0]
	copy(f.id[:], b[1:17])
	f.index = int(binary.BigEndian.Uint16(b[17:]))
	f.count = int(binary.BigEndian.Uint16(b[19:]))
	n := int(binary.BigEndian.Uint16(b[21:]))
	switch {
	case f.kind != kindFragment && f.kind != kindLoop && f.kind != kindSealed:
		return f, fmt.Errorf("%w: kind %d", ErrFragment, f.kind)
	case f.count < 1 || f.count > MaxFragments || f.index >= f.count:
		return f, fmt.Errorf("%w: fragment %d of %d", ErrFragment, f.index, f.count)
	case n > len(b)-fragmentHeaderLen:
		return f, fmt.Errorf("%w: data length %d in %d bytes", ErrFragment, n, len(b))
	}
	f.data = b[fragmentHeaderLen : fragmentHeaderLen+n]
	for _, x := range b[fragmentHeaderLen+n:] {
		if x != 0 {
			return f, fmt.Errorf("%w: nonzero padding", ErrFragment)
		}
	}
	return f, nil
}

// sealBody encrypts a fragment to pub, giving exactly bodyLen bytes.
func sealBody(pub hpke.PublicKey, f *fragmentPlain, bodyLen int) ([]byte, error) {
	pt, err := f.encode(bodyLen - hpkeOverhead)
	if err != nil {
		return nil, err
	}
	ct, err := hpke.Seal(pub, hpkeKDF, hpkeAEAD, []byte(hpkeInfo), pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("client: sealing fragment: %w", err)
	}
	return ct, nil
}

// openBody decrypts and parses a body from the network.
func openBody(priv hpke.PrivateKey, body []byte) (fragmentPlain, error) {
	if len(body) < minBody {
		return fragmentPlain{}, fmt.Errorf("%w: body of %d bytes", ErrFragment, len(body))
	}
	pt, err := hpke.Open(priv, hpkeKDF, hpkeAEAD, []byte(hpkeInfo), body)
	if err != nil {
		return fragmentPlain{}, fmt.Errorf("%w: %w", ErrFragment, err)
	}
	return parseFragment(pt)
}

// deriveMessageKey derives the client's HPKE key from its identity seed
// (RFC 9180 DeriveKeyPair over a domain-separated hash of the seed).
func deriveMessageKey(seed []byte) (hpke.PrivateKey, error) {
	h := sha256.New()
	h.Write([]byte("sotto client message key v1\x00"))
	h.Write(seed)
	ikm := h.Sum(nil)
	defer clear(ikm)
	return hpkeKEM.DeriveKeyPair(ikm)
}

// reassembly collects the fragments of one incoming message.
type reassembly struct {
	count   int
	frags   map[int][]byte
	first   time.Time
	viaSURB bool
	contact string
	sealed  bool // kindSealed fragments
}

func (r *reassembly) size() int {
	n := 0
	for _, d := range r.frags {
		n += len(d)
	}
	return n
}
