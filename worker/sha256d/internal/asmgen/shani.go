package main

import "fmt"

// SHA-NI kernel. sha256rnds2 has a latency of several cycles and a
// throughput of about one per cycle on current cores, so each loop iteration
// carries `lanes` independent nonces whose round chains the out-of-order
// core overlaps. With more than two lanes the message groups no longer fit
// in the 16 XMM registers and live in an aligned stack area instead.

type shaLane struct {
	l        int
	abef     string // register holding A,B,E,F (swaps with cdgh after every sha256rnds2)
	cdgh     string
	r        [4]string // message group registers (register mode)
	t, u     string    // temporaries
	mem      bool
	frameOff int
}

// grp is the operand holding message group j of this lane.
func (ln *shaLane) grp(j int) string {
	if ln.mem {
		return fmt.Sprintf("%d(SI)", ln.frameOff+16*(j%4))
	}
	return ln.r[j%4]
}

// dst is the register a new group j is computed in.
func (ln *shaLane) dst(j int) string {
	if ln.mem {
		return ln.t
	}
	return ln.r[j%4]
}

// start loads group j-4 into the register group j is computed in.
func (ln *shaLane) start(a *asm, j int) {
	if ln.mem {
		a.i("MOVO %s, %s", ln.grp(j-4), ln.t)
	}
}

func (ln *shaLane) finish(a *asm, j int) {
	if ln.mem {
		a.i("MOVO %s, %s", ln.t, ln.grp(j))
	}
}

// rnds2 runs two rounds with the W+K pair in the low half of X0.
func (ln *shaLane) rnds2(a *asm) {
	a.i("SHA256RNDS2 X0, %s, %s", ln.abef, ln.cdgh)
	ln.abef, ln.cdgh = ln.cdgh, ln.abef
}

// rounds4 runs the four rounds of message group j (in register src).
func (ln *shaLane) rounds4(a *asm, src string, j int) {
	a.i("MOVO %s, X0", src)
	a.i("PADDD shaK<>+%d(SB), X0", 16*j)
	ln.rnds2(a)
	a.i("PSHUFD $0x0e, X0, X0")
	ln.rnds2(a)
}

// general computes group j ≥ 8 (W[4j..4j+3]) from the four before it.
func (ln *shaLane) general(a *asm, j int) {
	t := ln.dst(j)
	ln.start(a, j)
	a.i("SHA256MSG1 %s, %s", ln.grp(j-3), t)
	a.i("MOVO %s, %s", ln.grp(j-1), ln.u)
	a.i("PALIGNR $4, %s, %s", ln.grp(j-2), ln.u)
	a.i("PADDD %s, %s", ln.u, t)
	a.i("SHA256MSG2 %s, %s", ln.grp(j-1), t)
	ln.finish(a, j)
}

func genSHANI() []byte {
	a := &asm{}
	a.f("%s", header)

	a.data("shaK", k256[:])
	// Rounds 4..15 of the header's second block: W4 = 0x80000000 (padding),
	// W15 = 640 (message bits), the rest zero, so W+K is job-independent.
	var wk1 []uint32
	for r := 4; r < 16; r++ {
		w := uint32(0)
		switch r {
		case 4:
			w = 0x80000000
		case 15:
			w = 640
		}
		wk1 = append(wk1, w+k256[r])
	}
	a.data("shaWK1", wk1)
	// Rounds 8..15 of the second hash: W8 = 0x80000000, W15 = 256.
	var wk2 []uint32
	for r := 8; r < 16; r++ {
		w := uint32(0)
		switch r {
		case 8:
			w = 0x80000000
		case 15:
			w = 256
		}
		wk2 = append(wk2, w+k256[r])
	}
	a.data("shaWK2", wk2)
	a.data("shaPad", []uint32{0x80000000, 0, 0, 0})
	a.data("shaLen256", []uint32{0, 0, 0, 256})
	a.data("shaIVABEF", []uint32{iv[5], iv[4], iv[1], iv[0]})
	a.data("shaIVCDGH", []uint32{iv[7], iv[6], iv[3], iv[2]})

	for _, lanes := range []int{1, 2, 3, 4} {
		shaniKernel(a, lanes)
	}
	return a.Bytes()
}

func shaniKernel(a *asm, lanes int) {
	// Two lanes fit in registers. A third keeps its state in registers and
	// its message groups on the stack, and every lane borrows X0 as the
	// scratch register between sha256rnds2 blocks; four lanes spill all.
	frame := 0
	if lanes > 2 {
		frame = 64*lanes + 16
	}
	ls := make([]*shaLane, lanes)
	for l := range ls {
		ln := &shaLane{l: l, frameOff: 64 * l}
		switch {
		case lanes == 4:
			ln.mem = true
			ln.abef, ln.cdgh = fmt.Sprintf("X%d", 1+2*l), fmt.Sprintf("X%d", 2+2*l)
			ln.t, ln.u = fmt.Sprintf("X%d", 9+l), fmt.Sprintf("X%d", 13+l%3)
		case l == 2:
			ln.mem = true
			ln.abef, ln.cdgh, ln.t, ln.u = "X13", "X14", "X15", "X0"
		default:
			ln.abef, ln.cdgh = fmt.Sprintf("X%d", 1+6*l), fmt.Sprintf("X%d", 2+6*l)
			for j := range ln.r {
				ln.r[j] = fmt.Sprintf("X%d", 3+6*l+j)
			}
			ln.u = fmt.Sprintf("X%d", 13+l)
			if lanes == 3 {
				ln.u = "X0"
			}
		}
		ls[l] = ln
	}
	each := func(fn func(ln *shaLane)) {
		for _, ln := range ls {
			fn(ln)
		}
	}

	a.f("// func shaniScan%d(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)\n", lanes)
	a.f("TEXT ·shaniScan%d(SB), NOSPLIT, $%d-24\n", lanes, frame)
	a.i("MOVQ k+0(FP), DI")
	a.i("MOVL nonce+8(FP), DX")
	a.i("MOVL groups+12(FP), CX")
	a.i("MOVL CX, R10")
	a.i("MOVL %d(DI), BX", kdHi)
	a.i("XORL R8, R8")
	a.i("VZEROUPPER")
	if frame > 0 {
		a.i("LEAQ 15(SP), SI")
		a.i("ANDQ $-16, SI")
	}
	a.f("loop%d:\n", lanes)

	// First block: state after rounds 0,1 is per job; rounds 2,3 take the
	// nonce (W3, byte-swapped because SHA-256 reads words big-endian).
	each(func(ln *shaLane) {
		a.i("LEAL %d(DX), AX", ln.l)
		a.i("BSWAPL AX")
		t := ln.dst(0)
		a.i("MOVOU %d(DI), %s", kdG0, t)
		a.i("PINSRD $3, AX, %s", t)
		ln.finish(a, 0)
		a.i("ADDL $0x%08x, AX", k256[3])
		a.i("MOVOU %d(DI), X0", kdWK23)
		a.i("PINSRD $1, AX, X0")
		a.i("MOVOU %d(DI), %s", kdS2ABEF, ln.abef)
		a.i("MOVOU %d(DI), %s", kdS2CDGH, ln.cdgh)
		ln.rnds2(a)
	})
	for p := 0; p < 6; p++ { // rounds 4..15: constant padding words
		each(func(ln *shaLane) {
			a.i("MOVQ shaWK1<>+%d(SB), X0", 8*p)
			ln.rnds2(a)
		})
	}
	for j := 4; j < 16; j++ {
		each(func(ln *shaLane) {
			t := ln.dst(j)
			switch j {
			case 4: // msg1(G0, G1) + W9..W12 (zero) + σ1 terms (per job)
				ln.start(a, j)
				a.i("SHA256MSG1 shaPad<>(SB), %s", t)
				a.i("MOVOU %d(DI), %s", kdC4, ln.u)
				a.i("PADDD %s, %s", ln.u, t)
			case 5: // everything but the σ1 terms is per job
				a.i("MOVOU %d(DI), %s", kdC5, t)
				a.i("SHA256MSG2 %s, %s", ln.grp(4), t)
			case 6: // msg1(G2, G3) is zero
				a.i("MOVO %s, %s", ln.grp(5), t)
				a.i("PALIGNR $4, %s, %s", ln.grp(4), t)
				a.i("SHA256MSG2 %s, %s", ln.grp(5), t)
			case 7: // msg1(G3, G4) is per job
				a.i("MOVO %s, %s", ln.grp(6), t)
				a.i("PALIGNR $4, %s, %s", ln.grp(5), t)
				a.i("MOVOU %d(DI), %s", kdC7, ln.u)
				a.i("PADDD %s, %s", ln.u, t)
				a.i("SHA256MSG2 %s, %s", ln.grp(6), t)
			default:
				ln.general(a, j)
				ln.rounds4(a, t, j)
				return
			}
			ln.finish(a, j)
			ln.rounds4(a, t, j)
		})
	}

	// Second hash: its message is the first hash (midstate + state), words
	// in order A..H; the register layout is ABEF/CDGH, hence the shuffles.
	each(func(ln *shaLane) {
		a.i("MOVOU %d(DI), %s", kdMidABEF, ln.u)
		a.i("PADDD %s, %s", ln.u, ln.abef)
		a.i("MOVOU %d(DI), %s", kdMidCDGH, ln.u)
		a.i("PADDD %s, %s", ln.u, ln.cdgh)
		a.i("PSHUFD $0x1b, %s, %s", ln.abef, ln.abef) // A,B,E,F from dword 0 up
		a.i("PSHUFD $0x1b, %s, %s", ln.cdgh, ln.cdgh) // C,D,G,H
		g0, g1 := ln.dst(0), ln.dst(1)
		if ln.mem {
			g1 = ln.u
		}
		a.i("MOVO %s, %s", ln.abef, g0)
		a.i("PUNPCKLQDQ %s, %s", ln.cdgh, g0) // A,B,C,D
		a.i("MOVO %s, %s", ln.abef, g1)
		a.i("PUNPCKHQDQ %s, %s", ln.cdgh, g1) // E,F,G,H
		if ln.mem {
			a.i("MOVO %s, %s", g0, ln.grp(0))
			a.i("MOVO %s, %s", g1, ln.grp(1))
		}
		a.i("MOVO shaIVABEF<>(SB), %s", ln.abef)
		a.i("MOVO shaIVCDGH<>(SB), %s", ln.cdgh)
		ln.rounds4(a, g0, 0)
		if ln.mem {
			ln.rounds4(a, ln.grp(1), 1)
		} else {
			ln.rounds4(a, g1, 1)
		}
	})
	for p := 0; p < 4; p++ { // rounds 8..15: constant padding words
		each(func(ln *shaLane) {
			a.i("MOVQ shaWK2<>+%d(SB), X0", 8*p)
			ln.rnds2(a)
		})
	}
	for j := 4; j < 16; j++ {
		each(func(ln *shaLane) {
			t := ln.dst(j)
			switch j {
			case 4: // + W9..W12 (zero)
				ln.start(a, j)
				a.i("SHA256MSG1 %s, %s", ln.grp(1), t)
				a.i("SHA256MSG2 shaLen256<>(SB), %s", t)
			case 5: // msg1(G1, G2) + W13..W16
				ln.start(a, j)
				a.i("SHA256MSG1 shaPad<>(SB), %s", t)
				a.i("MOVO %s, %s", ln.grp(4), ln.u)
				a.i("PALIGNR $4, shaLen256<>(SB), %s", ln.u)
				a.i("PADDD %s, %s", ln.u, t)
				a.i("SHA256MSG2 %s, %s", ln.grp(4), t)
			case 6: // msg1(G2, G3) is the padding word alone
				a.i("MOVO %s, %s", ln.grp(5), t)
				a.i("PALIGNR $4, %s, %s", ln.grp(4), t)
				a.i("PADDD shaPad<>(SB), %s", t)
				a.i("SHA256MSG2 %s, %s", ln.grp(5), t)
			case 7: // msg1(G3, G4)
				a.i("MOVO shaLen256<>(SB), %s", t)
				a.i("SHA256MSG1 %s, %s", ln.grp(4), t)
				a.i("MOVO %s, %s", ln.grp(6), ln.u)
				a.i("PALIGNR $4, %s, %s", ln.grp(5), ln.u)
				a.i("PADDD %s, %s", ln.u, t)
				a.i("SHA256MSG2 %s, %s", ln.grp(6), t)
			default:
				ln.general(a, j)
				if j == 15 {
					// Only rounds 60 and 61 are needed: after them F holds
					// the e of round 60, which rounds 61..63 merely move to
					// H. Its sum with the initial H7 is the hash's top word.
					a.i("MOVO %s, X0", t)
					a.i("PADDD shaK<>+%d(SB), X0", 16*j)
					ln.rnds2(a)
					return
				}
			}
			if j != 15 {
				if j < 8 {
					ln.finish(a, j)
				}
				ln.rounds4(a, t, j)
			}
		})
	}
	each(func(ln *shaLane) {
		a.i("MOVQ %s, AX", ln.abef)
		a.i("ADDL $0x%08x, AX", iv[7])
		a.i("BSWAPL AX")
		a.i("CMPL AX, BX")
		a.i("JLS cand%d_%d", lanes, ln.l)
		a.f("back%d_%d:\n", lanes, ln.l)
	})
	a.i("ADDL $%d, DX", lanes)
	a.i("DECL CX")
	a.i("TESTL R8, R8")
	a.i("JNZ out%d", lanes)
	a.i("TESTL CX, CX")
	a.i("JNZ loop%d", lanes)
	a.f("out%d:\n", lanes)
	a.i("SUBL CX, R10")
	a.i("IMUL3L $%d, R10, R10", lanes)
	a.i("MOVL R10, done+16(FP)")
	a.i("MOVL R8, mask+20(FP)")
	a.i("RET")
	for _, ln := range ls {
		a.f("cand%d_%d:\n", lanes, ln.l)
		a.i("ORL $%d, R8", 1<<ln.l)
		a.i("JMP back%d_%d", lanes, ln.l)
	}
	a.f("\n")
}
