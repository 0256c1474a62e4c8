package sphinx

import (
	"fmt"
	"io"

	"github.com/sottonet/sotto/core/sphinx/internal/aez"
)

// SURBKeysEntryLength is one entry of a SURB's decryption keys: SPRP key ‖ IV.
const SURBKeysEntryLength = SPRPKeyLength + SPRPIVLength

// NewSURB makes a single-use reply block for path, whose final hop's
// commands must include a SURBReply (and say where the reply goes:
// Recipient or MailboxDelivery). It returns the SURB (g.SURBLength bytes) to
// hand out and the keys its creator keeps to decrypt the reply
// (64 × (len(path)+1) bytes).
func NewSURB(rand io.Reader, g *Geometry, path []PathHop) (surb, keys []byte, err error) {
	if len(path) == 0 {
		return nil, nil, fmt.Errorf("%w: empty path", ErrInvalidPath)
	}
	hasReply := false
	for _, c := range path[len(path)-1].Commands {
		if _, ok := c.(*SURBReply); ok {
			hasReply = true
		}
	}
	if !hasReply {
		return nil, nil, fmt.Errorf("%w: a SURB's final hop needs a SURBReply command", ErrInvalidPath)
	}
	surb = make([]byte, g.SURBLength)
	fresh := surb[g.HeaderLength+NodeIDLength:]
	if _, err := io.ReadFull(rand, fresh); err != nil {
		return nil, nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	st, err := buildHeader(rand, g, path, surb[:g.HeaderLength], secretsFast)
	if err != nil {
		return nil, nil, err
	}
	copy(surb[g.HeaderLength:], path[0].ID[:])
	keys = make([]byte, 0, SURBKeysEntryLength*(len(path)+1))
	for i := len(st) - 1; i >= 0; i-- {
		keys = append(keys, st[i].keys.sprpKey[:]...)
		keys = append(keys, st[i].keys.headerIV[:]...)
	}
	keys = append(keys, fresh...)
	return surb, keys, nil
}

// NewPacketFromSURB makes the reply packet for a SURB: it returns the packet
// and the node ID of its first hop, where the replier sends it. payload must
// be exactly g.ForwardPayloadLength bytes.
func NewPacketFromSURB(g *Geometry, surb, payload []byte) (pkt []byte, firstHop [NodeIDLength]byte, err error) {
	if len(surb) != g.SURBLength {
		return nil, firstHop, fmt.Errorf("%w: SURB is %d bytes, want %d", ErrInvalidPacket, len(surb), g.SURBLength)
	}
	if len(payload) != g.ForwardPayloadLength {
		return nil, firstHop, fmt.Errorf("%w: payload is %d bytes, want %d", ErrInvalidPath, len(payload), g.ForwardPayloadLength)
	}
	copy(firstHop[:], surb[g.HeaderLength:])
	var key [SPRPKeyLength]byte
	var iv [SPRPIVLength]byte
	off := g.HeaderLength + NodeIDLength
	copy(key[:], surb[off:])
	copy(iv[:], surb[off+SPRPKeyLength:])

	pkt = make([]byte, g.PacketLength)
	copy(pkt, surb[:g.HeaderLength])
	body := pkt[g.HeaderLength:]
	copy(body[PayloadTagLength:], payload)
	var c aez.Cipher
	c.SetKey(&key)
	c.Encipher(body, body, &iv)
	c.Reset()
	return pkt, firstHop, nil
}

// DecryptSURBPayload recovers the reply payload from the body the final hop
// returned for a SURB reply (Result.Payload), with the keys from NewSURB. It
// works in place: body is overwritten, and the result aliases it.
func DecryptSURBPayload(body, keys []byte) ([]byte, error) {
	if len(keys) == 0 || len(keys)%SURBKeysEntryLength != 0 {
		return nil, fmt.Errorf("%w: SURB keys are %d bytes, want a nonzero multiple of %d", ErrInvalidKey, len(keys), SURBKeysEntryLength)
	}
	if len(body) < PayloadTagLength {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrInvalidPayload, len(body))
	}
	var c aez.Cipher
	defer c.Reset()
	var key [SPRPKeyLength]byte
	var iv [SPRPIVLength]byte
	for off := 0; off < len(keys); off += SURBKeysEntryLength {
		copy(key[:], keys[off:])
		copy(iv[:], keys[off+SPRPKeyLength:])
		c.SetKey(&key)
		if off+SURBKeysEntryLength < len(keys) {
			c.Encipher(body, body, &iv) // undo the hops' deciphering, last hop first
		} else {
			c.Decipher(body, body, &iv)
		}
	}
	var z byte
	for _, v := range body[:PayloadTagLength] {
		z |= v
	}
	if z != 0 {
		return nil, ErrInvalidPayload
	}
	return body[PayloadTagLength:], nil
}
