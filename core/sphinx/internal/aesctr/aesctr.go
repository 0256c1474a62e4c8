// Package aesctr is AES-256-CTR for the Sphinx header stream, re-keyable in
// place so a node unwraps packets without allocating: crypto/aes and
// crypto/cipher allocate a block and a CTR state for every key, and every
// packet has a fresh key.
//
// On amd64 with AES-NI the key schedule and the block cipher run on the AES
// instructions (constant-time); elsewhere (including js/wasm) it falls back to
// crypto/aes with crypto/cipher's CTR, which allocates. The counter is the
// 16-byte IV incremented as a 128-bit big-endian integer, as cipher.NewCTR does.
package aesctr

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
)

// KeySize and IVSize are AES-256's key size and the CTR IV (block) size.
const (
	KeySize = 32
	IVSize  = 16
)

// AllocationFree reports whether SetKey and XORKeyStream run without
// allocating on this platform (the AES-NI path).
func AllocationFree() bool { return useAESNI }

// Stream holds an expanded key. The zero value is ready for SetKey.
type Stream struct {
	xk  [240]byte // 15 round keys
	blk [16]byte
	ks  [16]byte
	fb  cipher.Block
}

// SetKey installs key.
func (s *Stream) SetKey(key *[KeySize]byte) {
	if useAESNI {
		expandKey256(key, &s.xk)
		return
	}
	b, err := aes.NewCipher(key[:])
	if err != nil {
		panic("aesctr: " + err.Error()) // a 32-byte key cannot fail
	}
	s.fb = b
}

// XORKeyStream XORs src with the keystream starting at counter iv into dst
// (which may alias src exactly).
func (s *Stream) XORKeyStream(dst, src []byte, iv *[IVSize]byte) {
	if !useAESNI {
		cipher.NewCTR(s.fb, iv[:]).XORKeyStream(dst, src)
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

// Reset wipes the key.
func (s *Stream) Reset() {
	clear(s.xk[:])
	clear(s.ks[:])
	s.fb = nil
}
