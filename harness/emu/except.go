package emu

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func opUD(c *cpu, in *inst) { c.raise(vecUD) }

// opInt is INT n: a software interrupt, subject to the gate's DPL.
func opInt(c *cpu, in *inst) {
	panic(&guestFault{vec: uint8(in.dst.imm), trap: true, soft: true})
}

// opInt3 is the one-byte breakpoint: the host's with DebugUseSWBP, else
// the guest's #BP as a trap, gate DPL checked.
func opInt3(c *cpu, in *inst) { c.routeDebug(dbgInt3, 0) }

// opIcebp is INT1: a #DB trap that ignores the gate DPL.
func opIcebp(c *cpu, in *inst) {
	panic(&guestFault{vec: vecDB, trap: true})
}

// contributory exceptions for the double-fault rules (SDM Table 6-5).
func contributory(v uint8) bool {
	switch v {
	case vecDE, vecTS, vecNP, vecSS, vecGP:
		return true
	}
	return false
}

// deliverFault delivers c.fault through the IDT, escalating to #DF and to
// a triple fault (shutdown) as the hardware does.
func (c *cpu) deliverFault() {
	f := c.fault
	c.replay = c.replay[:0]
	c.st.exceptions++
	for {
		if f.vec == vecPF {
			c.sr.CR2 = f.cr2
			c.st.pfTaken++
		}
		if f.vec == vecDB && !f.soft {
			c.dr6 |= dr6Fixed
		}
		nested := c.tryDeliver(&f)
		if nested == nil {
			c.updateSlow()
			return
		}
		first, second := f.vec, nested.vec
		switch {
		case first == vecDF:
			c.shutdown = true
			c.exit = &hv.ShutdownExit{}
			c.rip = c.cur
			return
		case (contributory(first) || first == vecPF) && (contributory(second) || (first == vecPF && second == vecPF)):
			f = guestFault{vec: vecDF, hasCode: true}
		default:
			f = *nested
			f.soft, f.trap = false, false
		}
	}
}

// tryDeliver pushes the exception frame and enters the handler; a fault
// while doing so is returned, with no architectural state changed.
func (c *cpu) tryDeliver(f *guestFault) (nested *guestFault) {
	defer func() {
		if p := recover(); p != nil {
			if g, ok := p.(*guestFault); ok {
				nested = g
				return
			}
			if _, ok := p.(exitSignal); ok {
				// MMIO in an IDT, GDT or TSS: KVM cannot emulate that either.
				c.internalMsg = fmt.Sprintf("emu: delivering vector %d at rip %#x (%s) touched MMIO (IDT, GDT, TSS or stack not in RAM)",
					f.vec, c.cur, c.describeInsn(c.cur))
				c.intErr = hv.InternalErrorExit{Suberror: internalEmulation, Data: []uint64{c.cur, uint64(f.vec)}, Detail: c.internalMsg}
				c.exit = &c.intErr
				c.pend = c.pend[:0]
				return
			}
			panic(p)
		}
	}()
	ext := uint32(0)
	if !f.soft {
		ext = 1
	}
	idtCode := uint32(f.vec)*8 + 2 + ext
	if uint64(f.vec)*16+15 > uint64(c.sr.IDT.Limit) {
		c.gp(idtCode)
	}
	ga := c.sr.IDT.Base + uint64(f.vec)*16
	lo, hi := c.rdSys(ga, 8), c.rdSys(ga+8, 8)
	typ := lo >> 40 & 0xf
	dpl := uint8(lo >> 45 & 3)
	if typ != 0xe && typ != 0xf {
		c.gp(idtCode)
	}
	if f.soft && dpl < c.cpl {
		c.gp(idtCode)
	}
	if lo>>47&1 == 0 {
		c.raiseErr(vecNP, idtCode)
	}
	sel := uint16(lo >> 16)
	target := lo&0xffff | lo>>48<<16 | (hi&0xffffffff)<<32
	ist := lo >> 32 & 7
	cs := c.loadCodeSeg(sel, ext)
	if cs.DPL > c.cpl {
		c.gp(uint32(sel&^3) + ext)
	}
	newCPL := cs.DPL
	if cs.Type&4 != 0 { // conforming
		newCPL = c.cpl
	}
	rsp := c.regs[4]
	switch {
	case ist != 0:
		rsp = c.tssRead(0x24 + 8*(ist-1))
	case newCPL < c.cpl:
		rsp = c.tssRead(4 + 8*uint64(newCPL))
	}
	if !canonical(rsp) {
		c.raiseErr(vecSS, ext)
	}
	rsp &^= 0xf
	frame := []uint64{uint64(c.sr.SS.Selector), c.regs[4], c.getFlags(), uint64(c.sr.CS.Selector), c.rip}
	if f.hasCode {
		frame = append(frame, uint64(f.code))
	}
	// The frame is written with the new privilege (supervisor accesses).
	for i, v := range frame {
		c.wrSys(rsp-8*uint64(i+1), 8, v)
	}
	if !canonical(target) {
		c.gp(ext)
	}
	// Committed: nothing below can fault.
	if newCPL < c.cpl {
		c.sr.SS = hv.Segment{Selector: uint16(newCPL), Unusable: 1, DB: 0, DPL: newCPL}
	}
	c.regs[4] = rsp - 8*uint64(len(frame))
	cs.Selector = sel&^3 | uint16(newCPL)
	c.sr.CS = cs
	c.setCPL(newCPL)
	c.materialize()
	c.rflags &^= hv.FlagTF | hv.FlagNT | hv.FlagRF | hv.FlagVM
	if typ == 0xe {
		c.rflags &^= hv.FlagIF
	}
	c.rip = target
	return nil
}

// setCPL updates the privilege level and the TLB permission masks.
func (c *cpu) setCPL(cpl uint8) {
	c.cpl = cpl
	c.codeGen++ // the fetch permission changes (block links, runBlocks)
	if cpl == 3 {
		c.rperm, c.wperm, c.xperm = permRU, permWU, permXU
	} else {
		c.rperm, c.wperm, c.xperm = permRS, permWS, permXS
	}
}

// readDesc reads the 8-byte GDT descriptor of sel. LDTs are not modelled.
func (c *cpu) readDesc(sel uint16, ext uint32) (lo, hi uint32) {
	code := uint32(sel&^3) + ext
	if sel&4 != 0 || sel>>3 == 0 {
		c.gp(code)
	}
	off := uint64(sel &^ 7)
	if off+7 > uint64(c.sr.GDT.Limit) {
		c.gp(code)
	}
	v := c.rdSys(c.sr.GDT.Base+off, 8)
	return uint32(v), uint32(v >> 32)
}

// descSeg turns a descriptor into the cached segment form KVM reports.
func descSeg(sel uint16, lo, hi uint32) hv.Segment {
	limit := lo&0xffff | hi&0xf0000
	if hi>>23&1 != 0 {
		limit = limit<<12 | 0xfff
	}
	return hv.Segment{
		Base:     uint64(lo>>16 | (hi&0xff)<<16 | hi&0xff000000),
		Limit:    limit,
		Selector: sel,
		Type:     uint8(hi >> 8 & 0xf),
		S:        uint8(hi >> 12 & 1),
		DPL:      uint8(hi >> 13 & 3),
		Present:  uint8(hi >> 15 & 1),
		AVL:      uint8(hi >> 20 & 1),
		L:        uint8(hi >> 21 & 1),
		DB:       uint8(hi >> 22 & 1),
		G:        uint8(hi >> 23 & 1),
	}
}

// loadCodeSeg reads and checks a 64-bit code segment descriptor.
func (c *cpu) loadCodeSeg(sel uint16, ext uint32) hv.Segment {
	lo, hi := c.readDesc(sel, ext)
	s := descSeg(sel, lo, hi)
	if s.S == 0 || s.Type&8 == 0 {
		c.gp(uint32(sel&^3) + ext)
	}
	if s.Present == 0 {
		c.raiseErr(vecNP, uint32(sel&^3)+ext)
	}
	if s.L == 0 {
		c.internal(internalEmulation, "compatibility-mode code segment %#x is not supported", sel)
	}
	return s
}

// tssRead reads a quadword of the 64-bit TSS.
func (c *cpu) tssRead(off uint64) uint64 {
	if c.sr.TR.Unusable != 0 || c.sr.TR.Present == 0 || off+7 > uint64(c.sr.TR.Limit) {
		c.raiseErr(vecTS, uint32(c.sr.TR.Selector&^3))
	}
	return c.rdSys(c.sr.TR.Base+off, 8)
}

func opIret(c *cpu, in *inst) {
	sp := c.regs[4]
	rip := c.rdStack(sp, 8)
	csSel := uint16(c.rdStack(sp+8, 8))
	fl := c.rdStack(sp+16, 8)
	rsp := c.rdStack(sp+24, 8)
	ssSel := uint16(c.rdStack(sp+32, 8))
	rpl := uint8(csSel & 3)
	if rpl < c.cpl {
		c.gp(uint32(csSel &^ 3))
	}
	cs := c.loadCodeSeg(csSel, 0)
	if cs.Type&4 == 0 && cs.DPL != rpl {
		c.gp(uint32(csSel &^ 3))
	}
	ss := hv.Segment{Selector: ssSel, Unusable: 1, DPL: rpl}
	if ssSel>>2 != 0 {
		lo, hi := c.readDesc(ssSel, 0)
		ss = descSeg(ssSel, lo, hi)
		if ss.S == 0 || ss.Type&0xa != 2 || ss.DPL != rpl || uint8(ssSel&3) != rpl {
			c.gp(uint32(ssSel &^ 3))
		}
		if ss.Present == 0 {
			c.raiseErr(vecSS, uint32(ssSel&^3))
		}
	} else if rpl == 3 {
		c.gp(0)
	}
	if !canonical(rip) {
		c.gp(0)
	}
	m := c.flagsLoadMask() | hv.FlagRF // the CPL IRET runs at, not the one it returns to
	c.lz.op = lzNone
	c.rflags = c.rflags&^m | fl&m | hv.FlagsFixed
	c.rfLoaded = fl&hv.FlagRF != 0
	c.sr.CS = cs
	c.sr.SS = ss
	c.regs[4] = rsp
	c.rip = rip
	c.setCPL(rpl)
	c.updateSlow()
}

// deliverInterrupt injects the highest pending APIC interrupt when
// RFLAGS.IF allows it; it reports whether it did.
func (c *cpu) deliverInterrupt() bool {
	if c.intShadow {
		c.intShadow = false
		return false
	}
	if !c.interruptible() {
		return false
	}
	vec, ok := c.apic.Accept(true)
	if !ok {
		return false
	}
	c.fault = guestFault{vec: vec, ext: true, trap: true}
	c.cur = c.rip
	c.deliverFault()
	c.st.exceptions-- // an interrupt, not an exception
	c.st.interrupts++
	return true
}

// execBreakpoint checks the execute breakpoints in effect at RIP (RW =
// 00, L or G set), unless RFLAGS.RF suppresses them: the host's
// GuestDebug.DebugReg with DebugUseHWBP (KVM then ignores the guest's),
// else the guest's DR0-DR3/DR7. A hit goes to routeDebug.
func (c *cpu) execBreakpoint() bool {
	if c.rflags&hv.FlagRF != 0 {
		return false
	}
	dr7, drs, _ := c.effectiveDR()
	if dr7&0xff == 0 {
		return false
	}
	// DR6 reports every breakpoint whose condition is met, enabled or
	// not (SDM 18.2.3), once an enabled one raises the #DB.
	var hit, met uint64
	for i := 0; i < 4; i++ {
		rw := dr7 >> (16 + 4*i) & 3
		if rw == 0 && drs[i] == c.rip {
			met |= 1 << i
			if dr7>>(2*i)&3 != 0 {
				hit |= 1 << i
			}
		}
	}
	if hit == 0 {
		return false
	}
	c.cur = c.rip
	c.routeDebug(dbgExecBP, met)
	return true
}

// Debug events, as routeDebug sees them.
const (
	dbgStep      = iota // single-step trap after an instruction (RIP: the next one)
	dbgInt3             // int3 executed (c.cur: the int3)
	dbgExecBP           // execute breakpoint hit at c.cur (hit: DR0-3 bits)
	dbgIntrStep         // host single-step entered an interrupt handler (RIP: its first instruction)
	dbgWatch            // data breakpoint hit by the instruction before RIP (hit: DR0-3 bits)
	dbgWatchStep        // dbgWatch and a single-step trap on the same instruction
)

// dr6 values of a debug exit: the reserved bits read 1 ("active low").
const dr6ActiveLow = dr6Fixed

// routeDebug is the one place that decides whose a debug event is. It is
// the host's (a DebugExit, RIP where KVM leaves it) when it comes from the
// host's own settings: a step with DebugSingleStep, an int3 with
// DebugUseSWBP, a breakpoint from GuestDebug.DebugReg with DebugUseHWBP;
// otherwise it is the guest's and is delivered through its IDT (#DB with
// DR6 updated, or #BP). For a guest event that is a fault it returns after
// delivering; host events and guest traps leave by panic.
func (c *cpu) routeDebug(kind int, hit uint64) {
	f := c.dbg.Flags
	if f&hv.DebugEnable == 0 {
		f = 0
	}
	switch kind {
	case dbgStep, dbgIntrStep:
		if f&hv.DebugSingleStep != 0 {
			dr7, _, _ := c.effectiveDR()
			c.debugExit(vecDB, c.rip, dr6ActiveLow|dr6BS, dr7)
		}
		if kind == dbgIntrStep {
			return
		}
		c.dr6 |= dr6BS | dr6Fixed
		c.raiseTrap(vecDB)
	case dbgInt3:
		if f&hv.DebugUseSWBP != 0 {
			c.rip = c.cur // KVM leaves RIP at the int3 for the debugger
			dr7, _, _ := c.effectiveDR()
			c.debugExit(vecBP, c.cur, dr6ActiveLow, dr7)
		}
		panic(&guestFault{vec: vecBP, trap: true, soft: true})
	case dbgExecBP:
		if f&hv.DebugUseHWBP != 0 {
			c.debugExit(vecDB, c.cur, dr6ActiveLow|hit, c.dbg.DebugReg[7])
		}
		c.dr6 = c.dr6&^0xf | hit | dr6Fixed
		c.fault = guestFault{vec: vecDB}
		c.deliverFault()
		// The handler's IRET normally sets RF so the instruction can run once.
	case dbgWatch, dbgWatchStep:
		// A single-step ending on the same instruction is reported with
		// the data breakpoint in one #DB (DR6 BS and Bn). When either is
		// the host's, KVM intercepts that #DB and the host gets both in
		// one exit; the guest does not see its own watchpoint then,
		// unless the host injects it.
		step := uint64(0)
		if kind == dbgWatchStep {
			step = dr6BS
		}
		if c.watchHost || f&hv.DebugSingleStep != 0 {
			dr7, _, _ := c.effectiveDR()
			c.debugExit(vecDB, c.rip, dr6ActiveLow|step|hit, dr7)
		}
		c.dr6 = c.dr6&^0xf | hit | step | dr6Fixed
		c.raiseTrap(vecDB)
	}
}

// debugExit stops the vCPU with a DebugExit for the host.
func (c *cpu) debugExit(vec uint32, pc, dr6, dr7 uint64) {
	c.dbgExit = hv.DebugExit{Exception: vec, PC: pc, DR6: dr6, DR7: dr7}
	c.exit = &c.dbgExit
	panic(exitSignal{})
}
