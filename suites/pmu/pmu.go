// Package pmu checks the guest-visible performance monitoring unit: Intel's
// architectural PMU as CPUID leaf 0xA describes it, and its overflow.
//
// The checks follow the kernel's and kvm-unit-tests' PMU tests
// (pmu_counters_test, pmu_event_filter_test, kvm-unit-tests x86/pmu.c):
// a counter preset to 1 − N wraps to 1 after N events, sets exactly its
// PERF_GLOBAL_STATUS bit and raises one PMI when its INT bit is set; the
// width matrix pins the overflow to the counter's width for every way of
// writing it (the x86 form of the v6.2 arm64 period-computation bug,
// KVM commit 58ff6569bc6e, where a 64-bit counter's overflow came at the
// other boundary); counts of instructions and branches retired over a
// known loop are exact, as pmu_counters_test asserts (45 instructions,
// 10 branches); cycles only need to count (its tolerance: non-zero).
// The event filter follows KVM_SET_PMU_EVENT_FILTER; the filter specs
// judge "counting" as pmu_event_filter_test does (non-zero).
//
// Test code runs at each privilege level (b.Modes): counters count its
// ring (USR at CPL3, OS at CPL0); MSR accesses at CPL3 go through the MSR
// gate (guest.InstallMSRGate) and counters are read with RDPMC (CR4.PCE).
// Every spec needs a guest PMU (hv.CapPMU, skipped with the backend's
// reason otherwise: "PMU disabled (kvm.enable_pmu=N)") except the
// absent-PMU specs, which hide leaf 0xA and run everywhere.
package pmu

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.Register(taxonomy.PMU, specs) }

// specTimeout bounds each spec; a PMU spec's guest runs for microseconds.
const specTimeout = 20 * time.Second

func specs(b *framework.Backend) {
	for _, mode := range b.Modes() {
		mode := mode
		Describe(mode.String(), framework.ModeLabel(mode), func() {
			overflowSpecs(b, mode)
			widthSpecs(b, mode)
			countSpecs(b, mode)
			filterSpecs(b, mode)
			faultSpecs(b, mode)
			absentSpecs(b, mode)
		})
	}
}

// counter names one GP or fixed counter.
type counter struct {
	fixed bool
	idx   int
}

func (c counter) String() string {
	if c.fixed {
		return fmt.Sprintf("fixed counter %d", c.idx)
	}
	return fmt.Sprintf("GP counter %d", c.idx)
}

// bit is the counter's PERF_GLOBAL_* bit.
func (c counter) bit() uint64 {
	if c.fixed {
		return hv.PerfGlobalFixed0 << c.idx
	}
	return 1 << c.idx
}

// rdpmc is the counter's RDPMC index.
func (c counter) rdpmc() uint32 {
	if c.fixed {
		return hv.RDPMCFixed | uint32(c.idx)
	}
	return uint32(c.idx)
}

// requireCounter skips when the vCPU's PMU lacks c.
func (r *rig) requireCounter(c counter) {
	GinkgoHelper()
	if c.fixed && c.idx >= r.pmu.FixedCounters || !c.fixed && c.idx >= r.pmu.GPCounters {
		Skip(fmt.Sprintf("%s: the vCPU has no %s (%v)", r.b.Name, c, r.pmu))
	}
}

// mask is the counter's width mask.
func (r *rig) mask(c counter) uint64 {
	w := r.pmu.GPWidth
	if c.fixed {
		w = r.pmu.FixedWidth
	}
	if w >= 64 {
		return ^uint64(0)
	}
	return 1<<w - 1
}

// program sets c up to count event in the test code's ring (GP counters;
// fixed counters count their own event), with INT when intr, while
// PERF_GLOBAL_CTRL holds everything off.
func (r *rig) program(c counter, event uint64, intr bool) {
	r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
	if c.fixed {
		f := r.fixedRing()
		if intr {
			f |= hv.FixedCtrPMI
		}
		r.wrmsr(hv.MSRFixedCtrCtrl, f<<(hv.FixedCtrBits*c.idx))
		return
	}
	sel := event | r.ring() | hv.EvtSelEN
	if intr {
		sel |= hv.EvtSelINT
	}
	r.wrmsr(hv.MSRPerfEvtSel0+uint32(c.idx), sel)
}

// preset writes v to c: legacy (IA32_PMCx, sign-extended from bit 31)
// for GP counters, the counter itself for fixed ones.
func (r *rig) preset(c counter, v uint64) {
	if c.fixed {
		r.wrmsr(hv.MSRFixedCtr0+uint32(c.idx), v&r.mask(c))
		return
	}
	r.wrmsr(hv.MSRPMC0+uint32(c.idx), v&0xffffffff)
}

// statusIf is v when cond holds, else 0: an expected status bit or count.
func statusIf(cond bool, v uint64) uint64 {
	if cond {
		return v
	}
	return 0
}

// overflowEvents is N of the preset 1 − N.
const overflowEvents = 100

func overflowSpecs(b *framework.Backend, mode guest.Mode) {
	DescribeTable("a counter preset to 1 − N wraps to 1 after N events",
		func(ctx SpecContext, c counter, intr bool) {
			r := newRig(b, mode, rigOpts{irq: true})
			r.requireCounter(c)
			p := r.p
			r.program(c, hv.EventInstructions, intr)
			r.preset(c, ^uint64(overflowEvents-2))
			By("counting N instructions from the enabling write")
			r.write(hv.MSRPerfGlobalCtrl, c.bit())
			r.nops(overflowEvents - readCost)
			r.rdpmc(asm.R9, c.rdpmc())
			r.checkWrite()
			r.rdmsr(asm.R10, hv.MSRPerfGlobalStatus)
			r.waitPMI(asm.R11)
			r.wrmsr(hv.MSRPerfGlobalOvfCtrl, c.bit())
			r.rdmsr(asm.RBX, hv.MSRPerfGlobalStatus)
			r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
			p.Sync(1, asm.R9, asm.R10, asm.R11, asm.RBX)
			got := r.run(ctx)[1]
			value, status, pmis, cleared := got[0], got[1], got[2], got[3]
			if intr && mode == guest.CPL0 {
				// The PMI handler ran at CPL0 between the wrap and the
				// read: the counter counted it too.
				Expect(value).To(BeNumerically(">=", 1), "counter after the wrap")
			} else {
				Expect(value).To(Equal(uint64(1)), "counter after N events (width-masked 1 − N + N)")
			}
			Expect(status).To(Equal(c.bit()), "PERF_GLOBAL_STATUS: exactly the counter's bit")
			Expect(pmis).To(Equal(statusIf(intr, 1)), "PMIs (INT set: exactly one; clear: none)")
			Expect(cleared).To(BeZero(), "PERF_GLOBAL_STATUS after OVF_CTRL")
		},
		func(c counter, intr bool) string {
			return fmt.Sprintf("%s, INT %v", c, intr)
		},
		overflowEntries(),
	)

	DescribeTable("the overflow lands on the event that crosses the width",
		func(ctx SpecContext, events int, wantOvf bool) {
			r := newRig(b, mode, rigOpts{})
			c := counter{idx: 0}
			r.program(c, hv.EventInstructions, false)
			r.preset(c, ^uint64(overflowEvents-1))
			// The window closes with the disabling write, whose own
			// instructions are the last events: nothing is read while
			// the counter still runs.
			r.write(hv.MSRPerfGlobalCtrl, 1)
			r.nops(events - int(r.writeCost()))
			r.write(hv.MSRPerfGlobalCtrl, 0)
			r.checkWrite()
			r.rdpmc(asm.R9, 0)
			r.rdmsr(asm.R10, hv.MSRPerfGlobalStatus)
			r.p.Sync(1, asm.R9, asm.R10)
			got := r.run(ctx)[1]
			want := (uint64(events) - overflowEvents) & r.mask(c)
			Expect(got[0]).To(Equal(want), "counter after %d events from −%d", events, overflowEvents)
			Expect(got[1]).To(Equal(statusIf(wantOvf, 1)), "PERF_GLOBAL_STATUS")
		},
		entry("−N after N − 1 events: not yet", overflowEvents-1, false),
		entry("−N after N events: wrapped to 0", overflowEvents, true),
	)
}

func overflowEntries() []TableEntry {
	var out []TableEntry
	for i := 0; i < 4; i++ {
		for _, intr := range []bool{true, false} {
			out = append(out, entry(nil, counter{idx: i}, intr))
		}
	}
	for _, intr := range []bool{true, false} {
		out = append(out, entry(nil, counter{fixed: true, idx: 0}, intr))
	}
	return out
}

// widthCase is one cell of the width matrix: the counter's width, how
// the preset is written and the preset, 16 events later.
type widthCase struct {
	width     int
	fullWidth bool
	preset    func(mask uint64) uint64
	// wantValue after 16 events and whether they overflowed.
	wantValue func(mask uint64) uint64
	wantOvf   bool
}

const widthEvents = 16

func widthSpecs(b *framework.Backend, mode guest.Mode) {
	DescribeTable("the overflow comes at the counter's width",
		func(ctx SpecContext, c widthCase) {
			r := newRig(b, mode, rigOpts{leaf: func(l *hv.PMULeaf) { l.GPWidth = c.width }})
			if c.fullWidth {
				r.requireFullWidth()
			}
			mask := uint64(1)<<c.width - 1
			k := counter{idx: 0}
			r.program(k, hv.EventInstructions, false)
			if c.fullWidth {
				r.wrmsr(hv.MSRAPMC0, c.preset(mask))
			} else {
				r.wrmsr(hv.MSRPMC0, c.preset(mask))
			}
			r.write(hv.MSRPerfGlobalCtrl, 1)
			r.nops(widthEvents - readCost)
			r.rdpmc(asm.R9, 0)
			r.checkWrite()
			r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
			r.rdmsr(asm.R10, hv.MSRPerfGlobalStatus)
			r.p.Sync(1, asm.R9, asm.R10)
			got := r.run(ctx)[1]
			Expect(got[0]).To(Equal(c.wantValue(mask)), "counter after %d events", widthEvents)
			Expect(got[1]).To(Equal(statusIf(c.wantOvf, 1)), "PERF_GLOBAL_STATUS")
		},
		func(c widthCase) string {
			how := "legacy IA32_PMC0"
			if c.fullWidth {
				how = "full-width IA32_A_PMC0"
			}
			return fmt.Sprintf("%d-bit counter, %s, preset %#x", c.width, how, c.preset(uint64(1)<<c.width-1))
		},
		widthEntries(),
	)

	DescribeTable("a full-width write beyond the width is #GP",
		func(ctx SpecContext, width int) {
			r := newRig(b, mode, rigOpts{leaf: func(l *hv.PMULeaf) { l.GPWidth = width }})
			r.requireFullWidth()
			r.tryWrmsr(hv.MSRAPMC0, 1<<width)
			r.p.Mov(asm.R9, asm.R8)
			r.tryWrmsr(hv.MSRAPMC0, 1<<width-1)
			r.p.Sync(1, asm.R9, asm.R8)
			got := r.run(ctx)[1]
			Expect(got[0]).To(Equal(uint64(gpFault)), "write of bit %d", width)
			Expect(got[1]).To(Equal(gateOK), "write of the full width")
		},
		entry(nil, 32), entry(nil, 40), entry(nil, 48),
	)
}

func widthEntries() []TableEntry {
	var out []TableEntry
	for _, w := range []int{32, 40, 48} {
		out = append(out,
			// −16 written the legacy way sign-extends to the full width.
			entry(nil, widthCase{w, false, func(uint64) uint64 { return 0xfffffff0 },
				func(uint64) uint64 { return 0 }, true}),
			// A positive legacy value crosses 2^31 only: no overflow.
			entry(nil, widthCase{w, false, func(uint64) uint64 { return 0x7ffffff0 },
				func(uint64) uint64 { return 0x80000000 }, false}),
		)
		if w > 32 {
			// 2^32 − 16 crosses 2^32 without overflowing a wider
			// counter (at 32 bits it is the next cell).
			out = append(out, entry(nil, widthCase{w, true, func(uint64) uint64 { return 1<<32 - 16 },
				func(uint64) uint64 { return 1 << 32 }, false}))
		}
		out = append(out,
			// 2^w − 16: overflows at the width.
			entry(nil, widthCase{w, true, func(m uint64) uint64 { return m - 15 },
				func(uint64) uint64 { return 0 }, true}),
		)
	}
	return out
}

// requireFullWidth skips unless IA32_PERF_CAPABILITIES offers IA32_A_PMCx.
func (r *rig) requireFullWidth() {
	GinkgoHelper()
	caps, err := r.g.VCPUs[0].GetMSR(hv.MSRPerfCapabilities)
	if err != nil || caps&hv.PerfCapFullWidthWrite == 0 {
		Skip(fmt.Sprintf("%s: no full-width counter writes (IA32_PERF_CAPABILITIES %#x, %v)", r.b.Name, caps, err))
	}
}

// The known loop of pmu_counters_test: 10 iterations of 4 instructions
// (the CLFLUSH slot is a NOP here) after one setup move.
const (
	loopIters    = 10
	loopInsts    = 1 + 4*loopIters
	loopBranches = loopIters
)

// knownLoop emits the loop; it uses ECX and EAX.
func (r *rig) knownLoop() {
	p := r.p
	p.Mov(asm.ECX, asm.Imm(loopIters))
	l := p.Here()
	p.Nop()
	p.Mfence()
	p.Mov(asm.EAX, asm.EBX)
	p.Loop(l)
}

// countCase is one exact-count spec.
type countCase struct {
	c     counter
	event uint64
	// exact is the count the loop gives, 0 when any non-zero count
	// passes (cycles: the kernel's tolerance).
	exact uint64
}

func countSpecs(b *framework.Backend, mode guest.Mode) {
	DescribeTable("counts over a known loop",
		func(ctx SpecContext, cc countCase) {
			r := newRig(b, mode, rigOpts{})
			r.requireCounter(cc.c)
			if !cc.c.fixed {
				r.requireEvent(cc.event)
			}
			r.program(cc.c, cc.event, false)
			r.write(hv.MSRPerfGlobalCtrl, cc.c.bit())
			r.measure(asm.R9, cc.c.rdpmc(), r.knownLoop)
			r.checkWrite()
			r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
			r.p.Sync(1, asm.R9)
			got := r.run(ctx)[1][0]
			if cc.exact == 0 {
				Expect(got).NotTo(BeZero(), "count over the loop")
				return
			}
			Expect(got).To(Equal(cc.exact), "count over the loop")
		},
		entry("instructions retired, GP counter", countCase{counter{}, hv.EventInstructions, loopInsts + windowCost}),
		entry("branches retired, GP counter", countCase{counter{idx: 1}, hv.EventBranches, loopBranches}),
		entry("core cycles, GP counter", countCase{counter{idx: 2}, hv.EventCoreCycles, 0}),
		entry("instructions retired, fixed counter 0", countCase{counter{fixed: true}, 0, loopInsts + windowCost}),
		entry("core cycles, fixed counter 1", countCase{counter{fixed: true, idx: 1}, 0, 0}),
		entry("reference cycles, fixed counter 2", countCase{counter{fixed: true, idx: 2}, 0, 0}),
	)

	It("PERF_GLOBAL_CTRL stops and restarts counting", func(ctx SpecContext) {
		r := newRig(b, mode, rigOpts{})
		r.program(counter{}, hv.EventInstructions, false)
		r.write(hv.MSRPerfGlobalCtrl, 1)
		r.measure(asm.R9, 0, func() { r.nops(20) })
		r.write(hv.MSRPerfGlobalCtrl, 0)
		r.measure(asm.R10, 0, func() { r.nops(20) })
		r.write(hv.MSRPerfGlobalCtrl, 1)
		r.measure(asm.R11, 0, func() { r.nops(20) })
		r.checkWrite()
		r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
		r.p.Sync(1, asm.R9, asm.R10, asm.R11)
		got := r.run(ctx)[1]
		Expect(got).To(Equal([]uint64{20 + windowCost, 0, 20 + windowCost}), "counts: running, stopped, restarted")
	}, SpecTimeout(specTimeout))

	It("a disabled counter keeps its value", func(ctx SpecContext) {
		r := newRig(b, mode, rigOpts{})
		const kept = 0x1234
		r.program(counter{}, hv.EventInstructions, false)
		r.wrmsr(hv.MSRPerfEvtSel0+1, hv.EventInstructions|r.ring()) // EN clear
		r.wrmsr(hv.MSRPMC0+1, kept)
		r.write(hv.MSRPerfGlobalCtrl, 3)
		r.measure(asm.R9, 1, func() { r.nops(20) })
		r.checkWrite()
		r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
		r.rdpmc(asm.R10, 1)
		r.rdmsr(asm.R11, hv.MSRPMC0+1)
		r.rdpmc(asm.RBX, 0)
		r.p.Sync(1, asm.R9, asm.R10, asm.R11, asm.RBX)
		got := r.run(ctx)[1]
		Expect(got[:3]).To(Equal([]uint64{0, kept, kept}), "disabled counter: growth, RDPMC, RDMSR")
		Expect(got[3]).NotTo(BeZero(), "the enabled counter beside it counted")
	}, SpecTimeout(specTimeout))

	It("USR and OS count by the ring across a ring switch", func(ctx SpecContext) {
		r := newRig(b, mode, rigOpts{})
		const k = 10
		r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
		r.wrmsr(hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelUSR|hv.EvtSelEN)
		r.wrmsr(hv.MSRPerfEvtSel0+1, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
		r.wrmsr(hv.MSRPerfEvtSel0+2, hv.EventInstructions|hv.EvtSelUSR|hv.EvtSelOS|hv.EvtSelEN)
		for i := 0; i < 3; i++ {
			r.wrmsr(hv.MSRPMC0+uint32(i), 0)
		}
		r.write(hv.MSRPerfGlobalCtrl, 7)
		r.nops(k)
		r.p.Int(ringVector) // to CPL0 and back
		r.write(hv.MSRPerfGlobalCtrl, 0)
		r.checkWrite()
		r.rdpmc(asm.R9, 0)
		r.rdpmc(asm.R10, 1)
		r.rdpmc(asm.R11, 2)
		r.p.Sync(1, asm.R9, asm.R10, asm.R11)
		got := r.run(ctx)[1]
		usr, os, both := got[0], got[1], got[2]
		Expect(both).To(Equal(usr+os), "USR|OS = USR + OS")
		if mode == guest.CPL3 {
			Expect(usr).To(Equal(uint64(k+1)+r.writeCost()), "USR: the CPL3 instructions (NOPs, INT n, the closing write)")
			Expect(os).NotTo(BeZero(), "OS: the handlers' CPL0 instructions")
		} else {
			Expect(usr).To(BeZero(), "USR with all code at CPL0")
			Expect(os).To(BeNumerically(">", uint64(k+1)+r.writeCost()), "OS: the test code and the handler")
		}
	}, SpecTimeout(specTimeout))
}

// requireEvent skips when CPUID reports event unavailable.
func (r *rig) requireEvent(event uint64) {
	GinkgoHelper()
	for i, e := range map[uint64]int{hv.EventCoreCycles: hv.PMUEventCoreCycles, hv.EventInstructions: hv.PMUEventInstructions,
		hv.EventBranches: hv.PMUEventBranches} {
		if i == event && (e >= r.pmu.EventsLen || r.pmu.Unavailable&(1<<e) != 0) {
			Skip(fmt.Sprintf("%s: CPUID reports event %#x unavailable (%v)", r.b.Name, event, r.pmu))
		}
	}
}
