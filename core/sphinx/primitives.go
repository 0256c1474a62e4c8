package sphinx

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"math/bits"
)

// Sizes of the Katzenpost X25519 parameterization (see docs/SPEC.md).
const (
	GroupElementLength = 32
	MACLength          = 32
	PayloadTagLength   = 32
	NodeIDLength       = 32
	RecipientIDLength  = 32
	SURBIDLength       = 16
	SPRPKeyLength      = 48
	SPRPIVLength       = 16
	versionLength      = 2

	kdfOutputLength = 160
	kdfInfo         = "katzenpost-kdf-v0-hkdf-sha256"
)

// hopKeys is the split of the 160-byte KDF output, in wire order.
type hopKeys struct {
	macKey    [32]byte
	headerKey [32]byte
	headerIV  [16]byte
	sprpKey   [48]byte
	blindSeed [32]byte
}

// macer is HMAC-SHA256 over one reusable sha256 state, so a node computes
// MACs and the KDF without allocating (crypto/hmac.New allocates per key).
type macer struct {
	h          hash.Hash
	ipad, opad [64]byte
	inner      [32]byte
	t          [32]byte
	tb         [1]byte
}

func newMacer() *macer { return &macer{h: sha256.New()} }

func (m *macer) setKey(key []byte) { // key is at most 64 bytes here (always 32)
	for i := range m.ipad {
		m.ipad[i], m.opad[i] = 0x36, 0x5c
	}
	for i, k := range key {
		m.ipad[i] ^= k
		m.opad[i] ^= k
	}
}

func (m *macer) begin() {
	m.h.Reset()
	m.h.Write(m.ipad[:])
}

func (m *macer) finish(out *[32]byte) {
	m.h.Sum(m.inner[:0])
	m.h.Reset()
	m.h.Write(m.opad[:])
	m.h.Write(m.inner[:])
	m.h.Sum(out[:0])
}

// kdf is HKDF-SHA256 Expand only (RFC 5869 step 2, no Extract) with the
// shared secret as the PRK, as Katzenpost does.
func (m *macer) kdf(k *hopKeys, secret *[32]byte) {
	m.setKey(secret[:])
	var out [kdfOutputLength]byte
	var prev []byte
	for i, off := byte(1), 0; off < kdfOutputLength; i, off = i+1, off+32 {
		m.begin()
		m.h.Write(prev)
		m.h.Write(kdfInfoBytes)
		m.tb[0] = i
		m.h.Write(m.tb[:])
		m.finish(&m.t)
		copy(out[off:], m.t[:])
		prev = m.t[:]
	}
	copy(k.macKey[:], out[0:32])
	copy(k.headerKey[:], out[32:64])
	copy(k.headerIV[:], out[64:80])
	copy(k.sprpKey[:], out[80:128])
	copy(k.blindSeed[:], out[128:160])
	clear(out[:])
}

var kdfInfoBytes = []byte(kdfInfo)

func equalMAC(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// blindingScalar returns the first 32 bytes of the ChaCha20 keystream under
// the blinding seed with an all-zero nonce and counter, which Katzenpost uses
// as the X25519 blinding scalar. Written out here so it allocates nothing.
func blindingScalar(out *[32]byte, seed *[32]byte) {
	var s [16]uint32
	s[0], s[1], s[2], s[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	for i := range 8 {
		s[4+i] = binary.LittleEndian.Uint32(seed[4*i:])
	}
	x := s
	qr := func(a, b, c, d int) {
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 16)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 12)
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 8)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 7)
	}
	for range 10 {
		qr(0, 4, 8, 12)
		qr(1, 5, 9, 13)
		qr(2, 6, 10, 14)
		qr(3, 7, 11, 15)
		qr(0, 5, 10, 15)
		qr(1, 6, 11, 12)
		qr(2, 7, 8, 13)
		qr(3, 4, 9, 14)
	}
	for i := range 8 {
		binary.LittleEndian.PutUint32(out[4*i:], x[i]+s[i])
	}
}
