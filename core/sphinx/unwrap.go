package sphinx

import (
	"github.com/sottonet/sotto/core/sphinx/internal/aez"
)

// Unwrapper removes one layer of Sphinx from packets addressed to one node
// key. It holds every buffer the unwrap needs, so Unwrap allocates nothing
// per packet; it is not safe for concurrent use: run one per goroutine (a
// node runs one per core).
type Unwrapper struct {
	headerUnwrapper
	sprp aez.Cipher
}

// NewUnwrapper returns an Unwrapper for packets of geometry g addressed to key.
func NewUnwrapper(g *Geometry, key *PrivateKey) *Unwrapper {
	return &Unwrapper{headerUnwrapper: newHeaderUnwrapper(g, key)}
}

// Destroy zeroes the unwrapper's copy of its private key (and the last
// hop's derived secrets); the unwrapper must not be used after. A node calls
// it when the key's epoch is over.
func (u *Unwrapper) Destroy() {
	u.key = PrivateKey{}
	u.keys = hopKeys{}
	clear(u.s[:])
}

// Unwrap processes pkt in place (docs/SPEC.md, "Header and unwrapping"). At an
// intermediate hop pkt becomes the packet for res.Commands.NextHop.ID; at the
// final hop res.Payload holds the payload. pkt must be exactly
// g.PacketLength bytes.
func (u *Unwrapper) Unwrap(pkt []byte, res *Result) error {
	res.Payload = nil
	if err := u.unwrapHeader(pkt, res); err != nil {
		return err
	}
	body := pkt[u.g.HeaderLength:]
	u.sprp.SetKey(&u.keys.sprpKey)
	u.sprp.Decipher(body, body, &u.keys.headerIV)
	if res.Commands.NextHop != nil {
		return nil
	}
	if res.Commands.SURBReply != nil {
		res.Payload = body
		return nil
	}
	var z byte
	for _, v := range body[:PayloadTagLength] {
		z |= v
	}
	if z != 0 {
		return ErrInvalidPayload
	}
	res.Payload = body[PayloadTagLength:]
	return nil
}

// Unwrap is a convenience for one packet: it allocates an Unwrapper and a
// Result. Nodes use an Unwrapper.
func Unwrap(g *Geometry, key *PrivateKey, pkt []byte) (*Result, error) {
	res := new(Result)
	err := NewUnwrapper(g, key).Unwrap(pkt, res)
	return res, err
}
