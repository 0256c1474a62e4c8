//go:build amd64 && !purego

#include "textflag.h"

// func aes4Asm(x *block, keys *[3]block)
TEXT ·aes4Asm(SB), NOSPLIT, $0-16
	MOVQ  x+0(FP), AX
	MOVQ  keys+8(FP), BX
	MOVOU (AX), X0
	MOVOU 0(BX), X1  // I
	MOVOU 16(BX), X2 // J
	MOVOU 32(BX), X3 // L
	PXOR  X4, X4
	AESENC X2, X0
	AESENC X1, X0
	AESENC X3, X0
	AESENC X4, X0
	MOVOU X0, (AX)
	RET

// func aes10Asm(x *block, keys *[3]block)
TEXT ·aes10Asm(SB), NOSPLIT, $0-16
	MOVQ  x+0(FP), AX
	MOVQ  keys+8(FP), BX
	MOVOU (AX), X0
	MOVOU 0(BX), X1  // I
	MOVOU 16(BX), X2 // J
	MOVOU 32(BX), X3 // L
	AESENC X1, X0
	AESENC X2, X0
	AESENC X3, X0
	AESENC X1, X0
	AESENC X2, X0
	AESENC X3, X0
	AESENC X1, X0
	AESENC X2, X0
	AESENC X3, X0
	AESENC X1, X0
	MOVOU X0, (AX)
	RET
