// Package aesbs is AES in constant time without AES instructions: the round
// function on four blocks at once, bitsliced, and AES-256 (key schedule and
// block encryption) built from it. Sotto's AEZ (internal/aez, the Sphinx
// payload's SPRP) uses the AESENC round with its own round keys; the Sphinx
// header's AES-256-CTR (internal/aesctr) uses AES256. Both use it wherever the
// amd64 AES-NI assembly does not run: other architectures, GOOS=js GOARCH=wasm
// (browsers), -tags purego, and amd64 without AES-NI.
//
// A table-based AES (T-tables or an S-box array indexed by state bytes, as Go's
// portable crypto/aes is) makes the addresses it reads depend on the key and the
// data, which a cache-timing attacker sees. This code reads no memory at a
// secret-dependent address and takes no secret-dependent branch: every step is a
// fixed sequence of AND, XOR, NOT, shifts and rotations by constant amounts over
// whole 64-bit words, whatever the values. (Go compiles these to straight-line
// integer instructions on every architecture; 64-bit integer arithmetic is native
// in WebAssembly.) The key schedule sends its words through the same S-box
// circuit; its only branches are on the word index and its round constants are
// computed, not looked up.
//
// The technique is bitslicing as applied to AES by Käsper and Schwabe ("Faster and
// Timing-Attack Resistant AES-GCM", CHES 2009) and Könighofer ("A Fast and
// Cache-Timing Resistant Implementation of the AES", CT-RSA 2008): the state is held
// as eight bit planes, plane i holding bit i of every byte, so that SubBytes is a
// Boolean circuit evaluated on all bytes at once, and ShiftRows and MixColumns are
// rotations of the planes. The S-box circuit is Boyar and Peralta's depth-16 one,
// 128 gates (34 AND, 94 XOR/XNOR), written out here from its published straight-line
// program: J. Boyar, R. Peralta, "A depth-16 circuit for the AES S-box", IFIP SEC 2012
// (AICT 376, doi:10.1007/978-3-642-30436-1_24; IACR ePrint 2011/332). The tests check
// it against the S-box on all 256 inputs, and AES-256 against crypto/aes.
//
// Layout (this package's own): a plane is a uint64 whose bit 16r + 4c + k is bit i
// of byte (row r, column c) of block k, that is of byte 4c + r of block k. So a row
// is a 16-bit lane, ShiftRows rotates lane r by r columns (4r bits), and the
// MixColumns neighbour "row r+1" is the whole plane rotated by 16 bits. Going to and
// from the planes is an 8×8 bit-matrix transpose (swapmove) after spreading each
// block's column words so that the transpose lands every byte on its position.
package aesbs

import (
	"encoding/binary"
	"math/bits"
)

// Block is one AES block (or a 128-bit round key) in its usual byte order.
type Block = [16]byte

// Planes is up to four AES states (or one round key replicated four times) in
// bitsliced form.
type Planes [8]uint64

// swapmove exchanges the bits of a selected by mask<<n with the bits of b selected
// by mask: one step of a bit-matrix transpose.
func swapmove(a, b, mask uint64, n uint) (uint64, uint64) {
	t := (a>>n ^ b) & mask
	return a ^ t<<n, b ^ t
}

// transpose transposes, in every byte lane, the 8×8 bit matrix whose row j is that
// byte of q[j]: afterwards bit b of byte lane l of q[j] is what bit j of byte lane l
// of q[b] was. It is its own inverse.
func (q *Planes) transpose() {
	const m1, m2, m4 = 0x5555555555555555, 0x3333333333333333, 0x0f0f0f0f0f0f0f0f
	q0, q1, q2, q3, q4, q5, q6, q7 := q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
	q0, q1 = swapmove(q0, q1, m1, 1)
	q2, q3 = swapmove(q2, q3, m1, 1)
	q4, q5 = swapmove(q4, q5, m1, 1)
	q6, q7 = swapmove(q6, q7, m1, 1)
	q0, q2 = swapmove(q0, q2, m2, 2)
	q1, q3 = swapmove(q1, q3, m2, 2)
	q4, q6 = swapmove(q4, q6, m2, 2)
	q5, q7 = swapmove(q5, q7, m2, 2)
	q0, q4 = swapmove(q0, q4, m4, 4)
	q1, q5 = swapmove(q1, q5, m4, 4)
	q2, q6 = swapmove(q2, q6, m4, 4)
	q3, q7 = swapmove(q3, q7, m4, 4)
	*q = Planes{q0, q1, q2, q3, q4, q5, q6, q7}
}

// spread moves byte r of the 32-bit x to byte 2r of the result.
func spread(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	return (v | v<<8) & 0x00ff00ff00ff00ff
}

// unspread is the inverse of spread: byte 2r of v to byte r of the result.
func unspread(v uint64) uint32 {
	v &= 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	return uint32(v | v>>16)
}

// Load sets q to the bitsliced form of the four blocks x.
//
// Before the transpose, byte l of q[j] must hold the state byte whose position is
// 8l + j. For position p = 16r + 4c + k that is j = 4(c mod 2) + k and
// l = 2r + ⌊c/2⌋: q[4h+k] interleaves column h (even bytes) and column h+2 (odd
// bytes) of block k.
func (q *Planes) Load(x *[4]Block) {
	for k := range 4 {
		for h := range 2 {
			lo := binary.LittleEndian.Uint32(x[k][4*h:])
			hi := binary.LittleEndian.Uint32(x[k][4*h+8:])
			q[4*h+k] = spread(lo) | spread(hi)<<8
		}
	}
	q.transpose()
}

// Store writes the four blocks of q (which it leaves transposed back) to x.
func (q *Planes) Store(x *[4]Block) {
	q.transpose()
	for k := range 4 {
		for h := range 2 {
			w := q[4*h+k]
			binary.LittleEndian.PutUint32(x[k][4*h:], unspread(w))
			binary.LittleEndian.PutUint32(x[k][4*h+8:], unspread(w>>8))
		}
	}
}

// RoundKey returns the bitsliced form of the round key k, replicated in all four
// block positions.
func RoundKey(k *Block) Planes {
	var q Planes
	lo := spread(binary.LittleEndian.Uint32(k[0:])) | spread(binary.LittleEndian.Uint32(k[8:]))<<8
	hi := spread(binary.LittleEndian.Uint32(k[4:])) | spread(binary.LittleEndian.Uint32(k[12:]))<<8
	for j := range 4 {
		q[j], q[4+j] = lo, hi
	}
	q.transpose()
	return q
}

// subBytes applies the AES S-box to every byte of q with the Boyar–Peralta circuit:
// a linear top layer (T), a nonlinear middle (M, the inversion in GF(2^8) through a
// tower of subfields), a linear bottom layer (L) and the outputs (S, the NOTs are the
// circuit's XNORs). U0 and S0 are the most significant bits.
func (q *Planes) subBytes() {
	u0, u1, u2, u3 := q[7], q[6], q[5], q[4]
	u4, u5, u6, u7 := q[3], q[2], q[1], q[0]

	t1 := u0 ^ u3
	t2 := u0 ^ u5
	t3 := u0 ^ u6
	t4 := u3 ^ u5
	t5 := u4 ^ u6
	t6 := t1 ^ t5
	t7 := u1 ^ u2
	t8 := u7 ^ t6
	t9 := u7 ^ t7
	t10 := t6 ^ t7
	t11 := u1 ^ u5
	t12 := u2 ^ u5
	t13 := t3 ^ t4
	t14 := t6 ^ t11
	t15 := t5 ^ t11
	t16 := t5 ^ t12
	t17 := t9 ^ t16
	t18 := u3 ^ u7
	t19 := t7 ^ t18
	t20 := t1 ^ t19
	t21 := u6 ^ u7
	t22 := t7 ^ t21
	t23 := t2 ^ t22
	t24 := t2 ^ t10
	t25 := t20 ^ t17
	t26 := t3 ^ t16
	t27 := t1 ^ t12

	m1 := t13 & t6
	m2 := t23 & t8
	m3 := t14 ^ m1
	m4 := t19 & u7
	m5 := m4 ^ m1
	m6 := t3 & t16
	m7 := t22 & t9
	m8 := t26 ^ m6
	m9 := t20 & t17
	m10 := m9 ^ m6
	m11 := t1 & t15
	m12 := t4 & t27
	m13 := m12 ^ m11
	m14 := t2 & t10
	m15 := m14 ^ m11
	m16 := m3 ^ m2
	m17 := m5 ^ t24
	m18 := m8 ^ m7
	m19 := m10 ^ m15
	m20 := m16 ^ m13
	m21 := m17 ^ m15
	m22 := m18 ^ m13
	m23 := m19 ^ t25
	m24 := m22 ^ m23
	m25 := m22 & m20
	m26 := m21 ^ m25
	m27 := m20 ^ m21
	m28 := m23 ^ m25
	m29 := m28 & m27
	m30 := m26 & m24
	m31 := m20 & m23
	m32 := m27 & m31
	m33 := m27 ^ m25
	m34 := m21 & m22
	m35 := m24 & m34
	m36 := m24 ^ m25
	m37 := m21 ^ m29
	m38 := m32 ^ m33
	m39 := m23 ^ m30
	m40 := m35 ^ m36
	m41 := m38 ^ m40
	m42 := m37 ^ m39
	m43 := m37 ^ m38
	m44 := m39 ^ m40
	m45 := m42 ^ m41
	m46 := m44 & t6
	m47 := m40 & t8
	m48 := m39 & u7
	m49 := m43 & t16
	m50 := m38 & t9
	m51 := m37 & t17
	m52 := m42 & t15
	m53 := m45 & t27
	m54 := m41 & t10
	m55 := m44 & t13
	m56 := m40 & t23
	m57 := m39 & t19
	m58 := m43 & t3
	m59 := m38 & t22
	m60 := m37 & t20
	m61 := m42 & t1
	m62 := m45 & t4
	m63 := m41 & t2

	l0 := m61 ^ m62
	l1 := m50 ^ m56
	l2 := m46 ^ m48
	l3 := m47 ^ m55
	l4 := m54 ^ m58
	l5 := m49 ^ m61
	l6 := m62 ^ l5
	l7 := m46 ^ l3
	l8 := m51 ^ m59
	l9 := m52 ^ m53
	l10 := m53 ^ l4
	l11 := m60 ^ l2
	l12 := m48 ^ m51
	l13 := m50 ^ l0
	l14 := m52 ^ m61
	l15 := m55 ^ l1
	l16 := m56 ^ l0
	l17 := m57 ^ l1
	l18 := m58 ^ l8
	l19 := m63 ^ l4
	l20 := l0 ^ l1
	l21 := l1 ^ l7
	l22 := l3 ^ l12
	l23 := l18 ^ l2
	l24 := l15 ^ l9
	l25 := l6 ^ l10
	l26 := l7 ^ l9
	l27 := l8 ^ l10
	l28 := l11 ^ l14
	l29 := l11 ^ l17

	q[7] = l6 ^ l24
	q[6] = ^(l16 ^ l26)
	q[5] = ^(l19 ^ l28)
	q[4] = l6 ^ l21
	q[3] = l20 ^ l22
	q[2] = l25 ^ l29
	q[1] = ^(l13 ^ l27)
	q[0] = ^(l6 ^ l23)
}

// shiftRow1 is ShiftRows on one plane: row r (the 16-bit lane at bit 16r) rotates
// left by r columns, so the byte at column c becomes the one at column c + r mod 4.
func shiftRow1(x uint64) uint64 {
	return x&0x000000000000ffff |
		x>>4&0x000000000fff0000 | x<<12&0x00000000f0000000 |
		x>>8&0x000000ff00000000 | x<<8&0x0000ff0000000000 |
		x<<4&0xfff0000000000000 | x>>12&0x000f000000000000
}

// shiftMixAdd is ShiftRows, MixColumns and AddRoundKey(k) in one pass over the planes.
// MixColumns multiplies every column by the circulant matrix (2 3 1 1):
// b_r = 2·a_r ⊕ 3·a_{r+1} ⊕ a_{r+2} ⊕ a_{r+3} = 2·(a_r ⊕ a_{r+1}) ⊕ a_{r+1} ⊕ (a_{r+2} ⊕ a_{r+3}),
// where a_{r+1} is the plane rotated by one row (16 bits), a_{r+2} ⊕ a_{r+3} is
// a_r ⊕ a_{r+1} rotated by two rows, and 2· (xtime) moves plane i to plane i+1 and
// folds plane 7 into planes 0, 1, 3 and 4 (x^8 = x^4 + x^3 + x + 1).
func (q *Planes) shiftMixAdd(k *Planes) {
	a0, a1, a2, a3 := shiftRow1(q[0]), shiftRow1(q[1]), shiftRow1(q[2]), shiftRow1(q[3])
	a4, a5, a6, a7 := shiftRow1(q[4]), shiftRow1(q[5]), shiftRow1(q[6]), shiftRow1(q[7])
	r0, r1, r2, r3 := bits.RotateLeft64(a0, -16), bits.RotateLeft64(a1, -16), bits.RotateLeft64(a2, -16), bits.RotateLeft64(a3, -16)
	r4, r5, r6, r7 := bits.RotateLeft64(a4, -16), bits.RotateLeft64(a5, -16), bits.RotateLeft64(a6, -16), bits.RotateLeft64(a7, -16)
	t0, t1, t2, t3 := a0^r0, a1^r1, a2^r2, a3^r3
	t4, t5, t6, t7 := a4^r4, a5^r5, a6^r6, a7^r7
	q[0] = t7 ^ r0 ^ bits.RotateLeft64(t0, 32) ^ k[0]
	q[1] = t0 ^ t7 ^ r1 ^ bits.RotateLeft64(t1, 32) ^ k[1]
	q[2] = t1 ^ r2 ^ bits.RotateLeft64(t2, 32) ^ k[2]
	q[3] = t2 ^ t7 ^ r3 ^ bits.RotateLeft64(t3, 32) ^ k[3]
	q[4] = t3 ^ t7 ^ r4 ^ bits.RotateLeft64(t4, 32) ^ k[4]
	q[5] = t4 ^ r5 ^ bits.RotateLeft64(t5, 32) ^ k[5]
	q[6] = t5 ^ r6 ^ bits.RotateLeft64(t6, 32) ^ k[6]
	q[7] = t6 ^ r7 ^ bits.RotateLeft64(t7, 32) ^ k[7]
}

// Round is one AESENC round under k: SubBytes, ShiftRows, MixColumns, AddRoundKey.
func (q *Planes) Round(k *Planes) {
	q.subBytes()
	q.shiftMixAdd(k)
}

// FinalRound is AES's last round (AESENCLAST) under k: SubBytes, ShiftRows,
// AddRoundKey, without MixColumns.
func (q *Planes) FinalRound(k *Planes) {
	q.subBytes()
	for i, x := range q {
		q[i] = shiftRow1(x) ^ k[i]
	}
}

// AddRoundKey XORs k into q.
func (q *Planes) AddRoundKey(k *Planes) {
	for i := range q {
		q[i] ^= k[i]
	}
}
