//go:build amd64 && !purego

package aez

import "golang.org/x/sys/cpu"

// useAsm selects the AES-NI path; tests flip it to compare with the portable path.
var useAsm = cpu.X86.HasAES && cpu.X86.HasSSE2

// aes4Asm sets x = AES4(x ⊕ a ⊕ b ⊕ l) with round keys (0, J, I, L, 0); keys = I, J, L.
//
//go:noescape
func aes4Asm(x, a, b, l *block, keys *[3]block)

// aes10Asm sets x = AES10(x ⊕ l) with round keys (0, I, J, L, I, J, L, I, J, L, I).
//
//go:noescape
func aes10Asm(x, l *block, keys *[3]block)

// pass1Asm runs AEZ-core pass 1 over n ≤ 8 block pairs of one group of eight.
//
//go:noescape
func pass1Asm(dst, src *byte, n int, keys *[3]block, d1 *block, lm *[8]block, sum *block)

// pass2Asm runs AEZ-core pass 2 over n ≤ 8 block pairs of one group of eight.
//
//go:noescape
func pass2Asm(dst *byte, n int, keys *[3]block, d1, d2 *block, lm *[8]block, s, ysum *block)
