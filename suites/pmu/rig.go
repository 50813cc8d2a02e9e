package pmu

import (
	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Vectors the specs install handlers at.
const (
	gateVector = 0x50 // the MSR gate (guest.InstallMSRGate)
	pmiVector  = 0x51 // the LVT performance entry
	ringVector = 0x52 // an empty handler: a round trip to CPL0 and back
)

// gpFault is #GP's vector, as the MSR gate and the runtime report it.
const gpFault = 13

// gateOK is R8 after an access that did not fault, as the host sees it.
const gateOK = ^uint64(0)

// rig is one spec's guest with its PMU shape and the code helpers that
// hide the privilege level: MSR accesses are direct at CPL0 and go
// through the MSR gate at CPL3, and counters count the ring the test
// code runs in (OS at CPL0, USR at CPL3).
type rig struct {
	b    *framework.Backend
	mode guest.Mode
	g    *guest.Guest
	p    *guest.Program
	pmu  hv.PMULeaf
	// noPCE leaves CR4.PCE clear (RDPMC at CPL3 then #GPs).
	noPCE bool
}

// rigOpts shape a rig.
type rigOpts struct {
	irq    bool                // a local APIC and a PMI handler
	noPMU  bool                // do not require a PMU (the absent-PMU specs)
	editID func(t *hv.CPUID)   // change the vCPU's CPUID before it runs
	filter *hv.PMUEventFilter  // a VM event filter
	need   []hv.Cap            // further capabilities
	leaf   func(l *hv.PMULeaf) // reshape leaf 0xA (needs CapCPUID)
}

func newRig(b *framework.Backend, mode guest.Mode, o rigOpts) *rig {
	GinkgoHelper()
	if !o.noPMU {
		b.Require(hv.CapPMU)
	}
	if o.irq {
		b.Require(hv.CapIRQChip)
	}
	if o.editID != nil || o.leaf != nil {
		b.Require(hv.CapCPUID)
	}
	for _, c := range o.need {
		b.Require(c)
	}
	cfg := guest.Config{Mode: mode}
	if o.irq {
		cfg.VM.IRQChip = true
	}
	g := b.NewGuest(cfg)
	r := &rig{b: b, mode: mode, g: g}
	tb, err := g.VCPUs[0].CPUID()
	Expect(err).NotTo(HaveOccurred(), "read the vCPU's CPUID")
	if o.leaf != nil {
		l := tb.PMU()
		o.leaf(&l)
		tb.SetPMU(l)
	}
	if o.editID != nil {
		o.editID(&tb)
	}
	if o.leaf != nil || o.editID != nil {
		Expect(g.VCPUs[0].SetCPUID(tb)).To(Succeed(), "set the vCPU's CPUID")
	}
	r.pmu = tb.PMU()
	if !o.noPMU && r.pmu.Version == 0 {
		Skip(b.Name + ": the vCPU's CPUID reports no PMU")
	}
	if o.filter != nil {
		f, ok := g.VM.(hv.PMUFilterer)
		if !ok {
			Skip(b.Name + ": the backend takes no PMU event filter (KVM_SET_PMU_EVENT_FILTER not wired)")
		}
		Expect(f.SetPMUEventFilter(*o.filter)).To(Succeed(), "set the PMU event filter")
	}
	if mode == guest.CPL3 {
		Expect(g.InstallMSRGate(gateVector)).To(Succeed())
	}
	Expect(g.Handle(guest.Handler{Vector: ringVector})).To(Succeed())
	if o.irq {
		Expect(g.Handle(guest.Handler{Vector: pmiVector, EOI: true})).To(Succeed())
	}
	r.p = g.Program()
	if o.irq {
		r.p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
		r.p.APICWrite(guest.APICLVTPerf, asm.Imm(pmiVector))
		r.p.EnableInterrupts()
	}
	return r
}

// ring is the EvtSel ring bit of the test code's privilege level.
func (r *rig) ring() uint64 {
	if r.mode == guest.CPL3 {
		return hv.EvtSelUSR
	}
	return hv.EvtSelOS
}

// fixedRing is the same for IA32_FIXED_CTR_CTRL (counter 0's field).
func (r *rig) fixedRing() uint64 {
	if r.mode == guest.CPL3 {
		return hv.FixedCtrUSR
	}
	return hv.FixedCtrOS
}

// write writes v to idx with nothing around the write, so counting
// windows can be opened and closed by it: the instructions after it are
// the window's. At CPL0 a fault fails the test; at CPL3 R8 tells (the
// caller checks it after the window, with checkWrite).
func (r *rig) write(idx uint32, v uint64) {
	r.loadMSR(idx, v)
	if r.mode == guest.CPL3 {
		r.p.MSRGate(gateVector, guest.MSRGateWrite)
		return
	}
	r.p.Wrmsr()
}

// checkWrite asserts that the last write did not fault.
func (r *rig) checkWrite() {
	if r.mode == guest.CPL3 {
		r.p.AssertEq(asm.R8, asm.Imm(guest.MSRGateOK), "WRMSR through the gate faulted")
	}
}

// writeCost is how many instructions the test code's ring retires in
// write up to and including the write itself: the three moves and WRMSR
// at CPL0; the moves, the gate selector and INT n at CPL3 (the WRMSR is
// then CPL0's).
func (r *rig) writeCost() uint64 {
	if r.mode == guest.CPL3 {
		return 5
	}
	return 4
}

// access emits the MSR access with ECX/EDX:EAX loaded; R8 receives
// MSRGateOK or the exception's vector.
func (r *rig) access(op int) {
	p := r.p
	if r.mode == guest.CPL3 {
		p.MSRGate(gateVector, op)
		return
	}
	if op == guest.MSRGateWrite {
		r.trapping(p.Wrmsr)
	} else {
		r.trapping(p.Rdmsr)
	}
}

// trapping emits insn with the runtime armed to resume after it: R8
// becomes MSRGateOK, or the vector of the exception insn raised.
func (r *rig) trapping(insn func()) {
	p := r.p
	fault, end := p.NewLabel(), p.NewLabel()
	p.ExpectException(fault)
	insn()
	p.Mov(asm.R8, asm.Imm(guest.MSRGateOK))
	p.Jmp(end)
	p.Bind(fault)
	p.Mov(asm.R8, asm.Q(asm.R15, guest.ExcVector))
	p.Bind(end)
}

// loadMSR loads ECX and EDX:EAX for an access: three moves.
func (r *rig) loadMSR(idx uint32, v uint64) {
	r.p.Mov(asm.ECX, asm.Imm(int64(idx)))
	r.p.Mov(asm.EAX, asm.Imm(int64(int32(uint32(v)))))
	r.p.Mov(asm.EDX, asm.Imm(int64(int32(uint32(v>>32)))))
}

// tryWrmsr writes v to idx and leaves R8 as access does.
func (r *rig) tryWrmsr(idx uint32, v uint64) {
	r.loadMSR(idx, v)
	r.access(guest.MSRGateWrite)
}

// wrmsr writes v to idx; the guest asserts it did not fault.
func (r *rig) wrmsr(idx uint32, v uint64) {
	r.tryWrmsr(idx, v)
	r.p.AssertEq(asm.R8, asm.Imm(guest.MSRGateOK), "WRMSR faulted")
}

// tryRdmsr reads idx into RAX (64 bits) and leaves R8 as access does.
func (r *rig) tryRdmsr(idx uint32) {
	r.loadMSR(idx, 0)
	r.access(guest.MSRGateRead)
	r.p.Shl(asm.RDX, asm.Imm(32))
	r.p.Mov(asm.EAX, asm.EAX)
	r.p.Or(asm.RAX, asm.RDX)
}

// rdmsr reads idx into dst; the guest asserts it did not fault.
func (r *rig) rdmsr(dst asm.Reg, idx uint32) {
	r.tryRdmsr(idx)
	r.p.AssertEq(asm.R8, asm.Imm(guest.MSRGateOK), "RDMSR faulted")
	r.p.Mov(dst, asm.RAX)
}

// readCost is what rdpmc's sequence retires before RDPMC reads: the
// move to ECX.
const readCost = 1

// rdpmc reads counter ecx into dst (64 bits); clobbers RAX, RCX, RDX.
func (r *rig) rdpmc(dst asm.Reg, ecx uint32) {
	p := r.p
	p.Mov(asm.ECX, asm.Imm(int64(int32(ecx))))
	p.Rdpmc()
	p.Shl(asm.RDX, asm.Imm(32))
	p.Mov(asm.EAX, asm.EAX)
	p.Or(asm.RAX, asm.RDX)
	p.Mov(dst, asm.RAX)
}

// tryRdpmc executes RDPMC with ecx and leaves R8 MSRGateOK or the vector.
func (r *rig) tryRdpmc(ecx uint32) {
	r.p.Mov(asm.ECX, asm.Imm(int64(int32(ecx))))
	r.trapping(r.p.Rdpmc)
}

// windowCost is what measure adds to the body's count: the first RDPMC
// itself, the two moves saving its result and the move that reloads
// ECX for the second RDPMC.
const windowCost = 4

// measure runs body between two RDPMCs of counter ecx and leaves the
// difference (body's events plus windowCost instructions) in dst. The
// body must keep R12-R14.
func (r *rig) measure(dst asm.Reg, ecx uint32, body func()) {
	p := r.p
	p.Mov(asm.R14D, asm.Imm(int64(int32(ecx))))
	p.Mov(asm.ECX, asm.R14D)
	p.Rdpmc()
	p.Mov(asm.R12, asm.RAX)
	p.Mov(asm.R13, asm.RDX)
	body()
	p.Mov(asm.ECX, asm.R14D)
	p.Rdpmc()
	p.Shl(asm.RDX, asm.Imm(32))
	p.Mov(asm.EAX, asm.EAX)
	p.Or(asm.RAX, asm.RDX)
	p.Shl(asm.R13, asm.Imm(32))
	p.Mov(asm.R12D, asm.R12D)
	p.Or(asm.R12, asm.R13)
	p.Sub(asm.RAX, asm.R12)
	p.Mov(dst, asm.RAX)
}

// nops emits n NOPs: n instructions, no branch.
func (r *rig) nops(n int) {
	for i := 0; i < n; i++ {
		r.p.Nop()
	}
}

// waitPMI waits for the PMI as kvm-unit-tests' check_irq does (up to
// 100000 PAUSEs with interrupts on) and leaves the count in dst.
func (r *rig) waitPMI(dst asm.Reg) {
	p := r.p
	loop, done := p.NewLabel(), p.NewLabel()
	p.Mov(asm.EBX, asm.Imm(100000))
	p.Bind(loop)
	p.Cmp(p.InterruptCount(pmiVector), asm.Imm(0))
	p.Jcc(asm.CondNE, done)
	p.Pause()
	p.Dec(asm.EBX)
	p.Jcc(asm.CondNE, loop)
	p.Bind(done)
	p.Mov(dst.As(4), p.InterruptCount(pmiVector))
}

// run loads the program (test code may use RDPMC at CPL3: CR4.PCE is
// set) and runs it to its end, returning the arguments of each SYNC by
// stage.
func (r *rig) run(ctx SpecContext) map[uint64][]uint64 {
	GinkgoHelper()
	r.p.Done()
	Expect(r.g.Load(r.p)).To(Succeed())
	s, err := r.g.VCPUs[0].Sregs()
	Expect(err).NotTo(HaveOccurred())
	if !r.noPCE {
		s.CR4 |= hv.CR4PCE
	}
	Expect(r.g.VCPUs[0].SetSregs(&s)).To(Succeed())
	out := map[uint64][]uint64{}
	Expect(r.g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
		out[u.Stage()] = append([]uint64(nil), u.Args[1:]...)
		return nil
	})).To(Succeed())
	return out
}

// entry is a table entry with the specs' timeout (a table itself cannot
// carry SpecTimeout).
func entry(desc any, args ...any) TableEntry {
	return Entry(desc, append(args, SpecTimeout(specTimeout))...)
}
