package sphinx

import "fmt"

// Geometry is the size of every part of a packet on one network. It is a
// network parameter (published in the PKI document): every packet on a
// network has PacketLength bytes. Sizes follow Katzenpost's
// GeometryFromUserForwardPayloadLength for X25519 (see docs/SPEC.md).
type Geometry struct {
	// NrHops is the maximum number of hops a path may have.
	NrHops int
	// WithSURB reports whether forward payloads reserve room for a SURB.
	WithSURB bool

	// NextNodeHopLength is the encoded NextNodeHop command (65).
	NextNodeHopLength int
	// PerHopRoutingInfoLength is one hop's command block (82).
	PerHopRoutingInfoLength int
	// RoutingInfoLength is PerHopRoutingInfoLength × NrHops.
	RoutingInfoLength int
	// HeaderLength is 2 (version) + 32 (α) + RoutingInfoLength + 32 (MAC).
	HeaderLength int
	// PayloadTagLength is the 32 zero bytes that authenticate the body at the last hop.
	PayloadTagLength int
	// SURBLength is HeaderLength + first hop ID (32) + SPRP key (48) + IV (16).
	SURBLength int
	// UserForwardPayloadLength is what a user can put in a forward packet.
	UserForwardPayloadLength int
	// ForwardPayloadLength is the payload NewPacket takes: the user payload,
	// plus 2 + SURBLength when WithSURB.
	ForwardPayloadLength int
	// PacketLength is HeaderLength + PayloadTagLength + ForwardPayloadLength.
	PacketLength int
}

// Default network parameters; docs/SPEC.md justifies them.
const (
	DefaultHops               = 5
	DefaultUserPayloadLength  = 2048
	maxHops                   = 64
	maxUserPayloadLength      = 1 << 20
	sphinxPlaintextHeaderSize = 2
)

// NewGeometry computes the geometry for a user forward payload of
// userPayload bytes, at most nrHops hops, with or without room for a SURB.
func NewGeometry(userPayload, nrHops int, withSURB bool) (*Geometry, error) {
	if nrHops < 1 || nrHops > maxHops {
		return nil, fmt.Errorf("%w: %d hops, want 1..%d", ErrInvalidGeometry, nrHops, maxHops)
	}
	if userPayload < 1 || userPayload > maxUserPayloadLength {
		return nil, fmt.Errorf("%w: user payload of %d bytes, want 1..%d", ErrInvalidGeometry, userPayload, maxUserPayloadLength)
	}
	g := &Geometry{NrHops: nrHops, WithSURB: withSURB, PayloadTagLength: PayloadTagLength, UserForwardPayloadLength: userPayload}
	g.NextNodeHopLength = nextNodeHopLength
	g.PerHopRoutingInfoLength = nextNodeHopLength + surbReplyLength
	g.RoutingInfoLength = g.PerHopRoutingInfoLength * nrHops
	g.HeaderLength = versionLength + GroupElementLength + g.RoutingInfoLength + MACLength
	g.SURBLength = g.HeaderLength + NodeIDLength + SPRPKeyLength + SPRPIVLength
	g.ForwardPayloadLength = userPayload
	if withSURB {
		g.ForwardPayloadLength += sphinxPlaintextHeaderSize + g.SURBLength
	}
	g.PacketLength = g.HeaderLength + PayloadTagLength + g.ForwardPayloadLength
	return g, nil
}

// DefaultGeometry is the network default: 5 hops (gateway, three mix layers,
// the recipient's provider), 2048 bytes of user payload, room for a SURB.
func DefaultGeometry() *Geometry {
	g, err := NewGeometry(DefaultUserPayloadLength, DefaultHops, true)
	if err != nil {
		panic(err) // constant arguments: cannot happen
	}
	return g
}

// String describes the geometry in one line.
func (g *Geometry) String() string {
	return fmt.Sprintf("sphinx geometry: %d hops, packet %d B (header %d, forward payload %d, user payload %d, SURB %v)",
		g.NrHops, g.PacketLength, g.HeaderLength, g.ForwardPayloadLength, g.UserForwardPayloadLength, g.WithSURB)
}
