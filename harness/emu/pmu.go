package emu

import (
	"fmt"
	"math/bits"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"
)

// The emulated CPU's performance monitoring unit: Intel's architectural
// PMU (SDM vol. 3B ch. 20), versions 1 to 4, shaped by the vCPU's CPUID
// leaf 0xA (number and width of the GP and fixed counters, event
// availability) and leaf 1 ECX.PDCM (IA32_PERF_CAPABILITIES).
//
// Events and the cycle model. Three sources exist: instructions retired
// (event 0xC0/0x00, fixed counter 0), branch instructions retired
// (0xC4/0x00) and cycles. The model is deterministic: every retired
// instruction takes exactly one core cycle, and the reference clock runs
// with the core clock, so core cycles (0x3C/0x00, fixed counter 1) and
// reference cycles (0x3C/0x01, fixed counter 2) count what instructions
// retired counts. It is the vCPU's one clock (timer.go): under
// Options.Time = TimeInstructions the TSC and the APIC timer count the
// same cycles, plus the halted ones these unhalted-cycle events skip. Other events are accepted in the event select and never
// count; CPUID reports them unavailable. Edge, invert and counter-mask
// are stored and read back but do not change counting.
//
// What retires: an instruction that completes, including the WRMSR that
// stops a counter (it retires under the old configuration; the one that
// starts it does not count), and INT n / INT3, which complete and
// then trap (not a TF or data-breakpoint trap, which follows an
// instruction already counted). A faulting instruction does not retire, nor does delivering
// an interrupt or exception. Branches are Jcc, JMP, CALL, RET, LOOPcc,
// JrCXZ, IRET, SYSCALL/SYSRET and INT n / INT3. USR counts at
// CPL > 0, OS at CPL 0, by the CPL the instruction started at.
//
// Counting is lazy, so it stays cheap: each retired instruction bumps a
// per-ring tally of instructions (and branches), and a counter's value is
// its base plus the growth of the tallies it selects since it was last
// settled. The vCPU looks at the counters only when the instruction total
// reaches the nearest possible overflow (no event comes faster than one
// per instruction), and on every PMU MSR access; the overflow therefore
// lands on the exact instruction that wraps the counter.

const (
	pmuMaxGP    = 8 // KVM's INTEL_PMC_MAX_GENERIC
	pmuMaxFixed = 3 // fixed counters with an architectural event here
	pmuMaxVer   = 4
)

// Event sources counted per ring.
const (
	srcInsts = iota
	srcBranches
	srcNone // an event the model never counts
)

// Ring bits of a counter.
const (
	ringOS  = 1 << 0
	ringUSR = 1 << 1
)

// pmuCounter is one GP or fixed counter.
type pmuCounter struct {
	base  uint64 // value at the last settle (masked)
	mark  uint64 // tally of its source at the last settle
	mask  uint64 // width mask
	bit   uint64 // its PERF_GLOBAL_* bit
	src   int
	rings uint8
	intr  bool
	live  bool
}

// pmu is the PMU state of one vCPU.
type pmu struct {
	// Shape, from CPUID.
	version        int
	nGP, nFixed    int
	gpMask, fxMask uint64
	unavail        uint32 // events CPUID reports unavailable (bit per architectural event)
	pdcm           bool
	perfCaps       uint64

	evtsel     [pmuMaxGP]uint64
	fixedCtrl  uint64
	globalCtrl uint64
	status     uint64
	gp         [pmuMaxGP]pmuCounter
	fixed      [pmuMaxFixed]pmuCounter

	// tally counts retired instructions and branches per CPL; left is
	// how many more instructions may retire before a live counter could
	// wrap (events come at most one per instruction).
	tally [4][2]uint64
	left  uint64

	// early says the executing instruction has been retired already: a
	// guest WRMSR that reconfigured the PMU retires under the old
	// configuration. pmuCount counts it again, so left is 1 to send it
	// to pmuCheck, which takes that count back and restores savedLeft.
	early     bool
	savedLeft uint64

	filter *pmuFilter // the VM's filter when last looked at
}

// pmuFilter is a validated hv.PMUEventFilter.
type pmuFilter struct {
	deny   bool
	fixed  uint32
	events map[uint64]bool
}

// allowsGP applies KVM's rule for a GP counter's event select.
func (f *pmuFilter) allowsGP(evtsel uint64) bool {
	if f == nil {
		return true
	}
	in := f.events[evtsel&(hv.EvtSelEvent|hv.EvtSelUmask)]
	return in != f.deny
}

// allowsFixed applies KVM's rule for fixed counter j: the bitmap alone.
func (f *pmuFilter) allowsFixed(j int) bool {
	if f == nil {
		return true
	}
	in := f.fixed&(1<<j) != 0
	return in != f.deny
}

// defaultPMU is the leaf 0xA a new vCPU has: version 2, four 48-bit GP
// counters, three 48-bit fixed counters, and the events the model counts.
var defaultPMU = hv.PMULeaf{
	Version: 2, GPCounters: 4, GPWidth: 48, FixedCounters: 3, FixedWidth: 48, EventsLen: 7,
	Unavailable: 1<<hv.PMUEventLLCRefs | 1<<hv.PMUEventLLCMisses | 1<<hv.PMUEventBranchMisses,
}

// archEvents maps the architectural event of CPUID.0AH:EBX bit i to its
// encoding and the source the model counts it with.
var archEvents = [...]struct {
	code uint64
	src  int
}{
	hv.PMUEventCoreCycles:   {hv.EventCoreCycles, srcInsts},
	hv.PMUEventInstructions: {hv.EventInstructions, srcInsts},
	hv.PMUEventRefCycles:    {hv.EventRefCycles, srcInsts},
	hv.PMUEventLLCRefs:      {hv.EventLLCRefs, srcNone},
	hv.PMUEventLLCMisses:    {hv.EventLLCMisses, srcNone},
	hv.PMUEventBranches:     {hv.EventBranches, srcBranches},
	hv.PMUEventBranchMisses: {hv.EventBranchMisses, srcNone},
}

// fixedEvents are the architectural events of fixed counters 0-2.
var fixedEvents = [pmuMaxFixed]int{hv.PMUEventInstructions, hv.PMUEventCoreCycles, hv.PMUEventRefCycles}

// widthMask is the value mask of a w-bit counter.
func widthMask(w int) uint64 {
	if w >= 64 {
		return ^uint64(0)
	}
	return 1<<w - 1
}

// pmuConfigure shapes the PMU from the vCPU's CPUID table and resets it
// (KVM refreshes the PMU on KVM_SET_CPUID2 the same way).
func (c *cpu) pmuConfigure() {
	l := c.cpuid.PMU()
	p := &c.pmu
	filter := p.filter
	*p = pmu{filter: filter}
	p.version = min(l.Version, pmuMaxVer)
	if p.version <= 0 {
		p.version = 0
		c.pmuRebuild() // no counters; the countdown may still serve the APIC timer
		return
	}
	p.nGP = min(l.GPCounters, pmuMaxGP)
	if l.GPWidth <= 0 {
		p.nGP = 0
	}
	p.gpMask = widthMask(l.GPWidth)
	if p.version >= 2 {
		p.nFixed = min(l.FixedCounters, pmuMaxFixed)
		if l.FixedWidth <= 0 {
			p.nFixed = 0
		}
		p.fxMask = widthMask(l.FixedWidth)
	}
	// Events beyond the mask length are unavailable.
	p.unavail = l.Unavailable
	if l.EventsLen < 32 {
		p.unavail |= ^uint32(0) << l.EventsLen
	}
	if e, ok := c.cpuid.Lookup(hv.CPUIDLeafFeatures, 0); ok && e.ECX&hv.CPUID1ECXPDCM != 0 {
		p.pdcm = true
		p.perfCaps = hv.PerfCapFullWidthWrite
	}
	if p.version >= 2 {
		// KVM's RESET value: the GP counters enabled, so a version 1
		// guest's EN bit alone starts them.
		p.globalCtrl = 1<<p.nGP - 1
	}
	for i := range p.gp {
		p.gp[i] = pmuCounter{mask: p.gpMask, bit: 1 << i}
	}
	for j := range p.fixed {
		p.fixed[j] = pmuCounter{mask: p.fxMask, bit: hv.PerfGlobalFixed0 << j}
	}
	c.pmuRebuild()
}

// globalBits are the PERF_GLOBAL_* bits of existing counters.
func (p *pmu) globalBits() uint64 {
	return (1<<p.nGP - 1) | (1<<p.nFixed-1)<<32
}

// gpSource is the source a GP counter with event select e counts, or
// srcNone.
func (p *pmu) gpSource(e uint64) int {
	code := e & (hv.EvtSelEvent | hv.EvtSelUmask)
	for i, ev := range archEvents {
		if ev.code == code {
			if p.unavail&(1<<i) != 0 {
				return srcNone
			}
			return ev.src
		}
	}
	return srcNone
}

// source is a counter's tally over its rings.
func (p *pmu) source(k *pmuCounter) uint64 {
	var s uint64
	if k.rings&ringOS != 0 {
		s += p.tally[0][k.src]
	}
	if k.rings&ringUSR != 0 {
		s += p.tally[1][k.src] + p.tally[2][k.src] + p.tally[3][k.src]
	}
	return s
}

// value is a counter's current value.
func (p *pmu) value(k *pmuCounter) uint64 {
	if !k.live {
		return k.base
	}
	return (k.base + p.source(k) - k.mark) & k.mask
}

// settle folds every live counter's growth into its base, recording
// overflows, so the configuration may change under it.
// A guest WRMSR (guest true) reconfiguring counting retires under the
// configuration it found: it is counted here, and pmuCount skips it.
func (c *cpu) pmuSettle(guest bool) {
	p := &c.pmu
	if guest && !p.early {
		if c.pmuOn {
			c.pmuRetire(c.cpl, false) // WRMSR is no branch, nor changes CPL
		}
		p.early = true
	}
	for _, k := range p.counters() {
		if k.live {
			c.pmuFold(k)
		}
	}
}

// pmuFold settles one live counter and reports whether it wrapped.
func (c *cpu) pmuFold(k *pmuCounter) bool {
	p := &c.pmu
	s := p.source(k)
	v, carry := bits.Add64(k.base, s-k.mark, 0)
	k.mark = s
	k.base = v & k.mask
	if carry == 0 && v <= k.mask {
		return false
	}
	p.status |= k.bit
	if k.intr && c.vm.cfg.IRQChip {
		c.raiseLVT(lapic.LVTPerf)
	}
	return true
}

// counters lists the GP and fixed counters that exist.
func (p *pmu) counters() []*pmuCounter {
	out := make([]*pmuCounter, 0, pmuMaxGP+pmuMaxFixed)
	for i := 0; i < p.nGP; i++ {
		out = append(out, &p.gp[i])
	}
	for j := 0; j < p.nFixed; j++ {
		out = append(out, &p.fixed[j])
	}
	return out
}

// rings is a counter's ring bits from its USR and OS enables.
func rings(usr, os bool) uint8 {
	var r uint8
	if usr {
		r |= ringUSR
	}
	if os {
		r |= ringOS
	}
	return r
}

// pmuRebuild recomputes which counters count (after settle) and where
// the next possible overflow is.
func (c *cpu) pmuRebuild() {
	p := &c.pmu
	global := p.globalCtrl
	if p.version == 1 {
		global = ^uint64(0)
	}
	for i := 0; i < p.nGP; i++ {
		k, e := &p.gp[i], p.evtsel[i]
		k.src = p.gpSource(e)
		k.rings = rings(e&hv.EvtSelUSR != 0, e&hv.EvtSelOS != 0)
		k.intr = e&hv.EvtSelINT != 0
		k.live = e&hv.EvtSelEN != 0 && global&k.bit != 0 && k.src != srcNone && k.rings != 0 && p.filter.allowsGP(e)
	}
	for j := 0; j < p.nFixed; j++ {
		k, f := &p.fixed[j], p.fixedCtrl>>(hv.FixedCtrBits*j)&0xf
		k.src = archEvents[fixedEvents[j]].src
		k.rings = rings(f&hv.FixedCtrUSR != 0, f&hv.FixedCtrOS != 0)
		k.intr = f&hv.FixedCtrPMI != 0
		k.live = global&k.bit != 0 && k.rings != 0 && p.filter.allowsFixed(j)
	}
	for _, k := range p.counters() {
		if k.live {
			k.mark = p.source(k)
		}
	}
	c.countdownRefresh()
}

// anyLive reports whether some counter counts.
func (p *pmu) anyLive() bool {
	for _, k := range p.counters() {
		if k.live {
			return true
		}
	}
	return false
}

// pmuArm sets next to the total at which the nearest live counter could
// wrap (events come at most one per instruction), or the APIC timer is
// due under TimeInstructions: the one instruction countdown serves both.
func (c *cpu) pmuArm() {
	p := &c.pmu
	dist := ^uint64(0)
	for _, k := range p.counters() {
		if k.live {
			if d := k.mask - p.value(k) + 1; d != 0 && d < dist {
				dist = d
			}
		}
	}
	now := c.cycles()
	if p.early {
		now++ // the executing WRMSR retires before the countdown resumes
	}
	if d := c.timerLeft(now); d != 0 && d < dist {
		dist = d
	}
	if p.early {
		p.savedLeft, p.left = dist, 1
		return
	}
	p.left = dist
}

// opMask bounds x86asm.Op values (the last, XTEST, is about 620; a test
// keeps the bound honest), so the branch table needs no bounds check.
const opMask = 1<<10 - 1

// branchOps is 1 for the instructions branches retired counts (a number,
// so counting adds without a branch).
var branchOps = func() (t [opMask + 1]uint64) {
	for _, o := range []x86asm.Op{x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS,
		x86asm.JMP, x86asm.CALL, x86asm.RET, x86asm.LRET, x86asm.LCALL, x86asm.LJMP,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.JRCXZ, x86asm.JECXZ, x86asm.JCXZ,
		x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.SYSCALL, x86asm.SYSRET, x86asm.SYSENTER, x86asm.SYSEXIT,
		x86asm.INT, x86asm.INTO} {
		t[o] = 1
	}
	return t
}()

// pmuCount counts the instruction step just executed when some counter
// is live: a tally per CPL and a countdown to the next possible overflow
// (or to an instruction pmuSettle retired early). It reports when the
// countdown ends, for step to call pmuCheck: without the call inside, it
// inlines into step.
func (c *cpu) pmuCount(cpl uint8, in *inst) bool {
	p := &c.pmu
	t := &p.tally[cpl&3]
	t[srcInsts]++
	t[srcBranches] += branchOps[in.op&opMask]
	p.left--
	return p.left == 0
}

// pmuRetire counts one retired instruction of cpl outside step.
func (c *cpu) pmuRetire(cpl uint8, branch bool) {
	p := &c.pmu
	t := &p.tally[cpl&3]
	t[srcInsts]++
	if branch {
		t[srcBranches]++
	}
	p.left--
	if p.left == 0 {
		c.pmuCheck(cpl)
	}
}

// pmuCheck settles the live counters when one may have wrapped, or takes
// back pmuCount's count of an instruction retired early (a WRMSR: no
// branch).
func (c *cpu) pmuCheck(cpl uint8) {
	p := &c.pmu
	if p.early {
		p.early = false
		p.tally[cpl&3][srcInsts]--
		p.left = p.savedLeft
		return
	}
	for _, k := range p.counters() {
		if k.live {
			c.pmuFold(k)
		}
	}
	c.timerCheck()
	c.pmuArm()
}

// pmuAbandon is told when an instruction under counting leaves by panic:
// INT n and INT3 complete before they trap and retire as branches;
// faults, exits and restarts retire nothing (a restarted instruction
// counts when it completes).
func (c *cpu) pmuAbandon(sig any) {
	// Only INT n and INT3 are soft traps raised from inside an
	// instruction (a TF or data-breakpoint trap follows an instruction
	// step already counted). The trap is not delivered yet: CPL is the
	// instruction's.
	if f, ok := sig.(*guestFault); ok && f.trap && f.soft {
		c.st.instructions++ // the clock's count (timer.go) is the PMU's (onPanic settled it)
		if c.pmuOn {
			c.pmuRetire(c.cpl, true)
		}
	}
}

// pmuRefresh picks up the VM's event filter at entry.
func (c *cpu) pmuRefresh() {
	f := c.vm.pmuFilter.Load()
	if f == c.pmu.filter {
		return
	}
	c.pmuSettle(false)
	c.pmu.early = false // a guest write's mark cannot outlive its instruction
	c.pmu.filter = f
	c.pmuRebuild()
}

// RDPMC index bits that select a counter.
const rdpmcIndex = hv.RDPMCFixed - 1

// pmuRDPMC returns the counter RDPMC's ECX selects; ok is false for an
// index that #GPs (a missing counter, the fast-read bit).
func (c *cpu) pmuRDPMC(ecx uint32) (uint64, bool) {
	p := &c.pmu
	if ecx&hv.RDPMCFast != 0 || p.version == 0 {
		return 0, false
	}
	i := int(ecx & rdpmcIndex)
	if ecx&hv.RDPMCFixed != 0 {
		if i >= p.nFixed {
			return 0, false
		}
		return p.value(&p.fixed[i]), true
	}
	if i >= p.nGP {
		return 0, false
	}
	return p.value(&p.gp[i]), true
}

// KVM's MSR_P6_PERFCTR0/1 and MSR_P6_EVNTSEL0/1 read 0 and drop writes
// when they are not counters of the guest's PMU (kvm_get_msr_common):
// pmu_counters_test checks it.
func p6Quirk(idx uint32) bool {
	return idx == hv.MSRPMC0 || idx == hv.MSRPMC0+1 || idx == hv.MSRPerfEvtSel0 || idx == hv.MSRPerfEvtSel0+1
}

// pmuReadMSR reads a PMU MSR; ok is false when the CPU lacks it.
func (c *cpu) pmuReadMSR(idx uint32) (uint64, bool) {
	p := &c.pmu
	if i := int(idx) - hv.MSRPMC0; i >= 0 && i < pmuMaxGP {
		if i < p.nGP {
			return p.value(&p.gp[i]), true
		}
		return 0, p6Quirk(idx)
	}
	if i := int(idx) - hv.MSRPerfEvtSel0; i >= 0 && i < pmuMaxGP {
		if i < p.nGP {
			return p.evtsel[i], true
		}
		return 0, p6Quirk(idx)
	}
	if i := int(idx) - hv.MSRAPMC0; i >= 0 && i < pmuMaxGP {
		if i < p.nGP && p.perfCaps&hv.PerfCapFullWidthWrite != 0 {
			return p.value(&p.gp[i]), true
		}
		return 0, false
	}
	if j := int(idx) - hv.MSRFixedCtr0; j >= 0 && j < pmuMaxFixed {
		if j < p.nFixed {
			return p.value(&p.fixed[j]), true
		}
		return 0, false
	}
	if idx == hv.MSRPerfCapabilities {
		return p.perfCaps, p.pdcm
	}
	if p.version < 2 {
		return 0, false
	}
	switch idx {
	case hv.MSRFixedCtrCtrl:
		return p.fixedCtrl, true
	case hv.MSRPerfGlobalCtrl:
		return p.globalCtrl, true
	case hv.MSRPerfGlobalStatus:
		// Overflows are recorded at the instruction that wraps: current.
		return p.status, true
	case hv.MSRPerfGlobalOvfCtrl:
		return 0, true
	case hv.MSRPerfGlobalStatusSet:
		return 0, p.version >= 4
	}
	return 0, false
}

// pmuWriteMSR writes a PMU MSR; known is false when the CPU lacks it,
// valid false when the value #GPs.
func (c *cpu) pmuWriteMSR(idx uint32, v uint64, host bool) (known, valid bool) {
	p := &c.pmu
	if host {
		// Between instructions: no guest write's early retirement is
		// pending any more.
		p.early = false
	}
	if i := int(idx) - hv.MSRPMC0; i >= 0 && i < pmuMaxGP {
		if i >= p.nGP {
			return p6Quirk(idx), true
		}
		if !host {
			v = uint64(int64(int32(v))) // legacy writes sign-extend bit 31
		}
		c.pmuSetCounter(&p.gp[i], v, host)
		return true, true
	}
	if i := int(idx) - hv.MSRAPMC0; i >= 0 && i < pmuMaxGP {
		if i >= p.nGP || p.perfCaps&hv.PerfCapFullWidthWrite == 0 {
			return false, false
		}
		if v&^p.gpMask != 0 {
			return true, false
		}
		c.pmuSetCounter(&p.gp[i], v, host)
		return true, true
	}
	if i := int(idx) - hv.MSRPerfEvtSel0; i >= 0 && i < pmuMaxGP {
		if i >= p.nGP {
			return p6Quirk(idx), true
		}
		if v&hv.EvtSelReserved != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.evtsel[i] = v
		c.pmuRebuild()
		return true, true
	}
	if j := int(idx) - hv.MSRFixedCtr0; j >= 0 && j < pmuMaxFixed {
		if j >= p.nFixed {
			return false, false
		}
		c.pmuSetCounter(&p.fixed[j], v, host)
		return true, true
	}
	if idx == hv.MSRPerfCapabilities {
		if !p.pdcm {
			return false, false
		}
		// Read-only to the guest; the host may clear full-width writes.
		if !host || v&^hv.PerfCapFullWidthWrite != 0 {
			return true, false
		}
		p.perfCaps = v
		return true, true
	}
	if p.version < 2 {
		return false, false
	}
	switch idx {
	case hv.MSRFixedCtrCtrl:
		var ok uint64
		for j := 0; j < p.nFixed; j++ {
			ok |= (hv.FixedCtrOS | hv.FixedCtrUSR | hv.FixedCtrPMI) << (hv.FixedCtrBits * j)
		}
		if v&^ok != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.fixedCtrl = v
		c.pmuRebuild()
	case hv.MSRPerfGlobalCtrl:
		if v&^p.globalBits() != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.globalCtrl = v
		c.pmuRebuild()
	case hv.MSRPerfGlobalStatus:
		// Read-only to the guest (STATUS_SET exists for that); the host
		// restores it.
		if !host || v&^(p.globalBits()|statusExtra) != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.status = v
		c.pmuArm()
	case hv.MSRPerfGlobalOvfCtrl:
		if v&^(p.globalBits()|statusExtra) != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.status &^= v
		c.pmuArm()
	case hv.MSRPerfGlobalStatusSet:
		if p.version < 4 {
			return false, false
		}
		if v&^(p.globalBits()|statusExtra) != 0 {
			return true, false
		}
		c.pmuSettle(!host)
		p.status |= v
		c.pmuArm()
	default:
		return false, false
	}
	return true, true
}

// statusExtra are the PERF_GLOBAL_STATUS bits besides the counters' that
// OVF_CTRL may clear: OvfBuf (62) and CondChgd (63).
const statusExtra = 1<<62 | 1<<63

// pmuSetCounter writes a counter's value (masked to its width).
func (c *cpu) pmuSetCounter(k *pmuCounter, v uint64, host bool) {
	c.pmuSettle(!host)
	k.base = v & k.mask
	k.mark = c.pmu.source(k)
	c.pmuArm()
}

// pmuCaps describes the default PMU for Caps.
func pmuCaps() hv.PMUInfo {
	return hv.PMUInfo{Version: defaultPMU.Version, GPCounters: defaultPMU.GPCounters,
		FixedCounters: defaultPMU.FixedCounters, CounterWidth: defaultPMU.GPWidth}
}

// SetPMUEventFilter implements hv.PMUFilterer with KVM's validation.
func (vm *VM) SetPMUEventFilter(f hv.PMUEventFilter) error {
	if vm.isClosed() {
		return fmt.Errorf("KVM_SET_PMU_EVENT_FILTER: %w", hv.ErrVMClosed)
	}
	if f.Action != hv.PMUFilterAllow && f.Action != hv.PMUFilterDeny {
		return fmt.Errorf("KVM_SET_PMU_EVENT_FILTER: action %d: %w", f.Action, unix.EINVAL)
	}
	if f.Flags&^hv.PMUFilterMaskedEvents != 0 {
		return fmt.Errorf("KVM_SET_PMU_EVENT_FILTER: flags %#x: %w", f.Flags, unix.EINVAL)
	}
	if f.Flags != 0 {
		return hv.Unsupported(Name, hv.CapPMU, "masked PMU events (KVM_PMU_EVENT_FLAG_MASKED_EVENTS) are not modelled")
	}
	if len(f.Events) > hv.PMUFilterMaxEvents {
		return fmt.Errorf("KVM_SET_PMU_EVENT_FILTER: %d events: %w", len(f.Events), unix.E2BIG)
	}
	pf := &pmuFilter{deny: f.Action == hv.PMUFilterDeny, fixed: f.FixedCounterBitmap, events: map[uint64]bool{}}
	for _, e := range f.Events {
		// KVM drops entries with bits beyond event select and unit mask
		// (an entry of ~0 is accepted and matches nothing).
		if e&^(hv.EvtSelEvent|hv.EvtSelUmask) == 0 {
			pf.events[e] = true
		}
	}
	vm.pmuFilter.Store(pf)
	return nil
}
