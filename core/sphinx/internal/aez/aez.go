// Package aez implements AEZ v5 (Hoang, Krovetz, Rogaway, "AEZ v5: Authenticated
// Encryption by Enciphering", 2017), written from the specification.
//
// Sotto uses it as the wide-block SPRP of the Sphinx payload: Cipher.Encipher and
// Cipher.Decipher are AEZ Encrypt/Decrypt with tau = 0 and an empty associated-data
// vector, keyed by the 48-byte SPRP key of a hop and tweaked by the hop's 16-byte
// header IV (see docs/SPEC.md and core/sphinx). Encrypt, Decrypt and Extract expose the
// general AEZ v5 scheme so that the published test vectors can be checked.
//
// Constant time: on amd64 with AES-NI (the default there, unless built with
// -tags purego) every AES round is an AESENC instruction; everywhere else (other
// architectures, GOOS=js GOARCH=wasm, -tags purego, amd64 without AES-NI) the rounds
// are bitsliced (aes_bitsliced.go on internal/aesbs: no table, no secret-dependent
// memory index or branch). The modes around them index and branch only on lengths and public
// constants, so both paths run in constant time.
//
// Speed: see docs/BENCHMARKS.md, "AEZ without AES instructions". Encipher, Decipher
// and SetKey do not allocate.
//
// Layout: aez.go holds the modes (AEZ-hash, AEZ-prf, AEZ-core, AEZ-tiny) written from
// the spec's pseudocode; aes_amd64.s the AES4/AES10 rounds with AESENC; aes_bitsliced.go
// the portable rounds (the bitsliced AESENC of internal/aesbs), four blocks at a time,
// which AEZ-core's two passes batch. The published vectors are checked against both
// paths, and the portable rounds against the former table-based ones
// (aes_table_test.go).
package aez

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/blake2b"

	"github.com/sottonet/sotto/core/sphinx/internal/aesbs"
)

const (
	// KeySize is the size of an AEZ key after Extract (I ‖ J ‖ L).
	KeySize = 48
	// NonceSize is the nonce size Sphinx uses.
	NonceSize = 16

	blockSize = 16
)

// ErrAuth is returned by Decrypt when the ciphertext does not authenticate.
var ErrAuth = errors.New("aez: message authentication failed")

type block = [blockSize]byte

// Cipher holds the expanded key state for one 48-byte key. The zero value is not
// usable; call SetKey. It holds no pointers and can be reused and copied.
type Cipher struct {
	keys [3]block        // I, J, L: the AES round keys
	lm   [8]block        // 0·L … 7·L
	j2   block           // 2·J
	bk   [3]aesbs.Planes // I, J, L bitsliced, set only when the portable rounds run
}

// SetKey expands key. It does not allocate.
func (c *Cipher) SetKey(key *[KeySize]byte) {
	copy(c.keys[0][:], key[0:16])
	copy(c.keys[1][:], key[16:32])
	copy(c.keys[2][:], key[32:48])
	c.lm[0] = block{}
	c.lm[1] = c.keys[2]
	for i := 2; i < 8; i++ {
		if i%2 == 0 {
			c.lm[i] = double(&c.lm[i/2])
		} else {
			xor16(&c.lm[i], &c.lm[i-1], &c.lm[1])
		}
	}
	c.j2 = double(&c.keys[1])
	if !useAsm { // AES-NI reads c.keys; only the bitsliced rounds need c.bk
		c.bitsliceKeys()
	}
}

// bitsliceKeys sets c.bk from c.keys.
func (c *Cipher) bitsliceKeys() {
	for k := range 3 {
		c.bk[k] = aesbs.RoundKey(&c.keys[k])
	}
}

// Reset zeroes the key material.
func (c *Cipher) Reset() {
	*c = Cipher{}
}

// Encipher is AEZ v5 Encrypt with tau = 0 and no associated data: a length-preserving
// tweakable wide-block permutation of src under nonce. dst and src must have the same
// length (it panics otherwise, as crypto/cipher does) and must either be the same
// slice or not overlap.
func (c *Cipher) Encipher(dst, src []byte, nonce *[NonceSize]byte) {
	c.crypt(dst, src, nonce, false)
}

// Decipher inverts Encipher.
func (c *Cipher) Decipher(dst, src []byte, nonce *[NonceSize]byte) {
	c.crypt(dst, src, nonce, true)
}

func (c *Cipher) crypt(dst, src []byte, nonce *[NonceSize]byte, inverse bool) {
	if len(dst) != len(src) {
		panic("aez: dst and src lengths differ")
	}
	if len(src) == 0 {
		return
	}
	delta := c.hash(0, nonce[:], nil)
	c.encipher(&delta, dst, src, inverse)
}

// Extract maps a key of any length to a 48-byte AEZ key: the identity for 48-byte
// keys, BLAKE2b-384 otherwise.
func Extract(key []byte) [KeySize]byte {
	var out [KeySize]byte
	if len(key) == KeySize {
		copy(out[:], key)
		return out
	}
	sum := blake2b.Sum384(key)
	copy(out[:], sum[:])
	return out
}

func newCipher(key []byte) *Cipher {
	k := Extract(key)
	c := new(Cipher)
	c.SetKey(&k)
	return c
}

// Encrypt is AEZ v5 encryption of plaintext with nonce, the associated-data vector ad
// (nil means zero elements, which differs from one empty element) and tau bytes of
// authenticator. The result is len(plaintext)+tau bytes. It panics if tau < 0.
func Encrypt(key, nonce []byte, ad [][]byte, tau int, plaintext []byte) []byte {
	if tau < 0 {
		panic("aez: negative tau")
	}
	c := newCipher(key)
	defer c.Reset()
	delta := c.hash(8*tau, nonce, ad)
	out := make([]byte, len(plaintext)+tau)
	if len(plaintext) == 0 {
		c.prf(&delta, out)
		return out
	}
	copy(out, plaintext) // followed by tau zero bytes
	c.encipher(&delta, out, out, false)
	return out
}

// Decrypt inverts Encrypt. It returns ErrAuth when the ciphertext is shorter than tau
// or does not authenticate.
func Decrypt(key, nonce []byte, ad [][]byte, tau int, ciphertext []byte) ([]byte, error) {
	if tau < 0 || len(ciphertext) < tau {
		return nil, ErrAuth
	}
	c := newCipher(key)
	defer c.Reset()
	delta := c.hash(8*tau, nonce, ad)
	if len(ciphertext) == tau {
		want := make([]byte, tau)
		c.prf(&delta, want)
		if subtle.ConstantTimeCompare(want, ciphertext) != 1 {
			return nil, ErrAuth
		}
		return []byte{}, nil
	}
	x := make([]byte, len(ciphertext))
	c.encipher(&delta, x, ciphertext, true)
	n := len(ciphertext) - tau
	var acc byte
	for _, b := range x[n:] {
		acc |= b
	}
	if subtle.ConstantTimeByteEq(acc, 0) != 1 {
		clear(x)
		return nil, ErrAuth
	}
	return x[:n:n], nil
}

// hash is AEZ-hash of the tweak ([tauBits]_128, nonce, ad[0], …).
func (c *Cipher) hash(tauBits int, nonce []byte, ad [][]byte) block {
	var delta, buf, jj block
	buf[12] = byte(tauBits >> 24)
	buf[13] = byte(tauBits >> 16)
	buf[14] = byte(tauBits >> 8)
	buf[15] = byte(tauBits)
	c.hashPart(&delta, 3, buf[:], &jj)
	c.hashPart(&delta, 4, nonce, &jj)
	for i, a := range ad {
		c.hashPart(&delta, 5+i, a, &jj)
	}
	return delta
}

// hashPart xors into delta the AEZ-hash contribution of tweak element t at index j.
func (c *Cipher) hashPart(delta *block, j int, t []byte, jj *block) {
	mulSmall(jj, &c.keys[1], j)
	var x, ipow block
	if len(t) == 0 {
		x[0] = 0x80
		c.e4(&x, jj, &c.keys[0], &c.lm[0])
		xor16(delta, delta, &x)
		return
	}
	ipow = c.keys[0]
	for i := 1; len(t) > 0; i++ {
		if i%8 == 1 {
			ipow = double(&ipow)
		}
		if len(t) >= blockSize {
			copy(x[:], t[:blockSize])
			t = t[blockSize:]
			c.e4(&x, jj, &ipow, &c.lm[i%8])
		} else {
			x = block{}
			copy(x[:], t)
			x[len(t)] = 0x80
			t = nil
			c.e4(&x, jj, &c.keys[0], &c.lm[0])
		}
		xor16(delta, delta, &x)
	}
}

// prf is AEZ-prf: out = the first len(out) bytes of E^{-1,3}(delta ⊕ [k]_128), k = 0, 1, ….
func (c *Cipher) prf(delta *block, out []byte) {
	var ctr block
	for len(out) > 0 {
		x := *delta
		xor16(&x, &x, &ctr)
		c.e10(&x, &c.lm[3])
		n := copy(out, x[:])
		out = out[n:]
		for i := blockSize - 1; i >= 0; i-- {
			ctr[i]++
			if ctr[i] != 0 {
				break
			}
		}
	}
}

// e4 computes x = AES4(x ⊕ a ⊕ b ⊕ l), i.e. E^{j,i} with a = j·J, b = 2^⌈i/8⌉·I,
// l = (i mod 8)·L.
func (c *Cipher) e4(x, a, b, l *block) {
	if useAsm {
		aes4Asm(x, a, b, l, &c.keys)
		return
	}
	var xs [4]block
	xor16(&xs[0], x, a)
	xor16(&xs[0], &xs[0], b)
	xor16(&xs[0], &xs[0], l)
	c.aes4x(&xs, 1)
	*x = xs[0]
}

// e10 computes x = AES10(x ⊕ l), i.e. E^{-1,i} with l = i·L.
func (c *Cipher) e10(x, l *block) {
	if useAsm {
		aes10Asm(x, l, &c.keys)
		return
	}
	var xs [4]block
	xor16(&xs[0], x, l)
	if refRounds != nil {
		xs[0] = refRounds(xs[0], 10)
	} else {
		c.aes10Bitsliced(&xs)
	}
	*x = xs[0]
}

// aes4x sets the first n ≤ 4 blocks of xs to AES4 of themselves on the portable path
// (the others are computed too, and ignored).
func (c *Cipher) aes4x(xs *[4]block, n int) {
	if refRounds != nil {
		for k := range n {
			xs[k] = refRounds(xs[k], 4)
		}
		return
	}
	c.aes4Bitsliced(xs)
}

// refRounds, when set, replaces the bitsliced rounds: it returns AES4 (n = 4) or
// AES10 (n = 10) of x under the keys of the one Cipher a test runs. Only tests set
// it, to run the former table-based rounds through the same modes as a reference and
// for the benchmarks' comparison. It takes and returns values, not pointers, so
// that nothing escapes through it.
var refRounds func(x block, n int) block

func (c *Cipher) encipher(delta *block, dst, src []byte, inverse bool) {
	if len(src) < 2*blockSize {
		c.tiny(delta, dst, src, inverse)
	} else {
		c.core(delta, dst, src, inverse)
	}
}

// core is Encipher-AEZ-core (inverse: Decipher-AEZ-core) for inputs of 32 bytes or more.
func (c *Cipher) core(delta *block, dst, src []byte, inverse bool) {
	n := len(src)
	m := (n - 2*blockSize) / (2 * blockSize) // number of full block pairs
	d := n - 2*blockSize - 2*blockSize*m     // |Xu ‖ Xv| in bytes, 0..31
	var zero, ipow, sum, t block
	i1, i2 := 1, 2
	if inverse {
		i1, i2 = 2, 1
	}
	J := &c.keys[1]
	I := &c.keys[0]

	// Pass 1.
	ipow = *I
	if useAsm {
		for g := 0; 8*g < m; g++ {
			ipow = double(&ipow)
			var d1 block
			xor16(&d1, J, &ipow)
			k := min(8, m-8*g)
			pass1Asm(&dst[256*g], &src[256*g], k, &c.keys, &d1, &c.lm, &sum)
		}
	} else {
		c.pass1(dst, src, m, &sum)
	}
	tail := 32 * m
	var xu, xv, xx, xy block
	du, dv := min(d, blockSize), max(d-blockSize, 0)
	copy(xu[:], src[tail:tail+du])
	copy(xv[:], src[tail+du:tail+d])
	copy(xx[:], src[tail+d:tail+d+16])
	copy(xy[:], src[tail+d+16:tail+d+32])
	c.uvSum(&sum, &xu, &xv, du, dv, d)

	// Middle.
	var sx, sy, s block
	// E^{0,1} and E^{0,2}: j = 0, i in {1,2}, so the I term is 2·I.
	ipow1 := double(I)
	t = xy
	c.e4(&t, &zero, &ipow1, &c.lm[i1])
	for k := range blockSize {
		sx[k] = xx[k] ^ delta[k] ^ sum[k] ^ t[k]
	}
	t = sx
	c.e10(&t, &c.lm[i1])
	xor16(&sy, &xy, &t)
	xor16(&s, &sx, &sy)

	// Pass 2.
	var ysum block
	ipow = *I
	if useAsm {
		for g := 0; 8*g < m; g++ {
			ipow = double(&ipow)
			var d1, d2 block
			xor16(&d1, J, &ipow)
			xor16(&d2, &c.j2, &ipow)
			k := min(8, m-8*g)
			pass2Asm(&dst[256*g], k, &c.keys, &d1, &d2, &c.lm, &s, &ysum)
		}
	} else {
		c.pass2(dst, m, &s, &ysum)
	}
	if d > 0 {
		t = s
		c.e10(&t, &c.lm[4])
		xor16(&xu, &xu, &t)
		if dv > 0 {
			t = s
			c.e10(&t, &c.lm[5])
			xor16(&xv, &xv, &t)
		}
		// Re-pad the enciphered u/v: bytes beyond their lengths must be zero.
		for k := du; k < blockSize; k++ {
			xu[k] = 0
		}
		for k := dv; k < blockSize; k++ {
			xv[k] = 0
		}
		c.uvSum(&ysum, &xu, &xv, du, dv, d)
		copy(dst[tail:tail+du], xu[:du])
		copy(dst[tail+du:tail+d], xv[:dv])
	}
	var cx, cy block
	t = sy
	c.e10(&t, &c.lm[i2])
	xor16(&cy, &sx, &t)
	t = cy
	c.e4(&t, &zero, &ipow1, &c.lm[i2])
	for k := range blockSize {
		cx[k] = sy[k] ^ delta[k] ^ ysum[k] ^ t[k]
	}
	copy(dst[tail+d:tail+d+16], cx[:])
	copy(dst[tail+d+16:tail+d+32], cy[:])
}

// pass1 is AEZ-core pass 1 on the portable path, four block pairs i at a time: the
// pair (M_i, M'_i) becomes (W_i, X_i) with W_i = M_i ⊕ E^{1,i}(M'_i) and
// X_i = M'_i ⊕ E^{0,0}(W_i), and sum ⊕= X_i. A group's source is read whole before its
// destination is written, so dst may be src.
func (c *Cipher) pass1(dst, src []byte, m int, sum *block) {
	ipow := c.keys[0]
	var w, x, tw [4]block
	for i0 := 1; i0 <= m; i0 += 4 {
		n := min(4, m-i0+1)
		c.laneTweaks(&tw, &ipow, i0, n)
		for k := range n {
			p := src[32*(i0+k-1) : 32*(i0+k)]
			copy(x[k][:], p[16:32])
			xor16(&w[k], &x[k], &c.keys[1])
			xor16(&w[k], &w[k], &tw[k])
		}
		c.aes4x(&w, n)
		for k := range n {
			p := src[32*(i0+k-1) : 32*(i0+k)]
			xorSlice(w[k][:], w[k][:], p[:16])
		}
		t := w
		for k := range n {
			xor16(&t[k], &t[k], &c.keys[0])
		}
		c.aes4x(&t, n)
		for k := range n {
			xor16(&x[k], &x[k], &t[k])
			q := dst[32*(i0+k-1) : 32*(i0+k)]
			copy(q[:16], w[k][:])
			copy(q[16:], x[k][:])
			xor16(sum, sum, &x[k])
		}
	}
}

// laneTweaks sets tw[k] = 2^⌈i/8⌉·I ⊕ (i mod 8)·L for the n block pairs i = i0 … i0+n−1,
// the part of the tweaks of E^{1,i} and E^{2,i} that depends on i; ipow carries
// 2^⌈i/8⌉·I from one group to the next.
func (c *Cipher) laneTweaks(tw *[4]block, ipow *block, i0, n int) {
	for k := range n {
		i := i0 + k
		if i%8 == 1 {
			*ipow = double(ipow)
		}
		xor16(&tw[k], ipow, &c.lm[i%8])
	}
}

// pass2 is AEZ-core pass 2 on the portable path, in place on dst, four block pairs i
// at a time: S' = E^{2,i}(S), Y_i = W_i ⊕ S', Z_i = X'_i ⊕ S', C'_i = Y_i ⊕ E^{0,0}(Z_i),
// C_i = Z_i ⊕ E^{1,i}(C'_i), ysum ⊕= Y_i.
func (c *Cipher) pass2(dst []byte, m int, s, ysum *block) {
	ipow := c.keys[0]
	var sp, z, cp, tw [4]block
	for i0 := 1; i0 <= m; i0 += 4 {
		n := min(4, m-i0+1)
		c.laneTweaks(&tw, &ipow, i0, n)
		for k := range n {
			xor16(&sp[k], s, &c.j2)
			xor16(&sp[k], &sp[k], &tw[k])
			xor16(&tw[k], &tw[k], &c.keys[1]) // now the E^{1,i} tweak
		}
		c.aes4x(&sp, n)
		for k := range n {
			q := dst[32*(i0+k-1) : 32*(i0+k)]
			xorSlice(cp[k][:], sp[k][:], q[:16]) // Y_i, for now
			xorSlice(z[k][:], sp[k][:], q[16:32])
			xor16(ysum, ysum, &cp[k])
			xor16(&sp[k], &z[k], &c.keys[0])
		}
		c.aes4x(&sp, n)
		for k := range n {
			xor16(&cp[k], &cp[k], &sp[k])
			xor16(&sp[k], &cp[k], &tw[k])
		}
		c.aes4x(&sp, n)
		for k := range n {
			q := dst[32*(i0+k-1) : 32*(i0+k)]
			xorSlice(q[:16], z[k][:], sp[k][:])
			copy(q[16:32], cp[k][:])
		}
	}
}

// uvSum xors into sum the E^{0,4}/E^{0,5} terms of the leftover u ‖ v bytes
// (xu, xv are zero beyond du, dv bytes).
func (c *Cipher) uvSum(sum, xu, xv *block, du, dv, d int) {
	if d == 0 {
		return
	}
	var zero block
	ipow := double(&c.keys[0])
	t := *xu
	if d < blockSize {
		t[du] = 0x80
	}
	c.e4(&t, &zero, &ipow, &c.lm[4])
	xor16(sum, sum, &t)
	if d >= blockSize { // an empty v still contributes E^{0,5}(10*)
		t = *xv
		t[dv] = 0x80
		c.e4(&t, &zero, &ipow, &c.lm[5])
		xor16(sum, sum, &t)
	}
}

// tiny is Encipher-AEZ-tiny (inverse: Decipher-AEZ-tiny) for 1..31 bytes.
func (c *Cipher) tiny(delta *block, dst, src []byte, inverse bool) {
	nb := len(src)
	mbits := 8 * nb
	n := mbits / 2 // bits per half
	var rounds, j int
	switch {
	case nb == 1:
		rounds = 24
	case nb == 2:
		rounds = 16
	case nb < 16:
		rounds = 10
	default:
		rounds = 8
	}
	if nb >= 16 {
		j = 6
	} else {
		j = 7
	}
	var msg [32]byte
	copy(msg[:], src)
	if inverse && nb < 16 {
		c.tinyBit(delta, &msg)
	}
	var l, r block
	getBits(&l, msg[:], 0, n)
	getBits(&r, msg[:], n, n)
	var zero block
	ipow := double(&c.keys[0])
	for k := 0; k < rounds; k++ {
		i := k
		if inverse {
			i = rounds - 1 - k
		}
		var t block
		xor16(&t, delta, &r)
		t[n/8] ^= 0x80 >> (n % 8)
		t[15] ^= byte(i)
		c.e4(&t, &zero, &ipow, &c.lm[j])
		maskBits(&t, n)
		xor16(&t, &t, &l)
		l, r = r, t
	}
	// Output R ‖ L.
	var out [32]byte
	putBits(out[:], 0, &r, n)
	putBits(out[:], n, &l, n)
	if !inverse && nb < 16 {
		c.tinyBit(delta, &out)
	}
	copy(dst, out[:nb])
}

// tinyBit flips the first bit of m by the first bit of E^{0,3}(Δ ⊕ (m0* ∨ 10*)), the
// extra step AEZ-tiny takes for inputs shorter than a block.
func (c *Cipher) tinyBit(delta *block, m *[32]byte) {
	var t, zero block
	copy(t[:], m[:16])
	t[0] |= 0x80
	xor16(&t, &t, delta)
	ipow := double(&c.keys[0])
	c.e4(&t, &zero, &ipow, &c.lm[3])
	m[0] ^= t[0] & 0x80
}

// getBits copies n bits of src starting at bit off into dst, left-aligned.
func getBits(dst *block, src []byte, off, n int) {
	*dst = block{}
	sh := off % 8
	b := off / 8
	for k := 0; k < (n+7)/8; k++ {
		v := src[b+k] << sh
		if sh != 0 && b+k+1 < len(src) {
			v |= src[b+k+1] >> (8 - sh)
		}
		dst[k] = v
	}
	maskBits(dst, n)
}

// putBits writes the n left-aligned bits of src into dst at bit offset off; dst bits
// from off on must be zero.
func putBits(dst []byte, off int, src *block, n int) {
	sh := off % 8
	b := off / 8
	for k := 0; k < (n+7)/8; k++ {
		dst[b+k] |= src[k] >> sh
		if sh != 0 && b+k+1 < len(dst) {
			dst[b+k+1] |= src[k] << (8 - sh)
		}
	}
}

// maskBits clears all but the first n bits of x.
func maskBits(x *block, n int) {
	for k := range blockSize {
		switch {
		case 8*(k+1) <= n:
		case 8*k >= n:
			x[k] = 0
		default:
			x[k] &= 0xff << (8 - n%8)
		}
	}
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func xor16(dst, a, b *block) {
	xorSlice(dst[:], a[:], b[:])
}

// xorSlice sets the 16 bytes of dst to a ⊕ b.
func xorSlice(dst, a, b []byte) {
	_, _, _ = dst[15], a[15], b[15]
	binary.LittleEndian.PutUint64(dst[0:], binary.LittleEndian.Uint64(a[0:])^binary.LittleEndian.Uint64(b[0:]))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(a[8:])^binary.LittleEndian.Uint64(b[8:]))
}

// double multiplies x by 2 in GF(2^128) (big-endian, x^128 + x^7 + x^2 + x + 1).
func double(x *block) block {
	var out block
	carry := x[0] >> 7
	for k := 0; k < blockSize-1; k++ {
		out[k] = x[k]<<1 | x[k+1]>>7
	}
	out[15] = x[15]<<1 ^ (0x87 & -carry)
	return out
}

// mulSmall sets dst = j·x in GF(2^128) for j ≥ 0.
func mulSmall(dst, x *block, j int) {
	var acc block
	p := *x
	for ; j > 0; j >>= 1 {
		if j&1 == 1 {
			xor16(&acc, &acc, &p)
		}
		p = double(&p)
	}
	*dst = acc
}
