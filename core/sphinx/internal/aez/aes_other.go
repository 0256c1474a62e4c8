//go:build !amd64 || purego

package aez

// useAsm is always false without the amd64 assembly; it stays a variable so tests
// that switch paths compile everywhere.
var useAsm = false

func aes4Asm(x, a, b, l *block, keys *[3]block) { panic("aez: no assembly on this platform") }
func aes10Asm(x, l *block, keys *[3]block)      { panic("aez: no assembly on this platform") }

func pass1Asm(dst, src *byte, n int, keys *[3]block, d1 *block, lm *[8]block, sum *block) {
	panic("aez: no assembly on this platform")
}

func pass2Asm(dst *byte, n int, keys *[3]block, d1, d2 *block, lm *[8]block, s, ysum *block) {
	panic("aez: no assembly on this platform")
}
