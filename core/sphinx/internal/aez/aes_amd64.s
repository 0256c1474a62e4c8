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

#define AES4(x) AESENC X2, x; AESENC X1, x; AESENC X3, x; AESENC X4, x

// func pass1Asm(dst, src *byte, n int, keys *[3]block, d1 *block, lm *[8]block, sum *block)
// AEZ-core pass 1 over n ≤ 8 block pairs i = 8g+1 … 8g+n; d1 = J ⊕ 2^(g+1)·I.
TEXT ·pass1Asm(SB), NOSPLIT, $0-56
	MOVQ   dst+0(FP), DI
	MOVQ   src+8(FP), SI
	MOVQ   n+16(FP), CX
	MOVQ   keys+24(FP), BX
	MOVQ   d1+32(FP), DX
	MOVQ   lm+40(FP), R8
	MOVQ   sum+48(FP), R9
	MOVOU  0(BX), X1
	MOVOU  16(BX), X2
	MOVOU  32(BX), X3
	PXOR   X4, X4
	MOVOU  (DX), X7
	MOVOU  (R9), X6
	MOVQ   $1, R10

pass1loop:
	TESTQ  CX, CX
	JZ     pass1done
	MOVQ   R10, R11
	ANDQ   $7, R11
	SHLQ   $4, R11
	MOVOU  (R8)(R11*1), X8
	MOVOU  (SI), X10
	MOVOU  16(SI), X9
	MOVOU  X9, X0
	PXOR   X7, X0
	PXOR   X8, X0
	AES4(X0)
	PXOR   X10, X0
	MOVOU  X0, (DI)
	PXOR   X1, X0
	AES4(X0)
	PXOR   X9, X0
	MOVOU  X0, 16(DI)
	PXOR   X0, X6
	ADDQ   $32, SI
	ADDQ   $32, DI
	INCQ   R10
	DECQ   CX
	JMP    pass1loop

pass1done:
	MOVOU  X6, (R9)
	RET

// func pass2Asm(dst *byte, n int, keys *[3]block, d1, d2 *block, lm *[8]block, s, ysum *block)
// AEZ-core pass 2 over n ≤ 8 block pairs; d1 = J ⊕ 2^(g+1)·I, d2 = 2·J ⊕ 2^(g+1)·I.
TEXT ·pass2Asm(SB), NOSPLIT, $0-64
	MOVQ   dst+0(FP), DI
	MOVQ   n+8(FP), CX
	MOVQ   keys+16(FP), BX
	MOVQ   d1+24(FP), DX
	MOVQ   d2+32(FP), SI
	MOVQ   lm+40(FP), R8
	MOVQ   s+48(FP), R12
	MOVQ   ysum+56(FP), R9
	MOVOU  0(BX), X1
	MOVOU  16(BX), X2
	MOVOU  32(BX), X3
	PXOR   X4, X4
	MOVOU  (DX), X7
	MOVOU  (SI), X12
	MOVOU  (R12), X11
	MOVOU  (R9), X6
	MOVQ   $1, R10

pass2loop:
	TESTQ  CX, CX
	JZ     pass2done
	MOVQ   R10, R11
	ANDQ   $7, R11
	SHLQ   $4, R11
	MOVOU  (R8)(R11*1), X8
	MOVOU  X11, X0
	PXOR   X12, X0
	PXOR   X8, X0
	AES4(X0)
	MOVOU  (DI), X9
	MOVOU  16(DI), X10
	PXOR   X0, X9
	PXOR   X0, X10
	PXOR   X9, X6
	MOVOU  X10, X0
	PXOR   X1, X0
	AES4(X0)
	PXOR   X9, X0
	MOVOU  X0, 16(DI)
	PXOR   X7, X0
	PXOR   X8, X0
	AES4(X0)
	PXOR   X10, X0
	MOVOU  X0, (DI)
	ADDQ   $32, DI
	INCQ   R10
	DECQ   CX
	JMP    pass2loop

pass2done:
	MOVOU  X6, (R9)
	RET
