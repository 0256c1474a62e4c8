package aez

import (
	"fmt"
	"testing"
)

func benchEncipher(b *testing.B, n int, asm bool) {
	if asm && !useAsm {
		b.Skip("no AES-NI assembly on this platform or build")
	}
	saved := useAsm
	useAsm = asm
	defer func() { useAsm = saved }()
	c, nonce := testCipher(1)
	buf := make([]byte, n)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		c.Encipher(buf, buf, nonce)
	}
}

func BenchmarkEncipher2KiB(b *testing.B) {
	b.Run("asm", func(b *testing.B) { benchEncipher(b, 2048, true) })
	b.Run("portable", func(b *testing.B) { benchEncipher(b, 2048, false) })
}

func BenchmarkEncipher(b *testing.B) {
	for _, n := range []int{16, 135, 709, 2048, 4096} {
		for _, asm := range []bool{true, false} {
			name := "portable"
			if asm {
				name = "asm"
			}
			b.Run(fmt.Sprintf("%d/%s", n, name), func(b *testing.B) { benchEncipher(b, n, asm) })
		}
	}
}

func BenchmarkSetKey(b *testing.B) {
	var key [KeySize]byte
	var c Cipher
	b.ReportAllocs()
	for b.Loop() {
		c.SetKey(&key)
	}
}
