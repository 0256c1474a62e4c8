package aesbs

import (
	"encoding/binary"
	"math/bits"
)

// AES256 is an AES-256 key expanded to bitsliced round keys, encrypting four
// blocks at a time. The zero value is ready for SetKey. It holds no pointers and
// SetKey and Encrypt4 do not allocate.
type AES256 struct {
	rk [15]Planes
}

// SetKey expands key (FIPS 197, section 5.2) in constant time and slices the 15
// round keys.
func (c *AES256) SetKey(key *[32]byte) {
	var rk [16]Block // the 15 round keys and a zero block, sliced four at a time
	expandKey256(key, (*[15]Block)(rk[:15]))
	for g := 0; g < 16; g += 4 {
		var q Planes
		q.Load((*[4]Block)(rk[g:]))
		for k := range 4 {
			if g+k < 15 {
				c.rk[g+k] = q.replicate(k)
			}
		}
	}
	clear(rk[:])
}

// replicate returns the block in position k of q copied into all four positions:
// what RoundKey returns for that block, for a quarter of the transposes.
func (q *Planes) replicate(k int) (r Planes) {
	const lane0 = 0x1111111111111111 // bit 16r + 4c of every plane: block 0
	for i, x := range q {
		t := x >> k & lane0
		t |= t << 1
		r[i] = t | t<<2
	}
	return r
}

// Encrypt4 encrypts the four blocks x in place: AddRoundKey, 13 full rounds and a
// last round without MixColumns.
func (c *AES256) Encrypt4(x *[4]Block) {
	var q Planes
	q.Load(x)
	q.AddRoundKey(&c.rk[0])
	for r := 1; r < 14; r++ {
		q.Round(&c.rk[r])
	}
	q.FinalRound(&c.rk[14])
	q.Store(x)
}

// Reset wipes the round keys.
func (c *AES256) Reset() {
	clear(c.rk[:])
}

// expandKey256 is the AES-256 key expansion: 60 big-endian words w, round key r
// being w[4r] … w[4r+3]. Every word goes through the bitsliced S-box; the branches
// are on the word index i only, and the round constant is doubled in GF(2^8)
// rather than looked up.
func expandKey256(key *[32]byte, rk *[15]Block) {
	var w [60]uint32
	for i := range 8 {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := 8; i < 60; i++ {
		t := w[i-1]
		switch i % 8 {
		case 0:
			t = subWord(bits.RotateLeft32(t, 8)) ^ rcon<<24
			rcon = rcon<<1 ^ (rcon>>7)*0x11b // public: i/8 ≤ 7, never reduces
		case 4:
			t = subWord(t)
		}
		w[i] = w[i-8] ^ t
	}
	for i := range w {
		binary.BigEndian.PutUint32(rk[i/4][4*(i%4):], w[i])
	}
	clear(w[:])
}

// subWord applies the S-box to each byte of w through the bitsliced circuit. The
// circuit is bitwise, so the planes need not be in the block layout: plane i holds
// bit i of byte b of w at bit 8b, and the other bits are ignored.
func subWord(w uint32) uint32 {
	const lsb = 0x01010101
	var q Planes
	for i := range q {
		q[i] = uint64(w >> i & lsb)
	}
	q.subBytes()
	var s uint32
	for i, x := range q {
		s |= uint32(x) & lsb << i
	}
	return s
}
