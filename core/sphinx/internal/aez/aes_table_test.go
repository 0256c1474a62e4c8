package aez

// The former portable AES round (SubBytes, ShiftRows, MixColumns, AddRoundKey: the
// AESENC operation) with 32-bit lookup tables, kept here as the reference the
// bitsliced rounds are checked against, and as the baseline of the benchmarks. Its
// lookups are indexed by secret state, so it is NOT constant time: tests only.

var (
	te0, te1, te2, te3 [256]uint32
	sbox               [256]byte // the AES S-box, from its definition
)

func init() {
	// Build the S-box from its definition: multiplicative inverse in GF(2^8) followed by
	// the affine map, then the combined SubBytes·MixColumns tables.
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

func loadState(x *block) state {
	return state{be32(x[0:]), be32(x[4:]), be32(x[8:]), be32(x[12:])}
}

func storeState(x *block, s state) {
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

// tableKeys returns I, J, L as the table rounds' key words.
func tableKeys(keys *[3]block) (rk [3][4]uint32) {
	for k := range 3 {
		for w := range 4 {
			rk[k][w] = be32(keys[k][4*w:])
		}
	}
	return rk
}

// aes4Table is AES4 with round keys (0, J, I, L, 0).
func aes4Table(rk *[3][4]uint32, x *block) {
	s := loadState(x)
	s = round(s, &rk[1])
	s = round(s, &rk[0])
	s = round(s, &rk[2])
	s = round(s, &zeroKey)
	storeState(x, s)
}

// aes10Table is AES10 with round keys (0, I, J, L, I, J, L, I, J, L, I).
func aes10Table(rk *[3][4]uint32, x *block) {
	s := loadState(x)
	for r := range 10 {
		s = round(s, &rk[r%3])
	}
	storeState(x, s)
}

// tableRounds returns the table path under keys (I, J, L) as a refRounds hook.
func tableRounds(keys *[3]block) func(block, int) block {
	rk := tableKeys(keys)
	return func(x block, n int) block {
		if n == 4 {
			aes4Table(&rk, &x)
		} else {
			aes10Table(&rk, &x)
		}
		return x
	}
}

// withTableRounds runs f with the table rounds under keys in place of the
// bitsliced ones.
func withTableRounds(keys *[3]block, f func()) {
	saved := refRounds
	refRounds = tableRounds(keys)
	defer func() { refRounds = saved }()
	f()
}
