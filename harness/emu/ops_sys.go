package emu

import (
	"encoding/binary"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func opNop(c *cpu, in *inst) {}

// opPrivNop: WBINVD/INVD have nothing to flush here but stay privileged.
func opPrivNop(c *cpu, in *inst) { c.needCPL0() }

func (c *cpu) needCPL0() {
	if c.cpl != 0 {
		c.gp(0)
	}
}

// opHlt exits to the host: without an in-kernel irqchip KVM returns
// KVM_EXIT_HLT with RIP after the HLT, and so do we. With an irqchip the
// vCPU waits inside Run until an interrupt can be delivered.
func opHlt(c *cpu, in *inst) {
	c.needCPL0()
	if c.vm.cfg.IRQChip {
		c.st.halts++
		c.halted = true
		c.timerSkipIdle()
		c.poke(attnExit)
		return
	}
	c.st.haltExits++
	c.exit = &hv.HaltExit{}
	c.poke(attnExit)
}

// CPUID model: the default table of every vCPU (VCPU.CPUID returns it,
// SetCPUID replaces it). The vendor string spells "KvmspecEmu!!"; feature
// bits claim only what the interpreter implements; leaf 0xA describes the
// PMU of pmu.go (defaultPMU), which a spec may reshape or remove.
const (
	cpuidMaxBasic = 0xa
	cpuidMaxExt   = 0x80000008
	cpuidVendorB  = 0x736d764b // "Kvms"
	cpuidVendorD  = 0x45636570 // "pecE"
	cpuidVendorC  = 0x2121756d // "mu!!"
	cpuidSig      = 0x000906a0 // family 6, model 0x9a, stepping 0
)

// CPUID leaf 1 EDX: PSE, TSC, MSR, PAE, APIC, PGE, CMOV, PAT.
const cpuid1EDX = 1<<3 | 1<<4 | 1<<5 | 1<<6 | hv.CPUID1EDXAPIC | 1<<13 | 1<<15 | 1<<16

// CPUID leaf 1 ECX: hypervisor present, IA32_PERF_CAPABILITIES (PDCM).
const cpuid1ECX = hv.CPUID1ECXHyper | hv.CPUID1ECXPDCM

// CPUID 0x80000001 EDX: NX, 1 GiB pages, RDTSCP, long mode; ECX: LAHF/SAHF.
const (
	cpuidExt1EDX = 1<<20 | 1<<26 | 1<<27 | 1<<29
	cpuidExt1ECX = 1 << 0
)

// defaultCPUID is the table a new vCPU answers from: leaf 1 carries its
// initial APIC ID.
func defaultCPUID(id int) hv.CPUID {
	return hv.CPUID{
		{Function: 0, EAX: cpuidMaxBasic, EBX: cpuidVendorB, ECX: cpuidVendorC, EDX: cpuidVendorD},
		{Function: 1, EAX: cpuidSig, EBX: uint32(id&0xff)<<24 | 1<<16 | 8<<8, ECX: cpuid1ECX, EDX: cpuid1EDX},
		{Function: 7, Indexed: true}, // no structured extended features
		defaultPMU.Entry(),
		{Function: 0x80000000, EAX: cpuidMaxExt, EBX: cpuidVendorB, ECX: cpuidVendorC, EDX: cpuidVendorD},
		{Function: 0x80000001, ECX: cpuidExt1ECX, EDX: cpuidExt1EDX},
		{Function: 0x80000008, EAX: 48<<8 | physAddrBits},
	}
}

// CPUID answers cpuid(leaf, sub) from the vCPU's table. A leaf inside the
// basic or extended range the table declares (leaf 0 / 0x80000000 EAX) but
// absent from it reads zeros; a leaf above both ranges reads the highest
// basic leaf, as Intel documents (SDM vol. 2A, CPUID: "If a value entered
// for CPUID.EAX is higher than the maximum input value for basic or
// extended function for that processor then the data for the highest
// basic information leaf is returned").
func (c *cpu) CPUID(leaf, sub uint32) (a, b, cc, d uint32) {
	t := c.cpuid
	maxBasic, maxExt := uint32(0), uint32(0)
	if e, ok := t.Lookup(0, 0); ok {
		maxBasic = e.EAX
	}
	if e, ok := t.Lookup(0x80000000, 0); ok {
		maxExt = e.EAX
	}
	inRange := leaf <= maxBasic || (leaf >= 0x80000000 && leaf <= maxExt)
	if !inRange {
		leaf = maxBasic
	}
	e, _ := t.Lookup(leaf, sub)
	return e.EAX, e.EBX, e.ECX, e.EDX
}

func opCpuid(c *cpu, in *inst) {
	a, b, cc, d := c.CPUID(uint32(c.regs[0]), uint32(c.regs[1]))
	c.regs[0], c.regs[3], c.regs[1], c.regs[2] = uint64(a), uint64(b), uint64(cc), uint64(d)
}

// msrState holds the MSRs the emulated CPU has.
type msrState struct {
	tscOffset                         int64
	sysenterCS, sysenterESP, sysenter uint64
	pat                               uint64
	star, lstar, cstar, sfmask        uint64
	kernelGSBase                      uint64
	tscAux                            uint64
	miscEnable                        uint64
}

// MSR indices beyond those hv names.
const (
	msrSysenterCS  = 0x174
	msrSysenterESP = 0x175
	msrSysenterEIP = 0x176
	msrMiscEnable  = 0x1a0
	msrPAT         = 0x277
	msrSTAR        = 0xc0000081
	msrLSTAR       = 0xc0000082
	msrCSTAR       = 0xc0000083
	msrSFMASK      = 0xc0000084
	msrTSCAux      = 0xc0000103
)

// efer bits a guest may set: SCE, LME, NXE (LMA is read-only).
const eferWritable = hv.EFERSCE | hv.EFERLME | hv.EFERNXE

var monoStart = time.Now()

func (c *cpu) tsc() uint64 {
	if c.detTime() {
		return uint64(int64(c.cycles()) + c.msr.tscOffset)
	}
	ns := uint64(time.Since(monoStart))
	t := ns
	if hz := c.vm.h.opt.TSCHz; hz != 1_000_000_000 {
		t = uint64(float64(ns) * float64(hz) / 1e9)
	}
	return uint64(int64(t) + c.msr.tscOffset)
}

// readMSR returns an MSR value; ok is false for MSRs the CPU lacks.
func (c *cpu) readMSR(idx uint32) (uint64, bool) {
	m := &c.msr
	switch idx {
	case hv.MSRTSC:
		return c.tsc(), true
	case hv.MSRAPICBase:
		return c.sr.APICBase, true
	case msrSysenterCS:
		return m.sysenterCS, true
	case msrSysenterESP:
		return m.sysenterESP, true
	case msrSysenterEIP:
		return m.sysenter, true
	case msrMiscEnable:
		return m.miscEnable, true
	case msrPAT:
		return m.pat, true
	case hv.MSREFER:
		return c.sr.EFER, true
	case msrSTAR:
		return m.star, true
	case msrLSTAR:
		return m.lstar, true
	case msrCSTAR:
		return m.cstar, true
	case msrSFMASK:
		return m.sfmask, true
	case hv.MSRFSBase:
		return c.sr.FS.Base, true
	case hv.MSRGSBase:
		return c.sr.GS.Base, true
	case hv.MSRKernelGSBase:
		return m.kernelGSBase, true
	case msrTSCAux:
		return m.tscAux, true
	}
	return c.pmuReadMSR(idx)
}

// writeMSR sets an MSR; known reports whether the CPU has it, valid
// whether the value is acceptable (else #GP).
func (c *cpu) writeMSR(idx uint32, v uint64, host bool) (known, valid bool) {
	m := &c.msr
	switch idx {
	case hv.MSRTSC:
		m.tscOffset += int64(v - c.tsc())
	case hv.MSRAPICBase:
		if v&^(physMask&^0xfff|1<<8|1<<11) != 0 {
			return true, false
		}
		c.sr.APICBase = v
	case msrSysenterCS:
		m.sysenterCS = v
	case msrSysenterESP, msrSysenterEIP, msrLSTAR, msrCSTAR, hv.MSRKernelGSBase:
		if !canonical(v) {
			return true, false
		}
		switch idx {
		case msrSysenterESP:
			m.sysenterESP = v
		case msrSysenterEIP:
			m.sysenter = v
		case msrLSTAR:
			m.lstar = v
		case msrCSTAR:
			m.cstar = v
		default:
			m.kernelGSBase = v
		}
	case msrMiscEnable:
		m.miscEnable = v
	case msrPAT:
		for i := 0; i < 8; i++ { // each entry must be a valid memory type
			t := v >> (8 * i) & 0xff
			if t > 7 || t == 2 || t == 3 {
				return true, false
			}
		}
		m.pat = v
	case hv.MSREFER:
		if v&^(eferWritable|hv.EFERLMA) != 0 {
			return true, false
		}
		if host {
			c.sr.EFER = v
		} else {
			c.sr.EFER = c.sr.EFER&hv.EFERLMA | v&eferWritable
		}
		c.flushTLB()
	case msrSTAR:
		m.star = v
	case msrSFMASK:
		m.sfmask = v & 0xffffffff
	case hv.MSRFSBase, hv.MSRGSBase:
		if !canonical(v) {
			return true, false
		}
		if idx == hv.MSRFSBase {
			c.sr.FS.Base = v
		} else {
			c.sr.GS.Base = v
		}
	case msrTSCAux:
		if v>>32 != 0 {
			return true, false
		}
		m.tscAux = v
	default:
		return c.pmuWriteMSR(idx, v, host)
	}
	return true, true
}

// KVM's MSR exit reasons (kvm_run.msr.reason).
const (
	msrExitInval   = 1 << 0
	msrExitUnknown = 1 << 1
)

func opRdmsr(c *cpu, in *inst) {
	c.needCPL0()
	idx := uint32(c.regs[1])
	v, ok := c.readMSR(idx)
	if !ok {
		c.msrUnknown(false, idx, 0)
	}
	c.regs[0], c.regs[2] = v&0xffffffff, v>>32
}

func opWrmsr(c *cpu, in *inst) {
	c.needCPL0()
	idx := uint32(c.regs[1])
	v := c.regs[2]<<32 | c.regs[0]&0xffffffff
	known, valid := c.writeMSR(idx, v, false)
	switch {
	case !known:
		c.msrUnknown(true, idx, v)
	case !valid:
		c.gp(0)
	}
}

// msrUnknown raises #GP, or with VMConfig.UserSpaceMSR exits to the host
// with RIP at the instruction; the next Run completes it (KVM's
// KVM_EXIT_X86_RDMSR/WRMSR).
func (c *cpu) msrUnknown(write bool, idx uint32, v uint64) {
	if !c.vm.cfg.UserSpaceMSR {
		c.gp(0)
	}
	c.st.msrExits++
	c.msrExit = hv.MSRExit{Write: write, Index: idx, Data: v, Reason: msrExitUnknown}
	c.msrPend = 1
	if write {
		c.msrPend = 2
	}
	c.exit = &c.msrExit
	c.rip = c.cur
	panic(exitSignal{})
}

// opRdpmc reads a performance counter (pmu.go): #GP at CPL > 0 without
// CR4.PCE and for an index the PMU lacks.
func opRdpmc(c *cpu, in *inst) {
	if c.cpl != 0 && c.sr.CR4&hv.CR4PCE == 0 {
		c.gp(0)
	}
	v, ok := c.pmuRDPMC(uint32(c.regs[1]))
	if !ok {
		c.gp(0)
	}
	c.regs[0], c.regs[2] = v&0xffffffff, v>>32
}

const cr4TSD = 1 << 2

func opRdtsc(c *cpu, in *inst) {
	if c.sr.CR4&cr4TSD != 0 && c.cpl != 0 {
		c.gp(0)
	}
	t := c.tsc()
	c.regs[0], c.regs[2] = t&0xffffffff, t>>32
}

func opRdtscp(c *cpu, in *inst) {
	opRdtsc(c, in)
	c.regs[1] = c.msr.tscAux
}

// Control register bits the emulated CPU accepts.
const (
	cr0Valid = hv.CR0PE | hv.CR0MP | 1<<2 | 1<<3 | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0AM | 1<<29 | 1<<30 | hv.CR0PG
	cr4Valid = 1<<0 | 1<<1 | cr4TSD | 1<<3 | hv.CR4PSE | hv.CR4PAE | 1<<6 | hv.CR4PGE | hv.CR4PCE | hv.CR4OSFXSR | hv.CR4OSXMMEXCPT
)

func opMovCR(c *cpu, in *inst) {
	c.needCPL0()
	if in.src.kind == kCR { // mov reg, crN
		var v uint64
		switch in.src.reg {
		case 0:
			v = c.sr.CR0
		case 2:
			v = c.sr.CR2
		case 3:
			v = c.sr.CR3
		case 4:
			v = c.sr.CR4
		case 8:
			v = uint64(c.apic.TPR() >> 4)
		default:
			c.raise(vecUD)
		}
		c.regs[in.dst.reg&15] = v
		return
	}
	v := c.regs[in.src.reg&15]
	switch in.dst.reg {
	case 0:
		if v&^cr0Valid != 0 || v&hv.CR0PG != 0 && v&hv.CR0PE == 0 || v&(1<<29) != 0 && v&(1<<30) == 0 {
			c.gp(0)
		}
		if v&hv.CR0PG == 0 && c.sr.EFER&hv.EFERLMA != 0 {
			c.gp(0) // leaving long mode is not modelled
		}
		c.sr.CR0 = v | cr0Fixed1
		c.flushTLB()
	case 2:
		c.sr.CR2 = v
	case 3:
		if v&^physMask&^(1<<63) != 0 {
			c.gp(0)
		}
		c.sr.CR3 = v &^ (1 << 63)
		c.flushTLB()
	case 4:
		if v&^cr4Valid != 0 || v&hv.CR4PAE == 0 {
			c.gp(0)
		}
		c.sr.CR4 = v
		c.updateWatch() // CR4.DE decides what DR7's RW=10 means; flushes the TLBs
	case 8:
		if v>>4 != 0 {
			c.gp(0)
		}
		c.apic.SetTPR(uint32(v << 4))
		c.updateSlow()
	default:
		c.raise(vecUD)
	}
}

const cr4DE = 1 << 3

func opMovDR(c *cpu, in *inst) {
	c.needCPL0()
	n := in.src.reg
	if in.dst.kind == kDR {
		n = in.dst.reg
	}
	if n == 4 || n == 5 {
		if c.sr.CR4&cr4DE != 0 {
			c.raise(vecUD)
		}
		n += 2
	}
	if n > 7 {
		c.raise(vecUD)
	}
	c.generalDetect()
	if in.src.kind == kDR {
		var v uint64
		switch {
		case n < 4:
			v = c.dr[n]
		case n == 6:
			v = c.dr6 | dr6Fixed
		default:
			v = c.dr7 | dr7Fixed
		}
		c.regs[in.dst.reg&15] = v
		return
	}
	v := c.regs[in.src.reg&15]
	switch {
	case n < 4:
		c.dr[n] = v
	case n == 6:
		if v>>32 != 0 {
			c.gp(0)
		}
		c.dr6 = v | dr6Fixed
	default:
		if v>>32 != 0 {
			c.gp(0)
		}
		c.dr7 = v | dr7Fixed
	}
	if n != 6 {
		c.updateWatch()
	}
	c.updateSlow()
}

// segPtr returns the segment register n in x86asm order ES CS SS DS FS GS.
func (c *cpu) segPtr(n uint8) *hv.Segment {
	switch n {
	case 0:
		return &c.sr.ES
	case 1:
		return &c.sr.CS
	case 2:
		return &c.sr.SS
	case 3:
		return &c.sr.DS
	case 4:
		return &c.sr.FS
	}
	return &c.sr.GS
}

// opMovSeg: MOV r/m16, Sreg and MOV Sreg, r/m16 (not CS). Loading FS or GS
// this way sets the base from the descriptor, as on hardware.
func opMovSeg(c *cpu, in *inst) {
	if in.src.kind == kSeg {
		v := uint64(c.segPtr(in.src.reg).Selector)
		if in.dst.kind == kMem {
			c.wr(c.ea(&in.dst, in), 2, v)
		} else {
			c.setReg(&in.dst, in.size, v)
		}
		return
	}
	n := in.dst.reg
	if n == 1 {
		c.raise(vecUD)
	}
	sel := uint16(c.get(&in.src, in, 2))
	if sel>>2 == 0 {
		if n == 2 && (c.cpl == 3 || uint8(sel&3) != c.cpl) {
			c.gp(0)
		}
		s := c.segPtr(n)
		*s = hv.Segment{Selector: sel, Unusable: 1}
		c.ssShadow(n)
		return
	}
	lo, hi := c.readDesc(sel, 0)
	s := descSeg(sel, lo, hi)
	if s.S == 0 {
		c.gp(uint32(sel &^ 3))
	}
	if n == 2 {
		if s.Type&0xa != 2 || s.DPL != c.cpl || uint8(sel&3) != c.cpl {
			c.gp(uint32(sel &^ 3))
		}
		if s.Present == 0 {
			c.raiseErr(vecSS, uint32(sel&^3))
		}
	} else {
		if s.Type&0xa == 8 { // execute-only code
			c.gp(uint32(sel &^ 3))
		}
		if s.Present == 0 {
			c.raiseErr(vecNP, uint32(sel&^3))
		}
	}
	*c.segPtr(n) = s
	c.ssShadow(n)
}

// ssShadow: a load of SS blocks interrupts until after the next
// instruction (so "mov ss; mov rsp" cannot be interrupted in between).
func (c *cpu) ssShadow(n uint8) {
	if n == 2 {
		c.intShadow = true
		c.ssBlock = true
		c.setSlow()
	}
}

// opLdt: LIDT (cc 0) and LGDT (cc 1).
func opLdt(c *cpu, in *inst) {
	c.needCPL0()
	va := c.ea(&in.dst, in)
	limit := uint16(c.rd(va, 2))
	base := c.rd(va+2, 8)
	if !canonical(base) {
		c.gp(0)
	}
	t := hv.DTable{Base: base, Limit: limit}
	if in.cc == 0 {
		c.sr.IDT = t
	} else {
		c.sr.GDT = t
	}
}

// opSdt: SIDT (cc 0) and SGDT (cc 1), allowed at any CPL (no UMIP).
func opSdt(c *cpu, in *inst) {
	t := c.sr.IDT
	if in.cc == 1 {
		t = c.sr.GDT
	}
	va := c.ea(&in.dst, in)
	c.rd(va+9, 1) // fault before writing anything
	c.wr(va, 2, uint64(t.Limit))
	c.wr(va+2, 8, t.Base)
}

func opLtr(c *cpu, in *inst) {
	c.needCPL0()
	sel := uint16(c.get(&in.dst, in, 2))
	if sel>>2 == 0 {
		c.gp(0)
	}
	lo, hi := c.readDesc(sel, 0)
	s := descSeg(sel, lo, hi)
	if s.S != 0 || s.Type != 9 {
		c.gp(uint32(sel &^ 3))
	}
	if s.Present == 0 {
		c.raiseErr(vecNP, uint32(sel&^3))
	}
	off := uint64(sel &^ 7)
	if off+15 > uint64(c.sr.GDT.Limit) {
		c.gp(uint32(sel &^ 3))
	}
	upper := c.rdSys(c.sr.GDT.Base+off+8, 4)
	s.Base |= upper << 32
	// Mark the descriptor busy, as LTR does.
	c.wrSys(c.sr.GDT.Base+off+5, 1, uint64(hi>>8&0xff)|2)
	s.Type = 11
	c.sr.TR = s
}

func opStr(c *cpu, in *inst) {
	c.set(&in.dst, in, in.size, uint64(c.sr.TR.Selector))
}

func opInvlpg(c *cpu, in *inst) {
	c.needCPL0()
	va := c.ea(&in.dst, in)
	c.dtlb[(va>>12)%tlbSize].perm = 0
	c.ctlb[(va>>12)%ctlbSize].perm = 0
	c.codeGen++
}

func opSwapgs(c *cpu, in *inst) {
	c.needCPL0()
	c.sr.GS.Base, c.msr.kernelGSBase = c.msr.kernelGSBase, c.sr.GS.Base
}

// ioCheck applies the I/O privilege rules: allowed when CPL <= IOPL,
// else only when the TSS I/O permission bitmap clears every port bit.
func (c *cpu) ioCheck(port uint16, size uint8) {
	if len(c.ioWatch) > 0 {
		c.ioBreak(port, size)
	}
	if c.cpl <= c.iopl() {
		return
	}
	tr := &c.sr.TR
	if tr.Unusable != 0 || tr.Present == 0 || tr.Limit < 0x67 {
		c.gp(0)
	}
	base := c.rdSys(tr.Base+0x66, 2)
	off := base + uint64(port/8)
	if off+1 > uint64(tr.Limit) {
		c.gp(0)
	}
	bm := c.rdSys(tr.Base+off, 2)
	if bm>>(port%8)&(1<<size-1) != 0 {
		c.gp(0)
	}
}

func opIn(c *cpu, in *inst) {
	sz := in.ssize
	port := uint16(c.get(&in.src, in, 2))
	c.ioCheck(port, sz)
	setGPR(&c.regs[0], sz, c.portIn(port, sz))
}

// portIn reads a port: a replayed value, a device, or an exit with RIP
// at the instruction.
func (c *cpu) portIn(port uint16, sz uint8) uint64 {
	if v, ok := c.replayed(true, false, uint64(port), int(sz)); ok {
		return v
	}
	c.st.ioExits++
	e := &c.busIO
	*e = hv.IOExit{Port: port, Size: int(sz), Count: 1, In: true, Data: c.ioBuf[:sz]}
	clear(c.ioBuf[:])
	if v, ok := c.dispatch(e, true, false, uint64(port), int(sz)); ok {
		return v
	}
	c.record(ioRecord{port: true, addr: uint64(port), n: int(sz)})
	c.ioExit = hv.IOExit{Port: port, Size: int(sz), Count: 1, In: true, Data: c.ioBuf[:sz]}
	c.exit = &c.ioExit
	c.rip = c.cur
	panic(exitSignal{})
}

// portOut writes a port: a device, or an exit after the instruction.
func (c *cpu) portOut(port uint16, sz uint8, v uint64) {
	if _, ok := c.replayed(true, true, uint64(port), int(sz)); ok {
		return
	}
	c.st.ioExits++
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	e := &c.busIO
	*e = hv.IOExit{Port: port, Size: int(sz), Count: 1, Data: buf[:sz]}
	if _, ok := c.dispatch(e, true, true, uint64(port), int(sz)); ok {
		return
	}
	c.record(ioRecord{port: true, write: true, addr: uint64(port), n: int(sz), done: true})
	c.pend = append(c.pend, pendingWrite{port: true, addr: uint64(port), n: int(sz), data: buf})
	c.poke(attnExit)
}

// opIns: INS (REP INS) from port DX to [RDI], one exit per element.
func opIns(c *cpu, in *inst) {
	sz := in.ssize
	port := uint16(c.regs[2])
	c.ioCheck(port, sz)
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		va := c.strReg(7, in)
		c.rmwLoc(va, sz) // the destination must be writable before the port is read
		c.wr(va, sz, c.portIn(port, sz))
		c.strAdvance(7, in, d)
		return true
	})
}

// opOuts: OUTS (REP OUTS) from [RSI] to port DX, one exit per element.
func opOuts(c *cpu, in *inst) {
	sz := in.ssize
	port := uint16(c.regs[2])
	c.ioCheck(port, sz)
	seg := c.srcSeg(in)
	d := c.strDelta(sz)
	c.repeat(in, func() bool {
		c.portOut(port, sz, c.rd(seg+c.strReg(6, in), sz))
		c.strAdvance(6, in, d)
		return true
	})
}

// opOut: the exit is taken after the instruction; with OutRIPAtInsn RIP
// is put back at it while the host looks (takeExit).
func opOut(c *cpu, in *inst) {
	sz := in.ssize
	port := uint16(c.get(&in.dst, in, 2))
	c.ioCheck(port, sz)
	n := len(c.pend)
	c.portOut(port, sz, c.regs[0])
	if len(c.pend) > n && c.vm.h.opt.OutRIP == OutRIPAtInsn {
		c.pend[n].atInsn, c.pend[n].insn, c.pend[n].next = true, c.cur, c.rip
	}
}

// kvmEPERM is -KVM_EPERM, what KVM returns in RAX for a hypercall from
// CPL > 0.
const kvmEPERM = ^uint64(0)

// opVmcall exits to the host as a hypercall (Nr = RAX, args RBX, RCX, RDX,
// RSI, RDI, R8); the host's Ret lands in RAX on the next Run.
func opVmcall(c *cpu, in *inst) {
	if c.cpl != 0 {
		c.regs[0] = kvmEPERM
		return
	}
	c.st.hypercalls++
	c.hcExit = hv.HypercallExit{Nr: c.regs[0], Args: [6]uint64{c.regs[3], c.regs[1], c.regs[2], c.regs[6], c.regs[7], c.regs[8]}}
	c.hcPend = true
	c.exit = &c.hcExit
	c.poke(attnExit)
}
