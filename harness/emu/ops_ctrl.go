package emu

import (
	"github.com/kvmspec/kvmspec/harness/hv"
)

// jumpTo moves RIP to a branch target; a non-canonical target faults on
// the branch itself, with nothing else changed.
func (c *cpu) jumpTo(t uint64) {
	if !canonical(t) {
		c.gp(0)
	}
	c.rip = t
}

func opJmpRel(c *cpu, in *inst) { c.jumpTo(c.rip + in.dst.imm) }

func opJmpInd(c *cpu, in *inst) { c.jumpTo(c.get(&in.dst, in, 8)) }

func opJcc(c *cpu, in *inst) {
	if c.cond(in.cc) {
		c.jumpTo(c.rip + in.dst.imm)
	}
}

func opCallRel(c *cpu, in *inst) {
	t := c.rip + in.dst.imm
	if !canonical(t) {
		c.gp(0)
	}
	c.push8(c.rip)
	c.rip = t
}

func opCallInd(c *cpu, in *inst) {
	t := c.get(&in.dst, in, 8)
	if !canonical(t) {
		c.gp(0)
	}
	c.push(c.rip, 8)
	c.rip = t
}

func opRet(c *cpu, in *inst) {
	t := c.peek8(c.regs[4])
	if !canonical(t) {
		c.gp(0)
	}
	c.regs[4] += 8 + in.dst.imm
	c.rip = t
}

// opLoop: LOOP (cc 0), LOOPE (1), LOOPNE (2).
func opLoop(c *cpu, in *inst) {
	var n uint64
	if in.a32 {
		n = (c.regs[1] - 1) & 0xffffffff
		c.regs[1] = n
	} else {
		n = c.regs[1] - 1
		c.regs[1] = n
	}
	take := n != 0
	switch in.cc {
	case 1:
		take = take && c.cond(4)
	case 2:
		take = take && c.cond(5)
	}
	if take {
		c.jumpTo(c.rip + in.dst.imm)
	}
}

func opJrcxz(c *cpu, in *inst) {
	n := c.regs[1]
	if in.a32 {
		n &= 0xffffffff
	}
	if n == 0 {
		c.jumpTo(c.rip + in.dst.imm)
	}
}

func opPush(c *cpu, in *inst) {
	c.push(c.get(&in.dst, in, in.size), in.size)
}

func opPop(c *cpu, in *inst) {
	sz := in.size
	v := c.rdStack(c.regs[4], sz)
	old := c.regs[4]
	c.regs[4] += uint64(sz)
	if in.dst.kind == kReg {
		c.setReg(&in.dst, sz, v)
		return
	}
	// The destination address uses the incremented RSP; undo on a fault.
	defer func() {
		if p := recover(); p != nil {
			c.regs[4] = old
			panic(p)
		}
	}()
	c.wr(c.ea(&in.dst, in), sz, v)
}

func opLeave(c *cpu, in *inst) {
	v := c.rdStack(c.regs[5], 8)
	c.regs[4] = c.regs[5] + 8
	c.regs[5] = v
}

func opPushf(c *cpu, in *inst) {
	c.push(c.getFlags()&^(hv.FlagRF|hv.FlagVM), 8)
}

// flagsWritable are the RFLAGS bits POPF and IRET may change at any CPL.
const flagsWritable = hv.FlagsArith | hv.FlagTF | hv.FlagDF | hv.FlagNT | hv.FlagAC | hv.FlagID

// flagsLoadMask is the one rule for which RFLAGS bits an instruction that
// loads RFLAGS from memory (POPF, IRET) may change, by the CPL it runs
// at: IOPL only at CPL 0, IF at CPL <= IOPL; the others (SDM POPF and
// IRET pseudocode, 64-bit mode) at any CPL. IRET adds RF.
func (c *cpu) flagsLoadMask() uint64 {
	m := uint64(flagsWritable)
	if c.cpl == 0 {
		m |= hv.FlagIOPL | hv.FlagIF
	} else if c.cpl <= c.iopl() {
		m |= hv.FlagIF
	}
	return m
}

func (c *cpu) iopl() uint8 { return uint8(c.rflags >> 12 & 3) }

func opPopf(c *cpu, in *inst) {
	v := c.pop(8)
	m := c.flagsLoadMask()
	c.lz.op = lzNone
	c.rflags = c.rflags&^m | v&m | hv.FlagsFixed
	c.rflags &^= hv.FlagRF
	c.updateSlow()
}

// opFlagOp: CLC (0), STC (1), CMC (2), CLD (3), STD (4).
func opFlagOp(c *cpu, in *inst) {
	switch in.cc {
	case 0:
		c.setArith(hv.FlagCF, 0)
	case 1:
		c.setArith(hv.FlagCF, hv.FlagCF)
	case 2:
		c.setArith(hv.FlagCF, c.cf()^1)
	case 3:
		c.rflags &^= hv.FlagDF
	case 4:
		c.rflags |= hv.FlagDF
	}
}

func opCli(c *cpu, in *inst) {
	if c.cpl > c.iopl() {
		c.gp(0)
	}
	c.rflags &^= hv.FlagIF
}

func opSti(c *cpu, in *inst) {
	if c.cpl > c.iopl() {
		c.gp(0)
	}
	if c.rflags&hv.FlagIF == 0 {
		c.intShadow = true // the next instruction runs before any interrupt
	}
	c.rflags |= hv.FlagIF
	c.updateSlow()
}

// String instructions. Each element commits RSI/RDI/RCX before the next,
// so a fault or exit in the middle leaves a restartable state, and a REP
// stops at an element boundary whenever something needs attention.

func (c *cpu) strReg(n int, in *inst) uint64 {
	if in.a32 {
		return c.regs[n] & 0xffffffff
	}
	return c.regs[n]
}

func (c *cpu) strAdvance(n int, in *inst, delta uint64) {
	if in.a32 {
		c.regs[n] = (c.regs[n] + delta) & 0xffffffff
		return
	}
	c.regs[n] += delta
}

// srcSeg is the segment base of the RSI side (DS, or an FS/GS override).
func (c *cpu) srcSeg(in *inst) uint64 {
	for _, o := range [...]*operand{&in.dst, &in.src} {
		if o.kind == kMem && o.base == 6 {
			switch o.seg {
			case segFS:
				return c.sr.FS.Base
			case segGS:
				return c.sr.GS.Base
			}
		}
	}
	return 0
}

func (c *cpu) strDelta(sz uint8) uint64 {
	if c.rflags&hv.FlagDF != 0 {
		return -uint64(sz)
	}
	return uint64(sz)
}

// repeat runs body once, or under REP until RCX is zero. body returns
// false when a REPE/REPNE condition ends the loop.
func (c *cpu) repeat(in *inst, body func() bool) {
	if in.rep == 0 {
		body()
		return
	}
	for {
		if c.strReg(1, in) == 0 {
			return
		}
		more := body()
		c.strAdvance(1, in, ^uint64(0))
		if len(c.replay) > 0 {
			// The element is committed: its recorded accesses are used up.
			c.replay = c.replay[:0]
			c.replayAt = 0
		}
		if !more || c.strReg(1, in) == 0 {
			return
		}
		if c.watchHit != 0 {
			// A data breakpoint traps after the iteration that hit it,
			// with RIP at the instruction while iterations remain.
			c.rip = c.cur
			return
		}
		if c.attn.Load()&^attnSlow != 0 {
			// Stop between elements; the instruction resumes later.
			c.rip = c.cur
			return
		}
	}
}

func opMovs(c *cpu, in *inst) {
	sz := in.ssize
	seg := c.srcSeg(in)
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		v := c.rd(seg+c.strReg(6, in), sz)
		c.wr(c.strReg(7, in), sz, v)
		c.strAdvance(6, in, d)
		c.strAdvance(7, in, d)
		return true
	})
}

func opStos(c *cpu, in *inst) {
	sz := in.ssize
	d := c.strDelta(sz)
	v := c.regs[0]
	c.repeat(in, func() bool {
		c.wr(c.strReg(7, in), sz, v)
		c.strAdvance(7, in, d)
		return true
	})
}

func opLods(c *cpu, in *inst) {
	sz := in.ssize
	seg := c.srcSeg(in)
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		v := c.rd(seg+c.strReg(6, in), sz)
		setGPR(&c.regs[0], sz, v)
		c.strAdvance(6, in, d)
		return true
	})
}

func opScas(c *cpu, in *inst) {
	sz := in.ssize
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		v := c.rd(c.strReg(7, in), sz)
		c.alu(aluCmp, c.regs[0]&sizeMask[sz], v, sz)
		c.strAdvance(7, in, d)
		return c.repCont(in)
	})
}

func opCmps(c *cpu, in *inst) {
	sz := in.ssize
	seg := c.srcSeg(in)
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		a := c.rd(seg+c.strReg(6, in), sz)
		b := c.rd(c.strReg(7, in), sz)
		c.alu(aluCmp, a, b, sz)
		c.strAdvance(6, in, d)
		c.strAdvance(7, in, d)
		return c.repCont(in)
	})
}

// repCont applies the REPE/REPNE termination condition.
func (c *cpu) repCont(in *inst) bool {
	zf := c.cond(4)
	if in.rep == repF3 {
		return zf
	}
	return !zf
}
