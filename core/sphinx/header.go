package sphinx

import (
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"io"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"

	"github.com/sottonet/sotto/core/sphinx/internal/aesctr"
)

// ReplayTagLength is the size of the replay tag, SHA-512/256 of α.
const ReplayTagLength = 32

// Result is what Unwrap found in a packet. A node reuses one Result per
// goroutine; its fields are overwritten by every Unwrap.
type Result struct {
	// ReplayTag identifies the packet for replay detection (the node's job).
	// It is set even when the MAC does not verify; it is zero when the packet
	// was refused before (wrong length or version).
	ReplayTag [ReplayTagLength]byte
	// Commands is this hop's routing commands. Commands.NextHop is nil at the
	// final hop.
	Commands Commands
	// Payload is set at the final hop only and aliases the packet buffer: the
	// message (after the 32 zero tag bytes) for a forward packet, or the whole
	// body, tag included and still encrypted under the SURB's keys, for a
	// SURB reply (Commands.SURBReply != nil); see DecryptSURBPayload.
	Payload []byte
}

// headerUnwrapper holds every buffer a node needs to process headers for one
// key, so unwrapping allocates nothing.
type headerUnwrapper struct {
	g     *Geometry
	key   PrivateKey
	mac   *macer
	sha   hash.Hash
	ctr   aesctr.Stream
	keys  hopKeys
	s     [32]byte
	alpha [32]byte
	blind [32]byte
	tag   [32]byte
	buf   []byte // routing info + one zero block
}

func newHeaderUnwrapper(g *Geometry, key *PrivateKey) headerUnwrapper {
	return headerUnwrapper{
		g:   g,
		key: *key,
		mac: newMacer(),
		sha: sha512.New512_256(),
		buf: make([]byte, g.RoutingInfoLength+g.PerHopRoutingInfoLength),
	}
}

// unwrapHeader runs the header steps of docs/SPEC.md, "Header and
// unwrapping": checks, replay tag, shared secret, MAC, commands and, at a mix,
// the blinded header written in place. The body is left to the caller.
func (u *headerUnwrapper) unwrapHeader(pkt []byte, res *Result) error {
	g := u.g
	res.ReplayTag = [ReplayTagLength]byte{}
	res.Commands.List, res.Commands.NextHop, res.Commands.SURBReply = res.Commands.list[:0], nil, nil
	if len(pkt) != g.PacketLength {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPacket, len(pkt), g.PacketLength)
	}
	if pkt[0] != 0 || pkt[1] != 0 {
		return fmt.Errorf("%w: 0x%02x%02x", ErrInvalidVersion, pkt[0], pkt[1])
	}
	const aOff = versionLength
	riOff := aOff + GroupElementLength
	macOff := riOff + g.RoutingInfoLength
	copy(u.alpha[:], pkt[aOff:riOff])

	u.sha.Reset()
	u.sha.Write(pkt[aOff:riOff])
	u.sha.Sum(res.ReplayTag[:0])

	if !x25519(&u.s, &u.key.b, &u.alpha) {
		return fmt.Errorf("%w: shared secret is zero", ErrInvalidGroupElement)
	}
	u.mac.kdf(&u.keys, &u.s)

	u.mac.setKey(u.keys.macKey[:])
	u.mac.begin()
	u.mac.h.Write(pkt[:macOff])
	u.mac.finish(&u.tag)
	if !equalMAC(u.tag[:], pkt[macOff:macOff+MACLength]) {
		return ErrInvalidMAC
	}

	copy(u.buf, pkt[riOff:macOff])
	clear(u.buf[g.RoutingInfoLength:])
	u.ctr.SetKey(&u.keys.headerKey)
	u.ctr.XORKeyStream(u.buf, u.buf, &u.keys.headerIV)
	if err := res.Commands.parse(u.buf[:g.PerHopRoutingInfoLength]); err != nil {
		return err
	}
	if nh := res.Commands.NextHop; nh != nil {
		blindingScalar(&u.blind, &u.keys.blindSeed)
		if !x25519(&u.alpha, &u.blind, &u.alpha) {
			return fmt.Errorf("%w: blinded element is zero", ErrInvalidGroupElement)
		}
		copy(pkt[aOff:riOff], u.alpha[:])
		copy(pkt[riOff:macOff], u.buf[g.PerHopRoutingInfoLength:])
		copy(pkt[macOff:], nh.MAC[:])
	}
	return nil
}

// PathHop is one hop of a packet's path, as the sender sees it.
type PathHop struct {
	// ID is the hop's node ID; the previous hop's NextNodeHop carries it.
	ID [NodeIDLength]byte
	// PublicKey is the hop's Sphinx key for the current epoch.
	PublicKey *PublicKey
	// Commands are the hop's own routing commands (NodeDelay, Recipient,
	// SURBReply, MailboxDelivery); NewPacket adds the NextNodeHop itself.
	Commands []Command
}

// hopState is what the sender derives for one hop.
type hopState struct {
	keys  hopKeys
	alpha [32]byte // the group element this hop receives
	blind [32]byte
}

type secretsFunc func(m *macer, x *[32]byte, path []PathHop, st []hopState) error

// buildHeader writes the Sphinx header for path into hdr (g.HeaderLength
// bytes) and returns the per-hop keys (docs/SPEC.md, "Making a packet").
func buildHeader(rand io.Reader, g *Geometry, path []PathHop, hdr []byte, secrets secretsFunc) ([]hopState, error) {
	n := len(path)
	if n < 1 || n > g.NrHops {
		return nil, fmt.Errorf("%w: %d hops, want 1..%d", ErrInvalidPath, n, g.NrHops)
	}
	for i := range path {
		if path[i].PublicKey == nil {
			return nil, fmt.Errorf("%w: hop %d has no public key", ErrInvalidPath, i)
		}
	}
	var x [32]byte
	if _, err := io.ReadFull(rand, x[:]); err != nil {
		return nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	m := newMacer()
	st := make([]hopState, n)
	if err := secrets(m, &x, path, st); err != nil {
		return nil, err
	}
	clear(x[:])

	per, riLen := g.PerHopRoutingInfoLength, g.RoutingInfoLength
	streamLen := riLen + per
	// fillers[i] is hop i's filler: 82·(i+1) bytes.
	fillers := make([][]byte, n)
	streams := make([][]byte, n)
	var ctr aesctr.Stream
	defer ctr.Reset()
	for i := range n {
		s := make([]byte, streamLen)
		ctr.SetKey(&st[i].keys.headerKey)
		ctr.XORKeyStream(s, s, &st[i].keys.headerIV)
		streams[i] = s[:streamLen-per*(i+1)]
		f := s[streamLen-per*(i+1):]
		if i > 0 {
			for j, v := range fillers[i-1] {
				f[j] ^= v
			}
		}
		fillers[i] = f
	}

	ri := make([]byte, riLen)
	pad := ri[per*n:]
	if _, err := io.ReadFull(rand, pad); err != nil {
		return nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	var next NextNodeHop
	var macBuf [32]byte
	for i := n - 1; i >= 0; i-- {
		cur := ri[per*i:]
		var nh *NextNodeHop
		if i < n-1 {
			next.ID = path[i+1].ID
			next.MAC = macBuf
			nh = &next
		}
		if err := encodeBlock(cur[:per], path[i].Commands, nh); err != nil {
			return nil, fmt.Errorf("hop %d: %w", i, err)
		}
		for j, v := range streams[i] {
			cur[j] ^= v
		}
		m.setKey(st[i].keys.macKey[:])
		m.begin()
		m.h.Write([]byte{0, 0})
		m.h.Write(st[i].alpha[:])
		m.h.Write(cur)
		if i > 0 {
			m.h.Write(fillers[i-1])
		}
		m.finish(&macBuf)
	}
	hdr[0], hdr[1] = 0, 0
	copy(hdr[versionLength:], st[0].alpha[:])
	copy(hdr[versionLength+GroupElementLength:], ri)
	copy(hdr[versionLength+GroupElementLength+riLen:], macBuf[:])
	return st, nil
}

// secretsFast derives every hop's shared secret and group element with one
// variable-base and one fixed-base multiplication per hop. X25519 clamps its
// scalars to multiples of 8, so the product k = x·b₀·…·bᵢ₋₁ of clamped
// scalars satisfies [k]P = [k/8]([8]P): [8]P has no torsion component, so
// k/8 may be reduced mod ℓ. This gives exactly the bytes of the chain of
// X25519 calls (secretsSlow) for every public key on the curve; a key on the
// twist has no Edwards form, and the whole path then falls back to the ladder.
func secretsFast(m *macer, x *[32]byte, path []PathHop, st []hopState) error {
	for i := range path {
		if path[i].PublicKey.ed == nil {
			return secretsSlow(m, x, path, st)
		}
	}
	acc := clampDiv8(x)
	var eight, t, b edwards25519.Scalar
	if _, err := eight.SetCanonicalBytes(scalarEight[:]); err != nil {
		return fmt.Errorf("sphinx: scalar 8: %w", err)
	}
	var p edwards25519.Point
	alphas := make([]edwards25519.Point, len(path))
	var s, zero [32]byte
	for i := range path {
		p.ScalarMult(acc, path[i].PublicKey.ed)
		copy(s[:], p.BytesMontgomery())
		// s is the shared secret: compare it with zero in constant time (an array ==
		// may return at the first differing byte).
		if subtle.ConstantTimeCompare(s[:], zero[:]) == 1 {
			return fmt.Errorf("%w: shared secret with hop %d is zero", ErrInvalidGroupElement, i)
		}
		t.Multiply(acc, &eight)
		alphas[i].ScalarBaseMult(&t)
		m.kdf(&st[i].keys, &s)
		blindingScalar(&st[i].blind, &st[i].keys.blindSeed)
		if _, err := b.SetBytesWithClamping(st[i].blind[:]); err != nil {
			return fmt.Errorf("sphinx: blinding scalar: %w", err)
		}
		acc.Multiply(acc, &b)
	}
	clear(s[:])
	montgomeryBatch(st, alphas)
	return nil
}

// montgomeryBatch writes the Montgomery u = (Z+Y)/(Z−Y) of every point into
// st[i].alpha with one field inversion for all of them (Montgomery's trick);
// the α are only needed for the MACs, after the loop.
func montgomeryBatch(st []hopState, pts []edwards25519.Point) {
	n := len(pts)
	num := make([]field.Element, n)
	den := make([]field.Element, n)
	acc := make([]field.Element, n)
	var prod field.Element
	prod.One()
	for i := range pts {
		_, y, z, _ := pts[i].ExtendedCoordinates()
		num[i].Add(z, y)
		den[i].Subtract(z, y)
		if den[i].Equal(new(field.Element).Zero()) == 1 { // the identity: cannot batch it
			for j := range pts {
				copy(st[j].alpha[:], pts[j].BytesMontgomery())
			}
			return
		}
		acc[i].Set(&prod)
		prod.Multiply(&prod, &den[i])
	}
	var inv, u field.Element
	inv.Invert(&prod)
	for i := n - 1; i >= 0; i-- {
		var di field.Element
		di.Multiply(&inv, &acc[i]) // 1/den[i]
		inv.Multiply(&inv, &den[i])
		u.Multiply(&num[i], &di)
		copy(st[i].alpha[:], u.Bytes())
	}
}

var scalarEight = [32]byte{8}

// clampDiv8 returns clamp(x)/8 as a scalar; it is below 2^252 < ℓ, so canonical.
func clampDiv8(x *[32]byte) *edwards25519.Scalar {
	var e, d [32]byte
	copy(e[:], x[:])
	e[0] &= 248
	e[31] &= 127
	e[31] |= 64
	for i := range 32 {
		d[i] = e[i] >> 3
		if i < 31 {
			d[i] |= e[i+1] << 5
		}
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(d[:])
	if err != nil {
		panic("sphinx: clamped scalar / 8 not canonical") // cannot happen: d < 2^252
	}
	return s
}

// secretsSlow is Katzenpost's construction: X25519(x, Yᵢ) blinded in turn by
// every earlier hop's blinding scalar, O(hops²) ladders. It is the reference
// the fast path is tested against and the fallback for twist keys.
func secretsSlow(m *macer, x *[32]byte, path []PathHop, st []hopState) error {
	var s [32]byte
	for i := range path {
		if !x25519(&s, x, &path[i].PublicKey.b) {
			return fmt.Errorf("%w: shared secret with hop %d is zero", ErrInvalidGroupElement, i)
		}
		for j := range i {
			if !x25519(&s, &st[j].blind, &s) {
				return fmt.Errorf("%w: blinded secret for hop %d is zero", ErrInvalidGroupElement, i)
			}
		}
		if i == 0 {
			x25519(&st[0].alpha, x, &basePoint)
		} else if !x25519(&st[i].alpha, &st[i-1].blind, &st[i-1].alpha) {
			return fmt.Errorf("%w: group element for hop %d is zero", ErrInvalidGroupElement, i)
		}
		m.kdf(&st[i].keys, &s)
		blindingScalar(&st[i].blind, &st[i].keys.blindSeed)
	}
	clear(s[:])
	return nil
}
