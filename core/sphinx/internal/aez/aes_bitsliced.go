package aez

import "github.com/sottonet/sotto/core/sphinx/internal/aesbs"

// Portable AES rounds in constant time: AEZ's AES4 and AES10 on up to four blocks at
// once, from the bitsliced AESENC round of internal/aesbs (Boyar–Peralta S-box, four
// blocks in eight 64-bit bit planes; no table, no secret-dependent memory index or
// branch), which the Sphinx header's AES-256-CTR shares.
//
// This is the path of every build without the amd64 assembly: other architectures,
// GOOS=js GOARCH=wasm (browsers), -tags purego, and amd64 without AES-NI.
//
// AEZ only needs the round function with round keys it is given (its AES4 and AES10
// are rounds of AESENC under I, J, L and zero), so it uses no key schedule.

// noKey is the zero round key (AES4's last round).
var noKey aesbs.Planes

// aes4Bitsliced sets each of the four blocks x to AES4 of itself: round keys
// (0, J, I, L, 0), the round-0 key being the caller's job (it is zero).
func (c *Cipher) aes4Bitsliced(x *[4]block) {
	var q aesbs.Planes
	q.Load(x)
	q.Round(&c.bk[1])
	q.Round(&c.bk[0])
	q.Round(&c.bk[2])
	q.Round(&noKey)
	q.Store(x)
}

// aes10Bitsliced sets each of the four blocks x to AES10 of itself: round keys
// (0, I, J, L, I, J, L, I, J, L, I).
func (c *Cipher) aes10Bitsliced(x *[4]block) {
	var q aesbs.Planes
	q.Load(x)
	for r := range 10 {
		q.Round(&c.bk[r%3])
	}
	q.Store(x)
}
