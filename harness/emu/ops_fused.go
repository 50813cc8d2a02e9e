package emu

import (
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Fused pairs: the commonest register-only flag producers and the
// conditional jump after them (postFuse) as one handler, which takes the
// jump's condition from the values it has instead of reading the flags
// record back. decodeBlock makes it the producer's handler in a block
// (postPair, inst.pair) and runBlocks skips the jump after it; whatever
// runs one instruction at a time (execOne, the counting loop) calls the
// producer's own handler (pairs[in.pair].one), so a pair is still two
// instructions to everything that steps, counts or traps between them.

// pairs[k] is fused pair kind k's handler and its producer's own.
var pairs = [...]struct{ pair, one func(*cpu, *inst) }{
	pairNone:     {},
	pairDec64:    {opDecR64Jz, opDecR64},
	pairDec32:    {opDecR32Jz, opDecR32},
	pairInc64:    {opIncR64Jz, opIncR64},
	pairInc32:    {opIncR32Jz, opIncR32},
	pairCmpRR64b: {opCmpRR64Jb, opCmpRR64},
	pairCmpRR32b: {opCmpRR32Jb, opCmpRR32},
	pairCmpRI64b: {opCmpRI64Jb, opCmpRI64},
	pairCmpRI32b: {opCmpRI32Jb, opCmpRI32},
	pairCmpRR64z: {opCmpRR64Jz, opCmpRR64},
	pairCmpRR32z: {opCmpRR32Jz, opCmpRR32},
	pairCmpRI64z: {opCmpRI64Jz, opCmpRI64},
	pairCmpRI32z: {opCmpRI32Jz, opCmpRI32},
	pairShr64:    {opShrRI64Jc, opShrRI64},
	pairShr32:    {opShrRI32Jc, opShrRI32},
	pairShrX64:   {opShrRI64JcXor, opShrRI64},
	pairShrX32:   {opShrRI32JcXor, opShrRI32},
}

// Fused pair kinds (inst.pair).
const (
	pairNone = iota
	pairDec64
	pairDec32
	pairInc64
	pairInc32
	pairCmpRR64b
	pairCmpRR32b
	pairCmpRI64b
	pairCmpRI32b
	pairCmpRR64z
	pairCmpRR32z
	pairCmpRI64z
	pairCmpRI32z
	pairShr64
	pairShr32
	// SHR by an immediate, JB/JAE over the next instruction and that
	// instruction, an XOR of a register with an immediate of the same size
	// (postSkip: the handler runs all three).
	pairShrX64
	pairShrX32
)

// pairKind is the fused pair kind of producer p (a fusable register
// form, see fusable) and the conditional jump j after it, or pairNone.
func pairKind(p, j *inst) uint8 {
	k := uint8(sized(p))
	if k == 2 {
		return pairNone
	}
	switch p.op {
	case x86asm.DEC:
		if j.cc>>1 == 2 {
			return pairDec64 + k
		}
	case x86asm.INC:
		if j.cc>>1 == 2 {
			return pairInc64 + k
		}
	case x86asm.CMP:
		z := uint8(0) // JB/JAE
		switch j.cc >> 1 {
		case 1:
		case 2:
			z = pairCmpRR64z - pairCmpRR64b
		default:
			return pairNone
		}
		switch p.src.kind {
		case kReg:
			return pairCmpRR64b + z + k
		case kImm:
			return pairCmpRI64b + z + k
		}
	case x86asm.SHR:
		if j.cc>>1 == 1 && p.src.kind == kImm {
			return pairShr64 + k
		}
	}
	return pairNone
}

// skipKind is the kind of the three-instruction pair that p (of pair
// kind pairShr64 or pairShr32), the conditional jump j after it and x
// after j make when j jumps just past x and x is an XOR of a GPR with an
// immediate at p's size, or pairNone.
func skipKind(p, j, x *inst) uint8 {
	if (p.pair != pairShr64 && p.pair != pairShr32) || j.dst.imm != uint64(x.len) ||
		x.op != x86asm.XOR || x.cc != aluXor || x.lock || x.dst.kind != kReg || x.dst.hi ||
		x.src.kind != kImm || x.src2.kind != kNone || x.size != p.size {
		return pairNone
	}
	return p.pair + pairShrX64 - pairShr64
}

// fusedJump completes the conditional jump fused with the producer that
// ran (the next instruction): RIP at it, then past it or to its target.
func (c *cpu) fusedJump(in *inst, taken bool) {
	j := nextInst(in)
	c.cur = c.rip
	c.rip += uint64(j.len)
	if taken != (j.cc&1 != 0) {
		c.jumpTo(c.rip + j.dst.imm)
	}
}

// DEC and INC with JE/JNE: ZF is r == 0.

func opDecR64Jz(c *cpu, in *inst) {
	c.fusedJump(in, c.decR(&c.regs[in.dst.reg&15], 8, c.cf()) == 0)
}

func opDecR32Jz(c *cpu, in *inst) {
	c.fusedJump(in, c.decR(&c.regs[in.dst.reg&15], 4, c.cf()) == 0)
}

func opIncR64Jz(c *cpu, in *inst) {
	c.fusedJump(in, c.incR(&c.regs[in.dst.reg&15], 8, c.cf()) == 0)
}

func opIncR32Jz(c *cpu, in *inst) {
	c.fusedJump(in, c.incR(&c.regs[in.dst.reg&15], 4, c.cf()) == 0)
}

// CMP with JB/JAE (CF is a < b) and JE/JNE (ZF is a == b).

func opCmpRR64Jb(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15], c.regs[in.src.reg&15]
	c.sub(a, b, 8)
	c.fusedJump(in, a < b)
}

func opCmpRR32Jb(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15]&0xffffffff, c.regs[in.src.reg&15]&0xffffffff
	c.sub(a, b, 4)
	c.fusedJump(in, a < b)
}

func opCmpRI64Jb(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15], in.src.imm
	c.sub(a, b, 8)
	c.fusedJump(in, a < b)
}

func opCmpRI32Jb(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15]&0xffffffff, in.src.imm
	c.sub(a, b, 4)
	c.fusedJump(in, a < b)
}

func opCmpRR64Jz(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15], c.regs[in.src.reg&15]
	c.sub(a, b, 8)
	c.fusedJump(in, a == b)
}

func opCmpRR32Jz(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15]&0xffffffff, c.regs[in.src.reg&15]&0xffffffff
	c.sub(a, b, 4)
	c.fusedJump(in, a == b)
}

func opCmpRI64Jz(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15], in.src.imm
	c.sub(a, b, 8)
	c.fusedJump(in, a == b)
}

func opCmpRI32Jz(c *cpu, in *inst) {
	a, b := c.regs[in.dst.reg&15]&0xffffffff, in.src.imm
	c.sub(a, b, 4)
	c.fusedJump(in, a == b)
}

// SHR by an immediate with JB/JAE: CF is the last bit shifted out; a
// count of 0 leaves the flags (and CF) as they were.

func opShrRI64Jc(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	cnt := in.src.imm & 0x3f
	if cnt == 0 {
		c.fusedJump(in, c.cf() != 0)
		return
	}
	r, fx := shrRes(*d, cnt, 8)
	*d = r
	c.lz.setFixed(8, r, fx)
	c.fusedJump(in, fx&1 != 0)
}

func opShrRI32Jc(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	a := *d & 0xffffffff
	cnt := in.src.imm & 0x1f
	if cnt == 0 {
		*d = a
		c.fusedJump(in, c.cf() != 0)
		return
	}
	r, fx := shrRes(a, cnt, 4)
	*d = r
	c.lz.setFixed(4, r, fx)
	c.fusedJump(in, fx&1 != 0)
}

// SHR by an immediate, JB/JAE over an XOR of a register with an
// immediate, and that XOR (pairShrX64, pairShrX32), without a host
// branch on the bit shifted out: the XOR's result, its flags record and
// the count of instructions retired are chosen by mask. RIP ends past
// the XOR and c.cur at it whether it ran or not, so the block loop goes
// on after it (runBlocks counts a block's instructions by the index of
// the last one it ran: a skipped XOR takes one back here). A count of 0
// (flags unchanged) takes the general way (shrSkipSlow).

func opShrRI64JcXor(c *cpu, in *inst) {
	cnt := in.src.imm & 0x3f
	if cnt == 0 {
		shrSkipSlow(c, in)
		return
	}
	d := &c.regs[in.dst.reg&15]
	r, fx := shrRes(*d, cnt, 8)
	*d = r
	j := nextInst(in)
	x := nextInst(j)
	run := fx&1 ^ uint64(j.cc&1) ^ 1 // the jump is not taken: the XOR runs
	m := -run
	xd := &c.regs[x.dst.reg&15]
	v := *xd
	lr := v ^ x.src.imm
	*xd = lr&m | v&^m
	l := &c.lz
	l.op = lzFixed ^ uint8(m)&(lzFixed^lzLogic)
	l.size = 8
	l.res = lr&m | r&^m
	l.a = fx & (hv.FlagCF | hv.FlagOF | hv.FlagAF)
	l.cin = fx & 1 &^ m
	c.st.instructions += run - 1
	xr := c.rip + uint64(j.len)
	c.cur = xr
	c.rip = xr + uint64(x.len)
}

func opShrRI32JcXor(c *cpu, in *inst) {
	cnt := in.src.imm & 0x1f
	if cnt == 0 {
		shrSkipSlow(c, in)
		return
	}
	d := &c.regs[in.dst.reg&15]
	r, fx := shrRes(*d&0xffffffff, cnt, 4)
	*d = r
	j := nextInst(in)
	x := nextInst(j)
	run := fx&1 ^ uint64(j.cc&1) ^ 1 // the jump is not taken: the XOR runs
	m := -run
	xd := &c.regs[x.dst.reg&15]
	v := *xd
	lr := v&0xffffffff ^ x.src.imm
	*xd = lr&0xffffffff&m | v&^m
	l := &c.lz
	l.op = lzFixed ^ uint8(m)&(lzFixed^lzLogic)
	l.size = 4
	l.res = lr&m | r&^m
	l.a = fx & (hv.FlagCF | hv.FlagOF | hv.FlagAF)
	l.cin = fx & 1 &^ m
	c.st.instructions += run - 1
	xr := c.rip + uint64(j.len)
	c.cur = xr
	c.rip = xr + uint64(x.len)
}

// shrSkipSlow is a pairShrX64/pairShrX32 pair with a shift count of 0:
// the three instructions one after the other, with the end state of the
// fast handlers (RIP past the XOR, c.cur at it, a skipped XOR taken back
// from the count).
//
//go:noinline
func shrSkipSlow(c *cpu, in *inst) {
	j := nextInst(in)
	x := nextInst(j)
	if in.size == 8 {
		opShrRI64(c, in)
	} else {
		opShrRI32(c, in)
	}
	c.cur = c.rip
	c.rip += uint64(j.len)
	taken := c.cond(j.cc)
	c.cur = c.rip
	c.rip += uint64(x.len)
	if taken {
		c.st.instructions--
		return
	}
	x.fn(c, x) // an XOR is never a pair's producer: its own handler
}
