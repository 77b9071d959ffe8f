package main

import (
	"fmt"
	"math/bits"
)

// Lane-per-nonce SIMD kernels: AVX2 (8 nonces in YMM) and AVX-512 (16 in
// ZMM). Both run the plan of plan.go through the same round and schedule
// code below; an isa value only spells the primitive operations. So the
// AVX-512 kernel, which this project's test machine cannot execute, shares
// everything but those spellings with the AVX2 kernel that the tests run.
//
// Registers (same numbers in both): 0..7 the state a..h, renamed every round
// instead of moved; 8 the Maj carry (AVX2); 9, 10, 15 round temporaries;
// 11..14 schedule temporaries. Var schedule words live in a 64-slot stack
// area (one vector per word); job addends and midstate are read from
// kernelData, constants from a read-only table.

type isa struct {
	name    string
	lanes   int
	width   int // bytes per vector
	reg     func(int) string
	ternlog bool // AVX-512: VPTERNLOGD, VPRORD, embedded broadcast, k-masks
}

var avx2ISA = &isa{name: "avx2", lanes: 8, width: 32, reg: func(i int) string { return fmt.Sprintf("Y%d", i) }}
var avx512ISA = &isa{name: "avx512", lanes: 16, width: 64, reg: func(i int) string { return fmt.Sprintf("Z%d", i) }, ternlog: true}

type vgen struct {
	*asm
	is       *isa
	ct       *constTab
	tmp      string // round temporary; trades places with the AVX2 Maj carry
	inLoop   bool   // emitting a rolled loop body (see rolled)
	baseWord int
	// slotReg holds the base of this stream's 64-slot schedule area,
	// loopReg the slot of word baseWord inside a rolled loop.
	slotReg, loopReg string
	// keepW keeps the last two computed schedule words in registers 16
	// and 17 (AVX-512 with one stream, which leaves Z16..Z31 free); held
	// marks the words of the current block that sched computed.
	keepW bool
	held  [64]bool
}

// constTab interns the constants of one kernel: one vector (AVX2) or dword
// (AVX-512) each.
type constTab struct {
	consts []uint32
	cix    map[uint32]int
}

func (g *vgen) r(i int) string { return g.is.reg(i) }

// cst returns the operand of constant v: a full vector for AVX2, a dword to
// broadcast for AVX-512.
func (g *vgen) cst(v uint32) string {
	i, ok := g.ct.cix[v]
	if !ok {
		i = len(g.ct.consts)
		g.ct.cix[v] = i
		g.ct.consts = append(g.ct.consts, v)
	}
	stride := 4
	if !g.is.ternlog {
		stride = g.is.width
	}
	return fmt.Sprintf("%sC<>+%d(SB)", g.is.name, i*stride)
}

// job returns the kernelData operand of an 8-times-repeated job value.
func job(off int) string { return fmt.Sprintf("%d(DI)", off) }

// slot is the stack operand of schedule word j: slotReg is the base of the
// 64-slot area; inside a rolled loop loopReg points at the slot of word
// baseWord of the current iteration.
func slot(g *vgen, j int) string {
	if g.inLoop {
		return fmt.Sprintf("%d(%s)", (j-g.baseWord)*g.is.width, g.loopReg)
	}
	return fmt.Sprintf("%d(%s)", j*g.is.width, g.slotReg)
}

// kOp returns the operand of K[r] (broadcast for AVX-512).
func (g *vgen) kOp(r int) string {
	if g.inLoop {
		return fmt.Sprintf("%d(R12)", (r-g.baseWord)*g.kStride())
	}
	return fmt.Sprintf("%sK<>+%d(SB)", g.is.name, r*g.kStride())
}

func (g *vgen) kStride() int {
	if g.is.ternlog {
		return 4
	}
	return g.is.width
}

// rolled emits rounds from..from+8*iters-1 as a loop of eight rounds. Eight,
// because the state registers' roles rotate with period 8 (and the AVX2
// carry/temporary swap with period 2), so the body's register assignment is
// the same at both ends. Only rounds whose schedule words read four
// nonce-dependent words and no addend qualify; the earlier, cheaper rounds
// stay unrolled. Rolling keeps the kernel small enough for the L1
// instruction cache: fully unrolled, the AVX2 loop is 32 KB.
func (g *vgen) rolled(st *vstate, plans *[64]wordPlan, from, iters int, label string) {
	for r := from; r < from+8*iters; r++ {
		if p := plans[r]; len(p.vars) != 4 || p.jobIx >= 0 || p.c != 0 {
			panic(fmt.Sprintf("round %d is not uniform: %+v", r, p))
		}
	}
	g.i("MOVQ $%d, R13", iters)
	g.i("LEAQ %d(%s), %s", from*g.is.width, g.slotReg, g.loopReg)
	g.i("LEAQ %sK<>+%d(SB), R12", g.is.name, from*g.kStride())
	g.f("%s:\n", label)
	g.inLoop, g.baseWord = true, from
	for r := from; r < from+8; r++ {
		acc := g.sched(r, plans[r])
		g.round(st, func(h string) { g.addB(g.kOp(r), h); g.add(acc, h) }, true)
	}
	g.inLoop = false
	g.i("ADDQ $%d, %s", 8*g.is.width, g.loopReg)
	g.i("ADDQ $%d, R12", 8*g.kStride())
	g.i("DECQ R13")
	g.i("JNZ %s", label)
}

// addB: dst += a memory operand holding one value for every lane (constant
// or job value): a full vector for AVX2, an embedded broadcast for AVX-512.
func (g *vgen) addB(mem, dst string) {
	if g.is.ternlog {
		g.i("VPADDD.BCST %s, %s, %s", mem, dst, dst)
	} else {
		g.i("VPADDD %s, %s, %s", mem, dst, dst)
	}
}

// loadB: dst = a memory operand holding one value for every lane.
func (g *vgen) loadB(mem, dst string) {
	if g.is.ternlog {
		g.i("VPBROADCASTD %s, %s", mem, dst)
	} else {
		g.i("VMOVDQU %s, %s", mem, dst)
	}
}

func (g *vgen) mov(src, dst string) {
	if g.is.ternlog {
		g.i("VMOVDQA32 %s, %s", src, dst)
	} else {
		g.i("VMOVDQA %s, %s", src, dst)
	}
}

func (g *vgen) load(j int, dst string)  { g.i("%s %s, %s", g.vmov(), slot(g, j), dst) }
func (g *vgen) store(src string, j int) { g.i("%s %s, %s", g.vmov(), src, slot(g, j)) }
func (g *vgen) add(src, dst string)     { g.i("VPADDD %s, %s, %s", src, dst, dst) }

// sigma sets dst = ror(x,n1) ^ ror(x,n2) ^ (ror or shr)(x,n3), x kept.
// AVX2 has no vector rotate and none of SHA-256's rotate counts is a
// multiple of 8 (which VPSHUFB could do), so each rotate is two shifts.
func (g *vgen) sigma(dst, x string, n1, n2, n3 int, shr3 bool, t1, t2 string) {
	if g.is.ternlog {
		g.i("VPRORD $%d, %s, %s", n1, x, dst)
		g.i("VPRORD $%d, %s, %s", n2, x, t1)
		if shr3 {
			g.i("VPSRLD $%d, %s, %s", n3, x, t2)
		} else {
			g.i("VPRORD $%d, %s, %s", n3, x, t2)
		}
		g.i("VPTERNLOGD $0x96, %s, %s, %s", t2, t1, dst) // three-way XOR
		return
	}
	// Three independent rotate pairs XORed as a tree: 4 operations deep
	// instead of 6 for a running XOR, which matters because Σ1 is on the
	// round's critical path (e → Σ1 → new e).
	g.i("VPSRLD $%d, %s, %s", n1, x, dst)
	g.i("VPSLLD $%d, %s, %s", 32-n1, x, t1)
	g.i("VPXOR %s, %s, %s", t1, dst, dst)
	g.i("VPSRLD $%d, %s, %s", n2, x, t1)
	g.i("VPSLLD $%d, %s, %s", 32-n2, x, t2)
	g.i("VPXOR %s, %s, %s", t2, t1, t1)
	g.i("VPXOR %s, %s, %s", t1, dst, dst)
	g.i("VPSRLD $%d, %s, %s", n3, x, t1)
	if !shr3 {
		g.i("VPSLLD $%d, %s, %s", 32-n3, x, t2)
		g.i("VPXOR %s, %s, %s", t2, t1, t1)
	}
	g.i("VPXOR %s, %s, %s", t1, dst, dst)
}

// vstate is the register assignment of a..h plus the AVX2 Maj carry (b^c).
type vstate struct {
	s     [8]string
	carry string
}

// round runs one round. addWK adds K[r]+W[r] to h; needA false skips the
// new a (Σ0 and Maj), which the second hash's last rounds do not need.
func (g *vgen) round(st *vstate, addWK func(h string), needA bool) {
	a, b, c, d, e, f, gg, h := st.s[0], st.s[1], st.s[2], st.s[3], st.s[4], st.s[5], st.s[6], st.s[7]
	if g.is.ternlog {
		g.roundTernlog(st, addWK, needA)
		return
	}
	t0, t1, t2 := g.r(9), g.tmp, g.r(15)
	// T1 = h + K + W + Ch + Σ1. Everything but Σ1 is added to h and to d
	// first, so the new e (d + T1) is one add after Σ1 on the e chain.
	addWK(h)
	g.i("VPXOR %s, %s, %s", f, gg, t0) // Ch = g ^ (e & (f ^ g))
	g.i("VPAND %s, %s, %s", e, t0, t0)
	g.i("VPXOR %s, %s, %s", gg, t0, t0)
	g.add(t0, h)
	g.add(h, d)
	g.sigma(t0, e, 6, 11, 25, false, t1, t2)
	g.add(t0, h) // h = T1
	g.add(t0, d) // d = new e
	if needA {
		g.sigma(t0, a, 2, 13, 22, false, t1, t2)
		g.add(t0, h)
		// Maj(a,b,c) = b ^ ((a^b) & (b^c)); b^c is the previous round's
		// a^b, kept in the carry register: 3 ops, not 4.
		g.i("VPXOR %s, %s, %s", a, b, t1)
		g.i("VPAND %s, %s, %s", t1, st.carry, st.carry)
		g.i("VPXOR %s, %s, %s", b, st.carry, st.carry)
		g.add(st.carry, h)
		// a^b becomes the carry; the old carry register is free and
		// becomes the temporary (renaming instead of a move).
		st.carry, g.tmp = t1, st.carry
	}
	st.s = [8]string{h, a, b, c, d, e, f, gg}
}

// roundTernlog is round for AVX-512, ordered for latency: every operation
// there takes two cycles, so the new e is d + (h+K+W) + Ch + Σ1 with d+h+K+W
// formed off the e chain (e → Σ1 → add: 6 cycles, not 8), and the new a adds
// Maj before Σ0 (a → Σ0 → add).
func (g *vgen) roundTernlog(st *vstate, addWK func(h string), needA bool) {
	a, b, c, d, e, f, gg, h := st.s[0], st.s[1], st.s[2], st.s[3], st.s[4], st.s[5], st.s[6], st.s[7]
	t0, t1, t2, t3 := g.r(9), g.r(10), g.r(15), g.r(8)
	addWK(h)
	g.add(h, d)
	g.mov(e, t0)
	g.i("VPTERNLOGD $0xca, %s, %s, %s", gg, f, t0) // Ch: e ? f : g
	g.add(t0, d)
	g.add(t0, h)
	g.sigma(t0, e, 6, 11, 25, false, t1, t2)
	g.add(t0, d) // d = new e
	g.add(t0, h) // h = T1
	if needA {
		g.mov(a, t3)
		g.i("VPTERNLOGD $0xe8, %s, %s, %s", c, b, t3) // Maj
		g.add(t3, h)
		g.sigma(t0, a, 2, 13, 22, false, t1, t2)
		g.add(t0, h)
	}
	st.s = [8]string{h, a, b, c, d, e, f, gg}
}

// sched computes var schedule word i of the plan into reg 11 and its slot.
// W[i-2] is the newest input (computed two rounds ago), so its σ1 term is
// added last: W[i-2] → σ1 → one add is the schedule's recurrence. With
// keepW, W[i-2] is also still in a register (16 + i%2), so that chain does
// not wait for a store to forward to a load.
func (g *vgen) sched(i int, p wordPlan) string {
	acc, x, sg, t1, t2 := g.r(11), g.r(12), g.r(13), g.r(14), g.r(15)
	var last *term
	var rest []term
	for _, t := range p.vars {
		if t.src == i-2 {
			last = &t
			continue
		}
		rest = append(rest, t)
	}
	first := true
	term := func(t term) {
		switch t.fn {
		case 0:
			if first {
				g.load(t.src, acc)
			} else {
				g.i("VPADDD %s, %s, %s", slot(g, t.src), acc, acc)
			}
		default:
			src := x
			if g.keepW && g.held[t.src] && t.src == i-2 {
				src = g.wreg(t.src)
			} else {
				g.load(t.src, x)
			}
			dst := sg
			if first {
				dst = acc
			}
			if t.fn == 1 {
				g.sigma(dst, src, 7, 18, 3, true, t1, t2)
			} else {
				g.sigma(dst, src, 17, 19, 10, true, t1, t2)
			}
			if !first {
				g.add(sg, acc)
			}
		}
		first = false
	}
	for _, t := range rest {
		term(t)
	}
	addend := func(mem string) {
		if first {
			g.loadB(mem, acc)
			first = false
		} else {
			g.addB(mem, acc)
		}
	}
	if p.jobIx >= 0 {
		addend(job(kdVJ + 32*p.jobIx))
	}
	if p.c != 0 {
		addend(g.cst(p.c))
	}
	if last != nil {
		term(*last)
	}
	g.store(acc, i)
	if g.keepW {
		g.mov(acc, g.wreg(i))
		g.held[i] = true
	}
	return acc
}

// wreg is the register that keeps schedule word j while keepW.
func (g *vgen) wreg(j int) string { return g.is.reg(16 + j%2) }

func (g *vgen) vmov() string {
	if g.is.ternlog {
		return "VMOVDQA32"
	}
	return "VMOVDQA"
}

// genVec writes one kernel:
//
//	func <isa>Scan(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)
//
// with the laneKernel contract of lanes_amd64.go.
func genVec(is *isa) []byte {
	body := &asm{}
	w := is.width
	lanes := is.lanes
	g := &vgen{asm: body, is: is, ct: &constTab{cix: map[uint32]int{}}, slotReg: "SI", loopReg: "R11"}
	// AVX-512 has 32 registers, the kernel needs 16: two hold the newest
	// schedule words.
	g.keepW = is.ternlog
	g.tmp = g.r(10)
	st := &vstate{carry: g.r(8)}
	frame := 64*w + w // 64 schedule slots plus slack to align them
	fn := is.name + "Scan"
	body.f("// func %s(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)\n", fn)
	body.f("//\n// %d nonces per iteration, one per 32-bit lane.\n", lanes)
	// Not NOSPLIT: the frame is too large for the nosplit limit, so the
	// assembler adds the usual stack check.
	body.f("TEXT ·%s(SB), 0, $%d-24\n", fn, frame)
	body.i("MOVQ k+0(FP), DI")
	body.i("MOVL nonce+8(FP), DX")
	body.i("MOVL groups+12(FP), CX")
	body.i("MOVL CX, R10")
	body.i("LEAQ %d(SP), SI", w-1)
	body.i("ANDQ $-%d, SI", w)
	body.f("loop_%s:\n", is.name)

	// W3 = the lanes' nonces, byte-swapped (SHA-256 reads big-endian words,
	// the header stores the nonce little-endian). Block 2 of the header
	// resumes after round 3, which runs per job with W3 = 0; W3 enters a
	// and e linearly.
	body.i("VMOVD DX, X11")
	n := g.r(11)
	g.i("VPBROADCASTD X11, %s", n)
	g.i("VPADDD %sLane<>(SB), %s, %s", is.name, n, n)
	g.i("VPSHUFB %sBswap<>(SB), %s, %s", is.name, n, n)
	g.store(n, 3)
	for j := 0; j < 8; j++ {
		st.s[j] = g.r(j)
		g.loadB(job(kdV4+32*j), st.s[j])
	}
	g.add(n, st.s[0])
	g.add(n, st.s[4])
	if !is.ternlog {
		g.i("VPXOR %s, %s, %s", st.s[1], st.s[2], st.carry)
	}
	plan1 := planBlock1()
	const roll1 = 40 // rounds 40..63 run as a loop
	for r := 4; r < roll1; r++ {
		var addWK func(h string)
		switch {
		case r < 16:
			c, _ := block1Const(r)
			addWK = func(h string) { g.addB(g.cst(c+k256[r]), h) }
		case r < 18: // W16+K16, W17+K17 per job
			addWK = func(h string) { g.addB(job(kdVJ+32*r), h) }
		default:
			acc := g.sched(r, plan1[r])
			addWK = func(h string) { g.addB(g.kOp(r), h); g.add(acc, h) }
		}
		g.round(st, addWK, true)
	}
	g.rolled(st, &plan1, roll1, 3, "block1_"+is.name)

	// Second hash: message = first hash = state + midstate. Its round 0
	// starts from the IV; only W0 varies.
	t1, t2 := round0Consts()
	g.held = [64]bool{}
	for j := 0; j < 8; j++ {
		g.addB(job(kdVMid+32*j), st.s[j])
		g.store(st.s[j], j)
	}
	g.loadB(g.cst(t1+t2), st.s[0])
	g.i("VPADDD %s, %s, %s", slot(g, 0), st.s[0], st.s[0])
	g.loadB(g.cst(iv[3]+t1), st.s[4])
	g.i("VPADDD %s, %s, %s", slot(g, 0), st.s[4], st.s[4])
	for _, j := range []int{1, 2, 3, 5, 6, 7} {
		g.loadB(g.cst(iv[j-1]), st.s[j])
	}
	if !is.ternlog {
		g.loadB(g.cst(iv[0]^iv[1]), st.carry)
	}
	plan2 := planBlock2()
	const roll2, iters2 = 32, 3 // rounds 32..55 run as a loop
	for r := 1; r <= lastRound; r++ {
		if r == roll2 {
			g.rolled(st, &plan2, roll2, iters2, "block2_"+is.name)
			r += 8*iters2 - 1
			continue
		}
		var addWK func(h string)
		if c, ok := block2Const(r); ok {
			addWK = func(h string) { g.addB(g.cst(c+k256[r]), h) }
		} else if r < 16 {
			addWK = func(h string) {
				g.addB(g.kOp(r), h)
				g.i("VPADDD %s, %s, %s", slot(g, r), h, h)
			}
		} else {
			acc := g.sched(r, plan2[r])
			addWK = func(h string) { g.addB(g.kOp(r), h); g.add(acc, h) }
		}
		// Round r's new a is d in round r+4: after round 56 no a is needed.
		g.round(st, addWK, r+4 <= lastRound)
	}

	// e after round 60 plus the initial H7 is the final state word 7; byte
	// swapped it is the hash's top 32 bits, which must be ≤ the target's.
	// Lanes that pass are only candidates: sha256d.go re-hashes them.
	h7, hi, t := st.s[4], g.r(12), g.r(13)
	g.addB(g.cst(iv[7]), h7)
	g.i("VPSHUFB %sBswap<>(SB), %s, %s", is.name, h7, h7)
	g.i("VPBROADCASTD %d(DI), %s", kdHi, hi)
	if is.ternlog {
		g.i("VPCMPUD $2, %s, %s, K1", hi, h7) // K1 = lanes with h7 ≤ hi
		g.i("KMOVW K1, AX")
	} else {
		// No unsigned compare before AVX-512: h7 ≤ hi ⇔ min(h7, hi) = h7.
		g.i("VPMINUD %s, %s, %s", hi, h7, t)
		g.i("VPCMPEQD %s, %s, %s", h7, t, t)
		g.i("VMOVMSKPS %s, AX", t)
	}
	body.i("ADDL $%d, DX", lanes)
	body.i("DECL CX")
	body.i("TESTL AX, AX")
	body.i("JNZ out_%s", is.name)
	body.i("TESTL CX, CX")
	body.i("JNZ loop_%s", is.name)
	body.f("out_%s:\n", is.name)
	body.i("SUBL CX, R10")
	body.i("SHLL $%d, R10", bits.TrailingZeros(uint(lanes)))
	body.i("MOVL R10, done+16(FP)")
	body.i("MOVL AX, mask+20(FP)")
	// Dirty upper vector state makes later legacy-SSE code (the SHA-NI
	// kernel, crypto/sha256's confirm) pay a large transition penalty.
	body.i("VZEROUPPER")
	body.i("RET")

	out := &asm{}
	out.f("%s", header)
	var tab []uint32
	for _, c := range g.ct.consts {
		if is.ternlog {
			tab = append(tab, c)
		} else {
			for l := 0; l < 8; l++ {
				tab = append(tab, c)
			}
		}
	}
	out.data(is.name+"C", tab)
	var ktab []uint32
	for _, k := range k256 {
		for l := 0; l < g.kStride()/4; l++ {
			ktab = append(ktab, k)
		}
	}
	out.data(is.name+"K", ktab)
	var lane, bsw []uint32
	for l := 0; l < lanes; l++ {
		lane = append(lane, uint32(l))
		bsw = append(bsw, 0x00010203+0x04040404*uint32(l%4)) // VPSHUFB works per 16-byte lane
	}
	out.data(is.name+"Lane", lane)
	out.data(is.name+"Bswap", bsw)
	out.f("%s\n", body.Bytes())
	return out.Bytes()
}
