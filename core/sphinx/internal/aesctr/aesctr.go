// Package aesctr is AES-256-CTR for the Sphinx header stream, re-keyable in
// place so a node unwraps packets without allocating: crypto/aes and
// crypto/cipher allocate a block and a CTR state for every key, and every
// packet has a fresh key.
//
// On amd64 with AES-NI the key schedule and the block cipher run on the AES
// instructions. Everywhere else (other architectures, js/wasm in browsers,
// -tags purego, amd64 without AES-NI) they run on the bitsliced AES-256 of
// internal/aesbs, four counter blocks at a time: no lookup table, no
// secret-dependent memory index or branch, unlike Go's portable crypto/aes.
// Both paths are constant time and allocate nothing. The counter is the 16-byte
// IV incremented as a 128-bit big-endian integer, as cipher.NewCTR does.
package aesctr

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"

	"github.com/sottonet/sotto/core/sphinx/internal/aesbs"
)

// KeySize and IVSize are AES-256's key size and the CTR IV (block) size.
const (
	KeySize = 32
	IVSize  = 16
)

// AllocationFree reports whether SetKey and XORKeyStream run without
// allocating on this platform. Both paths do; it stays for the callers' tests.
func AllocationFree() bool { return true }

// Stream holds an expanded key. The zero value is ready for SetKey.
type Stream struct {
	xk  [240]byte // 15 round keys (AES-NI)
	blk [16]byte
	ks  [16]byte
	bs  aesbs.AES256 // the bitsliced round keys (portable path)
}

// SetKey installs key.
func (s *Stream) SetKey(key *[KeySize]byte) {
	if useAESNI {
		expandKey256(key, &s.xk)
		return
	}
	s.bs.SetKey(key)
}

// XORKeyStream XORs src with the keystream starting at counter iv into dst
// (which may alias src exactly).
func (s *Stream) XORKeyStream(dst, src []byte, iv *[IVSize]byte) {
	if !useAESNI {
		s.xorPortable(dst, src, iv)
		return
	}
	hi := binary.BigEndian.Uint64(iv[:8])
	lo := binary.BigEndian.Uint64(iv[8:])
	for len(src) > 0 {
		binary.BigEndian.PutUint64(s.blk[:8], hi)
		binary.BigEndian.PutUint64(s.blk[8:], lo)
		encryptBlock(&s.xk, &s.ks, &s.blk)
		n := min(len(src), 16)
		for i := range n {
			dst[i] = src[i] ^ s.ks[i]
		}
		dst, src = dst[n:], src[n:]
		lo++
		if lo == 0 {
			hi++
		}
	}
}

// xorPortable is XORKeyStream on the bitsliced AES: four counter blocks per
// call of the block cipher, the unused tail of the last four discarded.
func (s *Stream) xorPortable(dst, src []byte, iv *[IVSize]byte) {
	hi := binary.BigEndian.Uint64(iv[:8])
	lo := binary.BigEndian.Uint64(iv[8:])
	var ks [4]aesbs.Block
	for len(src) > 0 {
		for k := range ks {
			binary.BigEndian.PutUint64(ks[k][:8], hi)
			binary.BigEndian.PutUint64(ks[k][8:], lo)
			var carry uint64
			lo, carry = bits.Add64(lo, 1, 0)
			hi += carry
		}
		s.bs.Encrypt4(&ks)
		for k := 0; k < len(ks) && len(src) > 0; k++ {
			n := subtle.XORBytes(dst, src, ks[k][:])
			dst, src = dst[n:], src[n:]
		}
	}
	clear(ks[:])
}

// Reset wipes the key.
func (s *Stream) Reset() {
	clear(s.xk[:])
	clear(s.ks[:])
	s.bs.Reset()
}
