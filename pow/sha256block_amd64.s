//go:build !purego

#include "textflag.h"

// SHA-256 with the SHA extensions. SHA256RNDS2 keeps the eight working
// variables in two registers, X1 = ABEF and X2 = CDGH (A in the top
// dword), and runs two rounds on the schedule words plus round constants
// in X0's low half. X3..X6 hold the 16 most recent schedule words, X7 is
// scratch, X8 the byte-order mask, X9/X10 the state a block adds back, AX
// the round constants.

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// Big-endian message words: reverse the bytes of every dword.
DATA bswapMask<>+0(SB)/8, $0x0405060700010203
DATA bswapMask<>+8(SB)/8, $0x0c0d0e0f08090a0b
GLOBL bswapMask<>(SB), (NOPTR+RODATA), $16

// The initial state as ABEF and CDGH.
DATA ivABEF<>+0(SB)/8, $0x510e527f9b05688c
DATA ivABEF<>+8(SB)/8, $0x6a09e667bb67ae85
GLOBL ivABEF<>(SB), (NOPTR+RODATA), $16
DATA ivCDGH<>+0(SB)/8, $0x1f83d9ab5be0cd19
DATA ivCDGH<>+8(SB)/8, $0x3c6ef372a54ff53a
GLOBL ivCDGH<>(SB), (NOPTR+RODATA), $16

// Words 0..3 and 12..15 of the block that ends a 64-byte message: 0x80,
// zeros, length 512.
DATA pad64W0<>+0(SB)/8, $0x0000000080000000
DATA pad64W0<>+8(SB)/8, $0
GLOBL pad64W0<>(SB), (NOPTR+RODATA), $16
DATA pad64W12<>+0(SB)/8, $0
DATA pad64W12<>+8(SB)/8, $0x0000020000000000
GLOBL pad64W12<>(SB), (NOPTR+RODATA), $16

// Words 8..15 of a 32-byte message's only block: 0x80, zeros, length 256.
DATA pad32W8<>+0(SB)/8, $0x0000000080000000
DATA pad32W8<>+8(SB)/8, $0
GLOBL pad32W8<>(SB), (NOPTR+RODATA), $16
DATA pad32W12<>+0(SB)/8, $0
DATA pad32W12<>+8(SB)/8, $0x0000010000000000
GLOBL pad32W12<>(SB), (NOPTR+RODATA), $16

// a = [A,B,C,D], b = [E,F,G,H] (state order, dword 0 first) → a = ABEF, b = CDGH.
#define TO_ABEF(a, b) \
	PSHUFD  $0xb1, a, a; \
	PSHUFD  $0x1b, b, b; \
	MOVO    a, X7; \
	PALIGNR $8, b, a; \
	PBLENDW $0xf0, X7, b

// The inverse of TO_ABEF.
#define FROM_ABEF(a, b) \
	PSHUFD  $0x1b, a, a; \
	PSHUFD  $0xb1, b, b; \
	MOVO    a, X7; \
	PBLENDW $0xf0, b, a; \
	PALIGNR $8, X7, b

// Four rounds on schedule words msg and the constants at k(AX).
#define RNDS4(msg, k) \
	MOVOU       k(AX), X0; \
	PADDD       msg, X0; \
	SHA256RNDS2 X0, X1, X2; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1

// The next four schedule words, into a: with a..d the last 16 words,
// W[i+16] = σ1(W[i+14]) + W[i+9] + σ0(W[i+1]) + W[i].
#define SCHED(a, b, c, d) \
	SHA256MSG1 b, a; \
	MOVO       d, X7; \
	PALIGNR    $4, c, X7; \
	PADDD      X7, a; \
	SHA256MSG2 d, a

// 64 rounds on the message words in X3..X6.
#define ROUNDS64 \
	RNDS4(X3, 0); \
	RNDS4(X4, 16); \
	RNDS4(X5, 32); \
	RNDS4(X6, 48); \
	SCHED(X3, X4, X5, X6); RNDS4(X3, 64); \
	SCHED(X4, X5, X6, X3); RNDS4(X4, 80); \
	SCHED(X5, X6, X3, X4); RNDS4(X5, 96); \
	SCHED(X6, X3, X4, X5); RNDS4(X6, 112); \
	SCHED(X3, X4, X5, X6); RNDS4(X3, 128); \
	SCHED(X4, X5, X6, X3); RNDS4(X4, 144); \
	SCHED(X5, X6, X3, X4); RNDS4(X5, 160); \
	SCHED(X6, X3, X4, X5); RNDS4(X6, 176); \
	SCHED(X3, X4, X5, X6); RNDS4(X3, 192); \
	SCHED(X4, X5, X6, X3); RNDS4(X4, 208); \
	SCHED(X5, X6, X3, X4); RNDS4(X5, 224); \
	SCHED(X6, X3, X4, X5); RNDS4(X6, 240)

// Load the 64-byte block at off(SI) as message words.
#define LOAD_BLOCK(off) \
	MOVOU  (off+0)(SI), X3; \
	PSHUFB X8, X3; \
	MOVOU  (off+16)(SI), X4; \
	PSHUFB X8, X4; \
	MOVOU  (off+32)(SI), X5; \
	PSHUFB X8, X5; \
	MOVOU  (off+48)(SI), X6; \
	PSHUFB X8, X6

// Hash the 32-byte digest the state in X1/X2 (ABEF/CDGH, finished) stands
// for, and store the result at (DI).
#define HASH32_AND_STORE \
	FROM_ABEF(X1, X2); \
	MOVO  X1, X3; \
	MOVO  X2, X4; \
	MOVOU pad32W8<>(SB), X5; \
	MOVOU pad32W12<>(SB), X6; \
	MOVOU ivABEF<>(SB), X1; \
	MOVOU ivCDGH<>(SB), X2; \
	ROUNDS64; \
	MOVOU ivABEF<>(SB), X9; \
	MOVOU ivCDGH<>(SB), X10; \
	PADDD X9, X1; \
	PADDD X10, X2; \
	FROM_ABEF(X1, X2); \
	PSHUFB X8, X1; \
	PSHUFB X8, X2; \
	MOVOU X1, 0(DI); \
	MOVOU X2, 16(DI)

// func blockSHANI(h *[8]uint32, p []byte)
TEXT ·blockSHANI(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), DX
	SHRQ $6, DX
	JZ   done
	LEAQ ·sha256K(SB), AX
	MOVOU bswapMask<>(SB), X8
	MOVOU 0(DI), X1
	MOVOU 16(DI), X2
	TO_ABEF(X1, X2)

loop:
	MOVO X1, X9
	MOVO X2, X10
	LOAD_BLOCK(0)
	ROUNDS64
	PADDD X9, X1
	PADDD X10, X2
	ADDQ $64, SI
	DECQ DX
	JNZ  loop

	FROM_ABEF(X1, X2)
	MOVOU X1, 0(DI)
	MOVOU X2, 16(DI)

done:
	RET

// func hash32SHANI(out *[32]byte, h *[8]uint32)
TEXT ·hash32SHANI(SB), NOSPLIT, $0-16
	MOVQ out+0(FP), DI
	MOVQ h+8(FP), SI
	LEAQ ·sha256K(SB), AX
	MOVOU bswapMask<>(SB), X8
	MOVOU 0(SI), X1
	MOVOU 16(SI), X2
	TO_ABEF(X1, X2)
	HASH32_AND_STORE
	RET

// func sha256d64SHANI(out *[32]byte, in *[64]byte)
TEXT ·sha256d64SHANI(SB), NOSPLIT, $0-16
	MOVQ out+0(FP), DI
	MOVQ in+8(FP), SI
	LEAQ ·sha256K(SB), AX
	MOVOU bswapMask<>(SB), X8

	// The message block, from the initial state.
	MOVOU ivABEF<>(SB), X1
	MOVOU ivCDGH<>(SB), X2
	LOAD_BLOCK(0)
	ROUNDS64
	MOVOU ivABEF<>(SB), X9
	MOVOU ivCDGH<>(SB), X10
	PADDD X9, X1
	PADDD X10, X2

	// The padding block. Its schedule is the same every time, but working
	// it out here costs nothing measurable: the rounds' dependency chain,
	// not the schedule, sets the pace.
	MOVO  X1, X9
	MOVO  X2, X10
	MOVOU pad64W0<>(SB), X3
	PXOR  X4, X4
	PXOR  X5, X5
	MOVOU pad64W12<>(SB), X6
	ROUNDS64
	PADDD X9, X1
	PADDD X10, X2

	HASH32_AND_STORE
	RET
