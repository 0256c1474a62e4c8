package sphinx

import (
	"fmt"
	"io"

	"github.com/sottonet/sotto/core/sphinx/internal/aez"
)

// NewPacket makes a forward packet for path carrying payload, which must be
// exactly g.ForwardPayloadLength bytes. rand supplies the ephemeral key and
// the routing-info padding.
func NewPacket(rand io.Reader, g *Geometry, path []PathHop, payload []byte) ([]byte, error) {
	if len(payload) != g.ForwardPayloadLength {
		return nil, fmt.Errorf("%w: payload is %d bytes, want %d", ErrInvalidPath, len(payload), g.ForwardPayloadLength)
	}
	pkt := make([]byte, g.PacketLength)
	st, err := buildHeader(rand, g, path, pkt[:g.HeaderLength], secretsFast)
	if err != nil {
		return nil, err
	}
	body := pkt[g.HeaderLength:]
	copy(body[PayloadTagLength:], payload)
	var c aez.Cipher
	for i := len(st) - 1; i >= 0; i-- {
		c.SetKey(&st[i].keys.sprpKey)
		c.Encipher(body, body, &st[i].keys.headerIV)
	}
	c.Reset()
	return pkt, nil
}
