package sphinx

import (
	"crypto/subtle"

	"filippo.io/edwards25519/field"
)

// x25519 computes the RFC 7748 function X25519(scalar, u) into out with a
// constant-time Montgomery ladder on filippo.io/edwards25519/field, which has
// assembly for multiplication and squaring on amd64. Unlike crypto/ecdh it
// allocates nothing, so a node can run one per packet. It reports false for an
// all-zero result (a low-order input), which callers must reject.
func x25519(out, scalar, u *[32]byte) bool {
	var e [32]byte
	copy(e[:], scalar[:])
	e[0] &= 248
	e[31] &= 127
	e[31] |= 64

	var x1, x2, z2, x3, z3, tmp0, tmp1 field.Element
	x1.SetBytes(u[:]) // ignores the top bit and accepts non-canonical values, as RFC 7748 asks
	x2.One()
	x3.Set(&x1)
	z3.One()

	swap := 0
	for pos := 254; pos >= 0; pos-- {
		b := int(e[pos/8]>>uint(pos&7)) & 1
		swap ^= b
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = b

		tmp0.Subtract(&x3, &z3)
		tmp1.Subtract(&x2, &z2)
		x2.Add(&x2, &z2)
		z2.Add(&x3, &z3)
		z3.Multiply(&tmp0, &x2)
		z2.Multiply(&z2, &tmp1)
		tmp0.Square(&tmp1)
		tmp1.Square(&x2)
		x3.Add(&z3, &z2)
		z2.Subtract(&z3, &z2)
		x2.Multiply(&tmp1, &tmp0)
		tmp1.Subtract(&tmp1, &tmp0)
		z2.Square(&z2)
		z3.Mult32(&tmp1, 121666)
		x3.Square(&x3)
		tmp0.Add(&tmp0, &z3)
		z3.Multiply(&x1, &z2)
		z2.Multiply(&tmp1, &tmp0)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(out[:], x2.Bytes())
	var zero [32]byte
	return subtle.ConstantTimeCompare(out[:], zero[:]) == 0
}

// basePoint is the u-coordinate 9 of the X25519 base point.
var basePoint = [32]byte{9}
