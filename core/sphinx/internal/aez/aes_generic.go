package aez

// Portable AES round (SubBytes, ShiftRows, MixColumns, AddRoundKey: the AESENC
// operation) with 32-bit lookup tables. Table lookups are indexed by secret state, so
// this path is not constant time (see the package doc).

var te0, te1, te2, te3 [256]uint32

func init() {
	// Build the S-box from its definition: multiplicative inverse in GF(2^8) followed by
	// the affine map, then the combined SubBytes·MixColumns tables.
	var sbox [256]byte
	p, q := byte(1), byte(1)
	for {
		// p runs over the multiplicative group via ×3, q over its inverse via ÷3.
		p = p ^ p<<1 ^ byte(int8(p)>>7)&0x1b
		q ^= q << 1
		q ^= q << 2
		q ^= q << 4
		q ^= byte(int8(q)>>7) & 0x09
		x := q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4)
		sbox[p] = x ^ 0x63
		if p == 1 {
			break
		}
	}
	sbox[0] = 0x63
	for i := range 256 {
		s := uint32(sbox[i])
		s2 := uint32(xtime(sbox[i]))
		s3 := s2 ^ s
		w := s2<<24 | s<<16 | s<<8 | s3
		te0[i] = w
		te1[i] = w>>8 | w<<24
		te2[i] = w>>16 | w<<16
		te3[i] = w>>24 | w<<8
	}
}

func rotl8(x byte, n uint) byte { return x<<n | x>>(8-n) }

func xtime(x byte) byte { return x<<1 ^ byte(int8(x)>>7)&0x1b }

type state [4]uint32

func load(x *block) state {
	return state{be32(x[0:]), be32(x[4:]), be32(x[8:]), be32(x[12:])}
}

func store(x *block, s state) {
	for w := range 4 {
		x[4*w] = byte(s[w] >> 24)
		x[4*w+1] = byte(s[w] >> 16)
		x[4*w+2] = byte(s[w] >> 8)
		x[4*w+3] = byte(s[w])
	}
}

func round(s state, k *[4]uint32) state {
	return state{
		te0[s[0]>>24] ^ te1[s[1]>>16&0xff] ^ te2[s[2]>>8&0xff] ^ te3[s[3]&0xff] ^ k[0],
		te0[s[1]>>24] ^ te1[s[2]>>16&0xff] ^ te2[s[3]>>8&0xff] ^ te3[s[0]&0xff] ^ k[1],
		te0[s[2]>>24] ^ te1[s[3]>>16&0xff] ^ te2[s[0]>>8&0xff] ^ te3[s[1]&0xff] ^ k[2],
		te0[s[3]>>24] ^ te1[s[0]>>16&0xff] ^ te2[s[1]>>8&0xff] ^ te3[s[2]&0xff] ^ k[3],
	}
}

var zeroKey [4]uint32

// aes4Generic is AES4 with round keys (0, J, I, L, 0).
func (c *Cipher) aes4Generic(x *block) {
	s := load(x)
	s = round(s, &c.rk[1])
	s = round(s, &c.rk[0])
	s = round(s, &c.rk[2])
	s = round(s, &zeroKey)
	store(x, s)
}

// aes10Generic is AES10 with round keys (0, I, J, L, I, J, L, I, J, L, I).
func (c *Cipher) aes10Generic(x *block) {
	s := load(x)
	for r := range 10 {
		s = round(s, &c.rk[r%3])
	}
	store(x, s)
}
