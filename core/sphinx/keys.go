package sphinx

import (
	"crypto/subtle"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// KeySize is the size of an encoded X25519 private or public key.
const KeySize = 32

// PrivateKey is a node's X25519 Sphinx key. It is stored as the 32 raw bytes
// it was made from (not pre-clamped, as Katzenpost stores them); X25519 clamps
// when the key is used.
type PrivateKey struct {
	b   [KeySize]byte
	pub PublicKey
}

// PublicKey is an X25519 public key (the u-coordinate of a point).
// It caches the point in Edwards form, multiplied by the cofactor, for the
// sender's fast path.
type PublicKey struct {
	b  [KeySize]byte
	ed *edwards25519.Point // [8]P, or nil if the key is not on the curve (twist) or is u = -1
}

// GenerateKey returns a fresh private key read from rand.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	return NewPrivateKey(b[:])
}

// NewPrivateKey parses a 32-byte private key.
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrInvalidKey, len(b), KeySize)
	}
	k := new(PrivateKey)
	copy(k.b[:], b)
	var pub [32]byte
	if !x25519(&pub, &k.b, &basePoint) {
		return nil, fmt.Errorf("%w: private key gives the identity", ErrInvalidKey)
	}
	k.pub.setBytes(pub)
	return k, nil
}

// Bytes returns a copy of the private key's encoding.
func (k *PrivateKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// PublicKey returns the matching public key X25519(k, 9).
func (k *PrivateKey) PublicKey() *PublicKey { return &k.pub }

// Equal reports whether two private keys are the same, in constant time.
func (k *PrivateKey) Equal(o *PrivateKey) bool {
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// NewPublicKey parses a 32-byte public key. All-zero keys are refused; keys
// that are not on the curve (twist points) are accepted, because X25519
// accepts them, and are handled by the sender's slow path.
func NewPublicKey(b []byte) (*PublicKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalidKey, len(b), KeySize)
	}
	var a [32]byte
	copy(a[:], b)
	var zero [32]byte
	if a == zero {
		return nil, fmt.Errorf("%w: all-zero public key", ErrInvalidGroupElement)
	}
	k := new(PublicKey)
	k.setBytes(a)
	return k, nil
}

// Bytes returns a copy of the public key's encoding.
func (k *PublicKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Equal reports whether two public keys have the same encoding.
func (k *PublicKey) Equal(o *PublicKey) bool { return k.b == o.b }

func (k *PublicKey) setBytes(b [32]byte) {
	k.b = b
	k.ed = montgomeryToEdwards8(&b)
}

// montgomeryToEdwards8 maps the Montgomery u-coordinate to an Edwards point P
// (either sign of x: X25519 only sees ±P) and returns [8]P, which clears any
// torsion component. It returns nil when u has no point on the curve (a twist
// point) or is -1, which has no Edwards image; callers then fall back to the
// Montgomery ladder.
func montgomeryToEdwards8(u *[32]byte) *edwards25519.Point {
	var fu, num, den, y field.Element
	fu.SetBytes(u[:])
	var one field.Element
	one.One()
	num.Subtract(&fu, &one)
	den.Add(&fu, &one)
	if den.Equal(new(field.Element).Zero()) == 1 {
		return nil
	}
	y.Multiply(&num, den.Invert(&den))
	p, err := new(edwards25519.Point).SetBytes(y.Bytes())
	if err != nil {
		return nil
	}
	return p.MultByCofactor(p)
}
