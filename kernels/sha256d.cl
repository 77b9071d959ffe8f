// SHA-256d nonce scanner for 80-byte block headers.
//
// Each work-item hashes VEC consecutive nonces (VEC is 1, 2, 4, 8 or 16,
// set by the host with -D VEC=n): base + get_global_id(0) * VEC + lane. GPUs
// run one nonce per work-item (VEC=1, their SIMT hardware is the vector);
// CPU drivers such as PoCL get VEC = their native int vector width, because
// the candidate branch with its atomic keeps their work-item-loop vectorizer
// from packing scalar work-items into SIMD lanes, while explicit vector
// types map straight onto AVX2/AVX-512/NEON registers.
//
// The host (kernels/params.go) precomputes everything that does not depend
// on the nonce, so per nonce the kernel runs rounds 3..63 of the header's
// second block and rounds 0..60 of the second hash:
//
//   - the midstate (the first 64 header bytes are the same for every nonce);
//   - rounds 0..2 of the second block, which read only W0..W2, and the
//     nonce-free half of round 3 (r3a, r3e: the nonce is W3 and enters
//     round 3 as a plain addend of both new a and new e);
//   - W16 and W17, which do not read W3, and the nonce-free terms of W18,
//     W19, W31 and W32 (p18, p19, p31, p32).
//
// W4..W15 of the second block (SHA-256 padding of an 80-byte message) and
// W8..W15 of the second hash (padding of a 32-byte message) are literals,
// so the compiler folds every term they contribute.
//
// Early exit: the most significant 32 bits of the hash, read as the
// little-endian 256-bit integer Bitcoin compares, are state word 7 of the
// second hash byte-swapped. H7 is final after round 60 (the e produced by
// round 60 becomes h three rounds later), so rounds 61..63 and the other
// seven words are never computed. A nonce whose top word is <= hi (the
// target's top word) is a candidate: the host confirms it with a full hash
// on the CPU before it becomes a share, so the kernel needs no 256-bit
// compare and can never yield a false share.
//
// Candidates go to out[1..slots] through the atomic counter out[0]. The
// counter keeps counting past slots, so the host knows when it lost
// candidates and rescans that range on the CPU instead of losing a winner.
//
// Written for OpenCL C 1.1 (atomic_inc on a global uint, rotate,
// bitselect, vstoreN) so it builds unchanged on PoCL and vendor drivers.

#ifndef VEC
#define VEC 1
#endif
#if VEC == 1
typedef uint uintv;
#define LANES 0u
#elif VEC == 2
typedef uint2 uintv;
#define LANES ((uint2)(0, 1))
#elif VEC == 4
typedef uint4 uintv;
#define LANES ((uint4)(0, 1, 2, 3))
#elif VEC == 8
typedef uint8 uintv;
#define LANES ((uint8)(0, 1, 2, 3, 4, 5, 6, 7))
#elif VEC == 16
typedef uint16 uintv;
#define LANES ((uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#error "VEC must be 1, 2, 4, 8 or 16"
#endif
#define VSTORE_(n) vstore##n
#define VSTORE_N(n) VSTORE_(n)
#define VSTORE VSTORE_N(VEC)

// Left rotates: OpenCL's rotate() is a rotate-left, so ror(x, n) is
// rotate(x, 32 - n).
#define ROTL(x, n) rotate((uintv)(x), (uintv)(n))
#define S0(a) (ROTL(a, 30) ^ ROTL(a, 19) ^ ROTL(a, 10))
#define S1(e) (ROTL(e, 26) ^ ROTL(e, 21) ^ ROTL(e, 7))
#define s0(x) (ROTL(x, 25) ^ ROTL(x, 14) ^ ((x) >> 3))
#define s1(x) (ROTL(x, 15) ^ ROTL(x, 13) ^ ((x) >> 10))
// Ch picks f where e is set, g elsewhere; Maj is b where a and c differ,
// else their common bit. bitselect maps to one instruction on most targets.
#define CH(e, f, g) bitselect((uintv)(g), (uintv)(f), (uintv)(e))
#define MAJ(a, b, c) bitselect((uintv)(a), (uintv)(b), (uintv)((a) ^ (c)))
#define BSWAP(x) (ROTL((x) & 0x00ff00ffu, 24) | ROTL((x) & 0xff00ff00u, 8))

// One round. Instead of moving eight words per round, the caller rotates
// the argument names: round r passes a..h rotated right by r mod 8, so the
// new a lands in the variable that held h and the new e in the one that
// held d.
#define RND(a, b, c, d, e, f, g, h, kw) \
	{ \
		uintv t1 = (h) + S1(e) + CH(e, f, g) + (kw); \
		(d) += t1; \
		(h) = t1 + S0(a) + MAJ(a, b, c); \
	}

// W[i] from W[i-2], W[i-7], W[i-15] and W[i-16].
#define SCHED(w_2, w_7, w_15, w_16) (s1(w_2) + (w_7) + s0(w_15) + (w_16))

__kernel void sha256d_scan(
	__global volatile uint *out, // out[0]: candidate count, out[1..slots]: nonces
	uint slots,
	uint base,  // first nonce of this launch
	uint count, // nonces in this launch; the global size is rounded up
	uint hi,    // target's most significant 32 bits
	// State after round 3 minus the nonce: a = r3a + W3, e = r3e + W3.
	uint r3a, uint a2, uint b2, uint c2, uint r3e, uint e2, uint f2, uint g2,
	uint m0, uint m1, uint m2, uint m3, uint m4, uint m5, uint m6, uint m7,
	uint w16, uint w17, uint p18, uint p19, uint p31, uint p32)
{
	// Lane i of this work-item hashes nonce base + first + i. Lanes past
	// count (the last work-item of a launch) hash harmlessly and are
	// dropped at the candidate test.
	uint first = (uint)get_global_id(0) * VEC;
	if (first >= count)
		return;
	uintv nonce = base + first + LANES;
	// The header stores the nonce little-endian; SHA-256 reads big-endian.
	uintv w3 = BSWAP(nonce);

	// State after round 3, placed where round 4's rotated names expect it
	// (a..h rotated right by 4: variable e holds a, ..., d holds h).
	uintv e = r3a + w3, f = a2, g = b2, h = c2;
	uintv a = r3e + w3, b = e2, c = f2, d = g2;

	RND(e, f, g, h, a, b, c, d, 0x3956c25bu + 0x80000000u);
	RND(d, e, f, g, h, a, b, c, 0x59f111f1u);
	RND(c, d, e, f, g, h, a, b, 0x923f82a4u);
	RND(b, c, d, e, f, g, h, a, 0xab1c5ed5u);
	RND(a, b, c, d, e, f, g, h, 0xd807aa98u);
	RND(h, a, b, c, d, e, f, g, 0x12835b01u);
	RND(g, h, a, b, c, d, e, f, 0x243185beu);
	RND(f, g, h, a, b, c, d, e, 0x550c7dc3u);
	RND(e, f, g, h, a, b, c, d, 0x72be5d74u);
	RND(d, e, f, g, h, a, b, c, 0x80deb1feu);
	RND(c, d, e, f, g, h, a, b, 0x9bdc06a7u);
	RND(b, c, d, e, f, g, h, a, 0xc19bf174u + 0x280u);

	RND(a, b, c, d, e, f, g, h, 0xe49b69c1u + w16);
	RND(h, a, b, c, d, e, f, g, 0xefbe4786u + w17);
	uintv w18 = p18 + s0(w3);
	RND(g, h, a, b, c, d, e, f, 0x0fc19dc6u + w18);
	uintv w19 = p19 + w3;
	RND(f, g, h, a, b, c, d, e, 0x240ca1ccu + w19);
	uintv w20 = s1(w18) + 0x80000000u;
	RND(e, f, g, h, a, b, c, d, 0x2de92c6fu + w20);
	uintv w21 = s1(w19);
	RND(d, e, f, g, h, a, b, c, 0x4a7484aau + w21);
	uintv w22 = s1(w20) + 0x280u;
	RND(c, d, e, f, g, h, a, b, 0x5cb0a9dcu + w22);
	uintv w23 = s1(w21) + w16;
	RND(b, c, d, e, f, g, h, a, 0x76f988dau + w23);
	uintv w24 = s1(w22) + w17;
	RND(a, b, c, d, e, f, g, h, 0x983e5152u + w24);
	uintv w25 = s1(w23) + w18;
	RND(h, a, b, c, d, e, f, g, 0xa831c66du + w25);
	uintv w26 = s1(w24) + w19;
	RND(g, h, a, b, c, d, e, f, 0xb00327c8u + w26);
	uintv w27 = s1(w25) + w20;
	RND(f, g, h, a, b, c, d, e, 0xbf597fc7u + w27);
	uintv w28 = s1(w26) + w21;
	RND(e, f, g, h, a, b, c, d, 0xc6e00bf3u + w28);
	uintv w29 = s1(w27) + w22;
	RND(d, e, f, g, h, a, b, c, 0xd5a79147u + w29);
	uintv w30 = s1(w28) + w23 + s0(0x280u);
	RND(c, d, e, f, g, h, a, b, 0x06ca6351u + w30);
	uintv w31 = s1(w29) + w24 + p31;
	RND(b, c, d, e, f, g, h, a, 0x14292967u + w31);
	uintv w32 = s1(w30) + w25 + p32;
	RND(a, b, c, d, e, f, g, h, 0x27b70a85u + w32);
	uintv w33 = SCHED(w31, w26, w18, w17);
	RND(h, a, b, c, d, e, f, g, 0x2e1b2138u + w33);
	uintv w34 = SCHED(w32, w27, w19, w18);
	RND(g, h, a, b, c, d, e, f, 0x4d2c6dfcu + w34);
	uintv w35 = SCHED(w33, w28, w20, w19);
	RND(f, g, h, a, b, c, d, e, 0x53380d13u + w35);
	uintv w36 = SCHED(w34, w29, w21, w20);
	RND(e, f, g, h, a, b, c, d, 0x650a7354u + w36);
	uintv w37 = SCHED(w35, w30, w22, w21);
	RND(d, e, f, g, h, a, b, c, 0x766a0abbu + w37);
	uintv w38 = SCHED(w36, w31, w23, w22);
	RND(c, d, e, f, g, h, a, b, 0x81c2c92eu + w38);
	uintv w39 = SCHED(w37, w32, w24, w23);
	RND(b, c, d, e, f, g, h, a, 0x92722c85u + w39);
	uintv w40 = SCHED(w38, w33, w25, w24);
	RND(a, b, c, d, e, f, g, h, 0xa2bfe8a1u + w40);
	uintv w41 = SCHED(w39, w34, w26, w25);
	RND(h, a, b, c, d, e, f, g, 0xa81a664bu + w41);
	uintv w42 = SCHED(w40, w35, w27, w26);
	RND(g, h, a, b, c, d, e, f, 0xc24b8b70u + w42);
	uintv w43 = SCHED(w41, w36, w28, w27);
	RND(f, g, h, a, b, c, d, e, 0xc76c51a3u + w43);
	uintv w44 = SCHED(w42, w37, w29, w28);
	RND(e, f, g, h, a, b, c, d, 0xd192e819u + w44);
	uintv w45 = SCHED(w43, w38, w30, w29);
	RND(d, e, f, g, h, a, b, c, 0xd6990624u + w45);
	uintv w46 = SCHED(w44, w39, w31, w30);
	RND(c, d, e, f, g, h, a, b, 0xf40e3585u + w46);
	uintv w47 = SCHED(w45, w40, w32, w31);
	RND(b, c, d, e, f, g, h, a, 0x106aa070u + w47);
	uintv w48 = SCHED(w46, w41, w33, w32);
	RND(a, b, c, d, e, f, g, h, 0x19a4c116u + w48);
	uintv w49 = SCHED(w47, w42, w34, w33);
	RND(h, a, b, c, d, e, f, g, 0x1e376c08u + w49);
	uintv w50 = SCHED(w48, w43, w35, w34);
	RND(g, h, a, b, c, d, e, f, 0x2748774cu + w50);
	uintv w51 = SCHED(w49, w44, w36, w35);
	RND(f, g, h, a, b, c, d, e, 0x34b0bcb5u + w51);
	uintv w52 = SCHED(w50, w45, w37, w36);
	RND(e, f, g, h, a, b, c, d, 0x391c0cb3u + w52);
	uintv w53 = SCHED(w51, w46, w38, w37);
	RND(d, e, f, g, h, a, b, c, 0x4ed8aa4au + w53);
	uintv w54 = SCHED(w52, w47, w39, w38);
	RND(c, d, e, f, g, h, a, b, 0x5b9cca4fu + w54);
	uintv w55 = SCHED(w53, w48, w40, w39);
	RND(b, c, d, e, f, g, h, a, 0x682e6ff3u + w55);
	uintv w56 = SCHED(w54, w49, w41, w40);
	RND(a, b, c, d, e, f, g, h, 0x748f82eeu + w56);
	uintv w57 = SCHED(w55, w50, w42, w41);
	RND(h, a, b, c, d, e, f, g, 0x78a5636fu + w57);
	uintv w58 = SCHED(w56, w51, w43, w42);
	RND(g, h, a, b, c, d, e, f, 0x84c87814u + w58);
	uintv w59 = SCHED(w57, w52, w44, w43);
	RND(f, g, h, a, b, c, d, e, 0x8cc70208u + w59);
	uintv w60 = SCHED(w58, w53, w45, w44);
	RND(e, f, g, h, a, b, c, d, 0x90befffau + w60);
	uintv w61 = SCHED(w59, w54, w46, w45);
	RND(d, e, f, g, h, a, b, c, 0xa4506cebu + w61);
	uintv w62 = SCHED(w60, w55, w47, w46);
	RND(c, d, e, f, g, h, a, b, 0xbef9a3f7u + w62);
	uintv w63 = SCHED(w61, w56, w48, w47);
	RND(b, c, d, e, f, g, h, a, 0xc67178f2u + w63);

	// 64 rounds bring the names back to a..h: add the midstate.
	uintv x0 = a + m0, x1 = b + m1, x2 = c + m2, x3 = d + m3;
	uintv x4 = e + m4, x5 = f + m5, x6 = g + m6, x7 = h + m7;

	// Second hash from the initial state; with literal inputs the compiler
	// folds most of round 0.
	a = 0x6a09e667u; b = 0xbb67ae85u; c = 0x3c6ef372u; d = 0xa54ff53au;
	e = 0x510e527fu; f = 0x9b05688cu; g = 0x1f83d9abu; h = 0x5be0cd19u;
	RND(a, b, c, d, e, f, g, h, 0x428a2f98u + x0);
	RND(h, a, b, c, d, e, f, g, 0x71374491u + x1);
	RND(g, h, a, b, c, d, e, f, 0xb5c0fbcfu + x2);
	RND(f, g, h, a, b, c, d, e, 0xe9b5dba5u + x3);
	RND(e, f, g, h, a, b, c, d, 0x3956c25bu + x4);
	RND(d, e, f, g, h, a, b, c, 0x59f111f1u + x5);
	RND(c, d, e, f, g, h, a, b, 0x923f82a4u + x6);
	RND(b, c, d, e, f, g, h, a, 0xab1c5ed5u + x7);
	RND(a, b, c, d, e, f, g, h, 0xd807aa98u + 0x80000000u);
	RND(h, a, b, c, d, e, f, g, 0x12835b01u);
	RND(g, h, a, b, c, d, e, f, 0x243185beu);
	RND(f, g, h, a, b, c, d, e, 0x550c7dc3u);
	RND(e, f, g, h, a, b, c, d, 0x72be5d74u);
	RND(d, e, f, g, h, a, b, c, 0x80deb1feu);
	RND(c, d, e, f, g, h, a, b, 0x9bdc06a7u);
	RND(b, c, d, e, f, g, h, a, 0xc19bf174u + 0x100u);
	uintv x16 = SCHED(0u, 0u, x1, x0);
	RND(a, b, c, d, e, f, g, h, 0xe49b69c1u + x16);
	uintv x17 = SCHED(0x100u, 0u, x2, x1);
	RND(h, a, b, c, d, e, f, g, 0xefbe4786u + x17);
	uintv x18 = SCHED(x16, 0u, x3, x2);
	RND(g, h, a, b, c, d, e, f, 0x0fc19dc6u + x18);
	uintv x19 = SCHED(x17, 0u, x4, x3);
	RND(f, g, h, a, b, c, d, e, 0x240ca1ccu + x19);
	uintv x20 = SCHED(x18, 0u, x5, x4);
	RND(e, f, g, h, a, b, c, d, 0x2de92c6fu + x20);
	uintv x21 = SCHED(x19, 0u, x6, x5);
	RND(d, e, f, g, h, a, b, c, 0x4a7484aau + x21);
	uintv x22 = SCHED(x20, 0x100u, x7, x6);
	RND(c, d, e, f, g, h, a, b, 0x5cb0a9dcu + x22);
	uintv x23 = SCHED(x21, x16, 0x80000000u, x7);
	RND(b, c, d, e, f, g, h, a, 0x76f988dau + x23);
	uintv x24 = SCHED(x22, x17, 0u, 0x80000000u);
	RND(a, b, c, d, e, f, g, h, 0x983e5152u + x24);
	uintv x25 = SCHED(x23, x18, 0u, 0u);
	RND(h, a, b, c, d, e, f, g, 0xa831c66du + x25);
	uintv x26 = SCHED(x24, x19, 0u, 0u);
	RND(g, h, a, b, c, d, e, f, 0xb00327c8u + x26);
	uintv x27 = SCHED(x25, x20, 0u, 0u);
	RND(f, g, h, a, b, c, d, e, 0xbf597fc7u + x27);
	uintv x28 = SCHED(x26, x21, 0u, 0u);
	RND(e, f, g, h, a, b, c, d, 0xc6e00bf3u + x28);
	uintv x29 = SCHED(x27, x22, 0u, 0u);
	RND(d, e, f, g, h, a, b, c, 0xd5a79147u + x29);
	uintv x30 = SCHED(x28, x23, 0x100u, 0u);
	RND(c, d, e, f, g, h, a, b, 0x06ca6351u + x30);
	uintv x31 = SCHED(x29, x24, x16, 0x100u);
	RND(b, c, d, e, f, g, h, a, 0x14292967u + x31);
	uintv x32 = SCHED(x30, x25, x17, x16);
	RND(a, b, c, d, e, f, g, h, 0x27b70a85u + x32);
	uintv x33 = SCHED(x31, x26, x18, x17);
	RND(h, a, b, c, d, e, f, g, 0x2e1b2138u + x33);
	uintv x34 = SCHED(x32, x27, x19, x18);
	RND(g, h, a, b, c, d, e, f, 0x4d2c6dfcu + x34);
	uintv x35 = SCHED(x33, x28, x20, x19);
	RND(f, g, h, a, b, c, d, e, 0x53380d13u + x35);
	uintv x36 = SCHED(x34, x29, x21, x20);
	RND(e, f, g, h, a, b, c, d, 0x650a7354u + x36);
	uintv x37 = SCHED(x35, x30, x22, x21);
	RND(d, e, f, g, h, a, b, c, 0x766a0abbu + x37);
	uintv x38 = SCHED(x36, x31, x23, x22);
	RND(c, d, e, f, g, h, a, b, 0x81c2c92eu + x38);
	uintv x39 = SCHED(x37, x32, x24, x23);
	RND(b, c, d, e, f, g, h, a, 0x92722c85u + x39);
	uintv x40 = SCHED(x38, x33, x25, x24);
	RND(a, b, c, d, e, f, g, h, 0xa2bfe8a1u + x40);
	uintv x41 = SCHED(x39, x34, x26, x25);
	RND(h, a, b, c, d, e, f, g, 0xa81a664bu + x41);
	uintv x42 = SCHED(x40, x35, x27, x26);
	RND(g, h, a, b, c, d, e, f, 0xc24b8b70u + x42);
	uintv x43 = SCHED(x41, x36, x28, x27);
	RND(f, g, h, a, b, c, d, e, 0xc76c51a3u + x43);
	uintv x44 = SCHED(x42, x37, x29, x28);
	RND(e, f, g, h, a, b, c, d, 0xd192e819u + x44);
	uintv x45 = SCHED(x43, x38, x30, x29);
	RND(d, e, f, g, h, a, b, c, 0xd6990624u + x45);
	uintv x46 = SCHED(x44, x39, x31, x30);
	RND(c, d, e, f, g, h, a, b, 0xf40e3585u + x46);
	uintv x47 = SCHED(x45, x40, x32, x31);
	RND(b, c, d, e, f, g, h, a, 0x106aa070u + x47);
	uintv x48 = SCHED(x46, x41, x33, x32);
	RND(a, b, c, d, e, f, g, h, 0x19a4c116u + x48);
	uintv x49 = SCHED(x47, x42, x34, x33);
	RND(h, a, b, c, d, e, f, g, 0x1e376c08u + x49);
	uintv x50 = SCHED(x48, x43, x35, x34);
	RND(g, h, a, b, c, d, e, f, 0x2748774cu + x50);
	uintv x51 = SCHED(x49, x44, x36, x35);
	RND(f, g, h, a, b, c, d, e, 0x34b0bcb5u + x51);
	uintv x52 = SCHED(x50, x45, x37, x36);
	RND(e, f, g, h, a, b, c, d, 0x391c0cb3u + x52);
	uintv x53 = SCHED(x51, x46, x38, x37);
	RND(d, e, f, g, h, a, b, c, 0x4ed8aa4au + x53);
	uintv x54 = SCHED(x52, x47, x39, x38);
	RND(c, d, e, f, g, h, a, b, 0x5b9cca4fu + x54);
	uintv x55 = SCHED(x53, x48, x40, x39);
	RND(b, c, d, e, f, g, h, a, 0x682e6ff3u + x55);
	uintv x56 = SCHED(x54, x49, x41, x40);
	RND(a, b, c, d, e, f, g, h, 0x748f82eeu + x56);
	uintv x57 = SCHED(x55, x50, x42, x41);
	RND(h, a, b, c, d, e, f, g, 0x78a5636fu + x57);
	uintv x58 = SCHED(x56, x51, x43, x42);
	RND(g, h, a, b, c, d, e, f, 0x84c87814u + x58);
	uintv x59 = SCHED(x57, x52, x44, x43);
	RND(f, g, h, a, b, c, d, e, 0x8cc70208u + x59);
	uintv x60 = SCHED(x58, x53, x45, x44);
	RND(e, f, g, h, a, b, c, d, 0x90befffau + x60);

	// Round 60 (names rotated by 4) left its new e in h; it reaches word 7
	// unchanged. Everything else of rounds 57..60 is dead code.
	uintv top = BSWAP(h + 0x5be0cd19u);
#if VEC == 1
	if (top <= hi) {
		uint slot = atomic_inc(&out[0]);
		if (slot < slots)
			out[1 + slot] = nonce;
	}
#else
	// One vector compare decides the common case: no lane is a candidate.
	if (any(top <= hi)) {
		// Lanes cannot be indexed by a variable; spill them.
		uint t[VEC];
		VSTORE(top, 0, t);
		for (uint i = 0; i < VEC; i++) {
			if (t[i] <= hi && first + i < count) {
				uint slot = atomic_inc(&out[0]);
				if (slot < slots)
					out[1 + slot] = base + first + i;
			}
		}
	}
#endif
}
