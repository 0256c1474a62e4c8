package clientproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
)

// ErrPayload: a forward payload or stored message that does not parse.
var ErrPayload = errors.New("clientproto: malformed payload")

// Forward payload layout. A network's geometry reserves room for a SURB in
// every forward packet (sphinx.Geometry.WithSURB); Sotto fills it as
//
//	surb length (2 bytes, big-endian: 0 or g.SURBLength) | SURB (g.SURBLength bytes, zero when absent) | body (g.UserForwardPayloadLength bytes)
//
// A provider that is the final hop of a forward packet stores only the body;
// when a SURB is present it sends an acknowledgement through it at once (an
// all-zero body), so that the sender learns the message reached the mailbox
// and stops retransmitting it, even while the recipient is offline.

// PackForward lays out a forward payload for g. surb may be nil; body must
// be at most g.UserForwardPayloadLength bytes (it is zero-padded).
func PackForward(g *sphinx.Geometry, surb, body []byte) ([]byte, error) {
	if !g.WithSURB {
		return nil, fmt.Errorf("%w: geometry has no room for a SURB", ErrPayload)
	}
	if surb != nil && len(surb) != g.SURBLength {
		return nil, fmt.Errorf("%w: SURB of %d bytes, want %d", ErrPayload, len(surb), g.SURBLength)
	}
	if len(body) > g.UserForwardPayloadLength {
		return nil, fmt.Errorf("%w: body of %d bytes, at most %d fit", ErrPayload, len(body), g.UserForwardPayloadLength)
	}
	p := make([]byte, g.ForwardPayloadLength)
	if surb != nil {
		binary.BigEndian.PutUint16(p, uint16(len(surb)))
		copy(p[2:], surb)
	}
	copy(p[2+g.SURBLength:], body)
	return p, nil
}

// SplitForward splits a forward payload (sphinx.Result.Payload at the final
// hop) into its SURB (nil when absent) and body. Both alias payload.
func SplitForward(g *sphinx.Geometry, payload []byte) (surb, body []byte, err error) {
	if !g.WithSURB || len(payload) != g.ForwardPayloadLength {
		return nil, nil, fmt.Errorf("%w: forward payload of %d bytes, want %d", ErrPayload, len(payload), g.ForwardPayloadLength)
	}
	switch n := int(binary.BigEndian.Uint16(payload)); n {
	case 0:
	case g.SURBLength:
		surb = payload[2 : 2+n]
	default:
		return nil, nil, fmt.Errorf("%w: SURB length %d, want 0 or %d", ErrPayload, n, g.SURBLength)
	}
	return surb, payload[2+g.SURBLength:], nil
}

// Stored message layout: what a provider appends to a mailbox, so that a
// fetch can tell a forward message from a SURB reply.
//
//	kind (1 byte: 1 forward, 2 SURB reply) | SURB ID (16 bytes, SURB replies only) | payload
const (
	storedForward = 1
	storedReply   = 2
)

// StoredMessage is a mailbox entry's content.
type StoredMessage struct {
	// Reply is set for a SURB reply; SURBID then names the SURB (the client
	// finds the keys to decrypt Payload by it).
	Reply  bool
	SURBID [sphinx.SURBIDLength]byte
	// Payload is the forward body, or the SURB reply's encrypted body.
	Payload []byte
}

// AppendTo appends the stored encoding of m to b.
func (m *StoredMessage) AppendTo(b []byte) []byte {
	if m.Reply {
		b = append(b, storedReply)
		b = append(b, m.SURBID[:]...)
	} else {
		b = append(b, storedForward)
	}
	return append(b, m.Payload...)
}

// ParseStored decodes a mailbox entry; Payload aliases b.
func ParseStored(b []byte) (StoredMessage, error) {
	var m StoredMessage
	if len(b) < 1 {
		return m, fmt.Errorf("%w: empty stored message", ErrPayload)
	}
	switch b[0] {
	case storedForward:
		m.Payload = b[1:]
	case storedReply:
		if len(b) < 1+sphinx.SURBIDLength {
			return m, fmt.Errorf("%w: stored reply of %d bytes", ErrPayload, len(b))
		}
		m.Reply = true
		copy(m.SURBID[:], b[1:])
		m.Payload = b[1+sphinx.SURBIDLength:]
	default:
		return m, fmt.Errorf("%w: stored message kind %d", ErrPayload, b[0])
	}
	return m, nil
}

// DefaultLifetime is how long a SURB mailbox delivery asking for lifetime 0
// is kept when the provider has no other setting.
const DefaultLifetime = 24 * time.Hour
