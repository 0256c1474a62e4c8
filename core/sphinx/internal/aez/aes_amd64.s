//go:build amd64 && !purego

#include "textflag.h"

// func aes4Asm(x, a, b, l *block, keys *[3]block)
TEXT ·aes4Asm(SB), NOSPLIT, $0-40
	MOVQ   x+0(FP), AX
	MOVQ   a+8(FP), CX
	MOVQ   b+16(FP), DX
	MOVQ   l+24(FP), SI
	MOVQ   keys+32(FP), BX
	MOVOU  (AX), X0
	MOVOU  (CX), X5
	MOVOU  (DX), X6
	MOVOU  (SI), X7
	PXOR   X5, X0
	PXOR   X6, X0
	PXOR   X7, X0
	MOVOU  0(BX), X1  // I
	MOVOU  16(BX), X2 // J
	MOVOU  32(BX), X3 // L
	PXOR   X4, X4
	AESENC X2, X0
	AESENC X1, X0
	AESENC X3, X0
	AESENC X4, X0
	MOVOU  X0, (AX)
	RET

// func aes10Asm(x, l *block, keys *[3]block)
TEXT ·aes10Asm(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), AX
	MOVQ   l+8(FP), CX
	MOVQ   keys+16(FP), BX
	MOVOU  (AX), X0
	MOVOU  (CX), X5
	PXOR   X5, X0
	MOVOU  0(BX), X1  // I
	MOVOU  16(BX), X2 // J
	MOVOU  32(BX), X3 // L
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
	MOVOU  X0, (AX)
	RET
