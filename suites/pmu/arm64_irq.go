package pmu

// The PMU overflow interrupt on arm64, in the shape of kvm-unit-tests
// arm/pmu.c's overflow-interrupt test: the guest brings up its GICv3
// (a64guest.GICv3), enables the PMU PPI KVM_ARM_VCPU_PMU_V3_IRQ set, and
// counts overflows of a 32-bit-overflowing counter (PMCR_EL0.LP clear), a
// 64-bit one (LP set, FEAT_PMUv3p5) and the cycle counter. Its IRQ handler
// logs each INTID (the GIC helper) and the overflow status it found in
// PMOVSCLR_EL0, which it clears by writing those bits back: one interrupt
// per overflow, exactly, and none while PMINTENCLR_EL1 masks the counter.

import (
	"context"
	"math/bits"
	"strconv"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// a64Rig is what the IRQ specs share with the other arm64 specs.
type a64Rig struct {
	newPMU       func(pmuSetup) *pmuGuest
	run          func(context.Context, *pmuGuest, *a64guest.Program, func(*guest.Ucall) error)
	syncs        func(context.Context, *pmuGuest, *a64guest.Program) map[uint64][]uint64
	setReg       func(*a64guest.Program, a64.SysReg, uint64)
	swinc        func(*a64guest.Program, uint64, int)
	quiesce      func(*a64guest.Program)
	needCounters func(*pmuGuest, int)
}

const (
	// The handler's records of PMOVSCLR_EL0, one per interrupt, at the
	// user block's scratch area.
	a64OvsRecords = 64
	// How long the guest waits for an interrupt (on the virtual
	// counter: wall-clock time, however slowly a TCG host runs the
	// guest; an overflow counted by host perf events takes milliseconds
	// there), and the quiet window in which no other may come.
	a64IRQWait = 5 * time.Second
	a64Quiet   = 100 * time.Millisecond
)

var pmintenset = mustSys("PMINTENSET_EL1")

// a64PMUIRQBody records the overflow status the PMU interrupt finds in
// PMOVSCLR_EL0 (the interrupt's number in the log is its index) and
// clears it, which lowers the PMU's interrupt line.
func a64PMUIRQBody(p *a64guest.Program) {
	skip := p.NewLabel()
	p.Cmp(a64.X19, a64.Imm(a64PMUIRQ))
	p.Bcond(a64.NE, skip)
	p.Mrs(a64.X0, pmovsclr)
	p.Msr(pmovsclr, a64.X0)
	p.Isb()
	p.Ldr(a64.X1, a64.Ptr(a64.X28, a64guest.IRQCount))
	p.Sub(a64.X1, a64.X1, a64.Imm(1))
	p.Cmp(a64.X1, a64.Imm(a64OvsRecords))
	p.Bcond(a64.HS, skip)
	p.Add(a64.X2, a64.X28, a64.Imm(a64guest.UserScratch))
	p.Str(a64.X0, a64.Index(a64.X2, a64.X1, a64.ExtLSL, true))
	p.Bind(skip)
}

func a64IRQSpecs(r a64Rig) {
	// irqGuest is a PMU guest whose handler runs a64PMUIRQBody, and its
	// program after the GIC bring-up: the PMU PPI enabled, the PMU
	// quiesced, IRQs unmasked.
	irqGuest := func() (*pmuGuest, *a64guest.Program) {
		GinkgoHelper()
		g := r.newPMU(pmuSetup{n: -1, irq: a64PMUIRQBody})
		p := g.Program()
		g.gic.Init(p)
		g.gic.Enable(p, a64PMUIRQ, a64guest.Level)
		r.quiesce(p)
		p.MsrDAIFClr(2)
		return g, p
	}
	// count leaves the interrupt count in dst after the quiet window.
	count := func(g *pmuGuest, p *a64guest.Program, dst a64.Reg) {
		a64guest.SpinFor(p, a64Quiet)
		p.Ldr(dst, a64.Ptr(a64.X28, a64guest.IRQCount))
	}
	// waitCount waits for the n-th interrupt, then counts after the
	// quiet window.
	waitCount := func(g *pmuGuest, p *a64guest.Program, dst a64.Reg, n int64) {
		g.gic.WaitIRQs(p, dst, n, a64IRQWait)
		count(g, p, dst)
	}
	// interrupts checks the log after the run: every interrupt the PMU
	// PPI, none spurious, and the overflow status each one found.
	interrupts := func(g *pmuGuest, ovs ...uint64) {
		GinkgoHelper()
		intids, n, spurious, err := g.gic.IRQs(0)
		Expect(err).NotTo(HaveOccurred())
		want := make([]uint32, len(ovs))
		for i := range want {
			want[i] = a64PMUIRQ
		}
		AddReportEntry("INTIDs", intids)
		Expect(intids).To(Equal(want), "the INTIDs the guest acknowledged (%d in all)", n)
		Expect(spurious).To(BeZero(), "spurious acknowledges")
		var got []uint64
		for i := range ovs {
			v, err := g.VM.Load64(g.UserBlock(0) + a64guest.UserScratch + 8*uint64(i))
			Expect(err).NotTo(HaveOccurred())
			got = append(got, v)
		}
		Expect(got).To(Equal(ovs), "PMOVSCLR_EL0 in each interrupt")
	}

	It("a 32-bit counter overflow (PMCR_EL0.LP clear) raises the PMU PPI once per overflow, and PMOVSCLR_EL0 ends it", func(ctx SpecContext) {
		g, p := irqGuest()
		r.needCounters(g, 1)
		r.setReg(p, a64.PMEVTYPER(0), evSWIncr)
		r.setReg(p, a64.PMCR_EL0, pmcrE)
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_fffe)
		r.setReg(p, pmintenset, 1<<0)
		r.setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		r.swinc(p, 1, 1) // 0xffff_ffff: no overflow yet
		count(g, p, a64.X2)
		r.swinc(p, 1, 2) // wraps at 2^32
		waitCount(g, p, a64.X3, 1)
		p.Mrs(a64.X4, pmovsset)
		p.Mrs(a64.X5, a64.PMEVCNTR(0))
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_ffff)
		r.swinc(p, 1, 1) // the second overflow
		waitCount(g, p, a64.X6, 2)
		p.Sync(1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6)
		p.Done()
		got := r.syncs(ctx, g, p)[1]
		AddReportEntry("interrupts before, after the first overflow, PMOVSSET_EL0, counter, interrupts after the second", got)
		Expect(got[0]).To(BeZero(), "interrupts before the counter wrapped")
		Expect(got[1]).To(Equal(uint64(1)), "interrupts after the first overflow")
		Expect(got[2]).To(BeZero(), "PMOVSSET_EL0 after the handler wrote PMOVSCLR_EL0")
		Expect(got[3]&0xffff_ffff).To(Equal(uint64(1)), "counter bits 31:0 after 3 increments from 2^32-2")
		Expect(got[4]).To(Equal(uint64(2)), "interrupts after the second overflow")
		interrupts(g, 1<<0, 1<<0)
	}, SpecTimeout(a64SpecTimeout))

	It("a 64-bit counter (PMCR_EL0.LP set) raises the PMU PPI at 2^64 and not at 2^32", func(ctx SpecContext) {
		g, p := irqGuest()
		r.needCounters(g, 1)
		if g.pmuVer < pmuVerP5 {
			Skip("64-bit event counters need FEAT_PMUv3p5; the vCPU's ID_AA64DFR0_EL1.PMUVer is " + itoa(int(g.pmuVer)))
		}
		r.setReg(p, a64.PMEVTYPER(0), evSWIncr)
		r.setReg(p, a64.PMCR_EL0, pmcrE|pmcrLP)
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_fffe)
		r.setReg(p, pmintenset, 1<<0)
		r.setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		r.swinc(p, 1, 3) // past 2^32
		count(g, p, a64.X2)
		p.Mrs(a64.X3, a64.PMEVCNTR(0))
		p.Mrs(a64.X4, pmovsset)
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_ffff_ffff_fffe)
		r.swinc(p, 1, 3) // past 2^64
		waitCount(g, p, a64.X5, 1)
		p.Mrs(a64.X6, a64.PMEVCNTR(0))
		p.Sync(1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6)
		p.Done()
		got := r.syncs(ctx, g, p)[1]
		AddReportEntry("interrupts past 2^32, counter, PMOVSSET_EL0, interrupts past 2^64, counter", got)
		Expect(got[:3]).To(Equal([]uint64{0, 0x1_0000_0001, 0}), "interrupts, counter and PMOVSSET_EL0 after 3 increments from 2^32-2")
		Expect(got[3:]).To(Equal([]uint64{1, 1}), "interrupts and counter after 3 increments from 2^64-2")
		interrupts(g, 1<<0)
	}, SpecTimeout(a64SpecTimeout))

	It("PMINTENCLR_EL1 masks a counter's overflow interrupt, and PMINTENSET_EL1 raises the overflow still pending", func(ctx SpecContext) {
		g, p := irqGuest()
		r.needCounters(g, 1)
		r.setReg(p, a64.PMEVTYPER(0), evSWIncr)
		r.setReg(p, a64.PMCR_EL0, pmcrE)
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_ffff)
		r.setReg(p, pmintenset, 1<<0)
		r.setReg(p, pmintenclr, 1<<0)
		r.setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		r.swinc(p, 1, 1) // overflows, masked
		count(g, p, a64.X2)
		p.Mrs(a64.X3, pmovsset)
		p.Mrs(a64.X4, pmintenset)
		r.setReg(p, pmintenset, 1<<0)
		waitCount(g, p, a64.X5, 1)
		p.Mrs(a64.X6, pmovsset)
		p.Sync(1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6)
		p.Done()
		got := r.syncs(ctx, g, p)[1]
		AddReportEntry("interrupts masked, PMOVSSET_EL0, PMINTENSET_EL1, interrupts unmasked, PMOVSSET_EL0", got)
		Expect(got[0]).To(BeZero(), "interrupts while PMINTENCLR_EL1 masked the counter")
		Expect(got[1]).To(Equal(uint64(1)), "PMOVSSET_EL0: the masked overflow is recorded")
		Expect(got[2]).To(BeZero(), "PMINTENSET_EL1 after PMINTENCLR_EL1")
		Expect(got[3]).To(Equal(uint64(1)), "interrupts once PMINTENSET_EL1 enabled the overflowed counter")
		Expect(got[4]).To(BeZero(), "PMOVSSET_EL0 after the handler")
		interrupts(g, 1<<0)
	}, SpecTimeout(a64SpecTimeout))

	It("a cycle counter overflow (PMCR_EL0.LC set, at 2^64) raises the PMU PPI once", func(ctx SpecContext) {
		g, p := irqGuest()
		r.setReg(p, a64.PMCR_EL0, pmcrE|pmcrLC)
		r.setReg(p, a64.PMCCNTR_EL0, ^uint64(0)-49999) // 2^64 - 50000
		r.setReg(p, pmintenset, 1<<31)
		r.setReg(p, a64.PMCNTENSET_EL0, 1<<31)
		waitCount(g, p, a64.X2, 1)
		p.Mrs(a64.X3, a64.PMCCNTR_EL0)
		p.Mrs(a64.X4, pmovsset)
		p.Sync(1, a64.X2, a64.X3, a64.X4)
		p.Done()
		got := r.syncs(ctx, g, p)[1]
		AddReportEntry("interrupts, PMCCNTR_EL0, PMOVSSET_EL0", got)
		Expect(got[0]).To(Equal(uint64(1)), "interrupts from the cycle counter started 50000 below 2^64")
		Expect(got[1]).To(BeNumerically("<", uint64(1)<<32), "PMCCNTR_EL0 wrapped past 2^64")
		Expect(got[2]).To(BeZero(), "PMOVSSET_EL0 after the handler")
		interrupts(g, 1<<31)
	}, SpecTimeout(a64SpecTimeout))

	// A CHAIN counter (kvm-unit-tests' overflow-interrupt with a chained
	// pair): with PMCR_EL0.LP clear the even counter's wrap increments
	// the odd one, which wraps too, and both overflow bits interrupt,
	// each exactly once; with LP set (FEAT_PMUv3p5) CHAIN does not count
	// and only the even counter overflows, at 2^64.
	for _, lp := range []bool{false, true} {
		name := "a CHAIN counter wrapping with the even counter below it (PMCR_EL0.LP clear) interrupts for both, once each"
		pmcr, start, odd := uint64(pmcrE), uint64(0xffff_ffff), uint64(0xffff_ffff)
		wantOvs, wantOdd := uint64(0b11), uint64(0)
		if lp {
			name = "a CHAIN counter does not count with PMCR_EL0.LP set: only the even counter's overflow at 2^64 interrupts"
			pmcr, start, odd = pmcrE|pmcrLP, ^uint64(0), 7
			wantOvs, wantOdd = 0b01, 7
		}
		It(name, func(ctx SpecContext) {
			g, p := irqGuest()
			r.needCounters(g, 2)
			if lp && g.pmuVer < pmuVerP5 {
				Skip("PMCR_EL0.LP needs FEAT_PMUv3p5; the vCPU's ID_AA64DFR0_EL1.PMUVer is " + itoa(int(g.pmuVer)))
			}
			r.setReg(p, a64.PMEVTYPER(0), evSWIncr)
			r.setReg(p, a64.PMEVTYPER(1), evChain)
			r.setReg(p, a64.PMCR_EL0, pmcr)
			r.setReg(p, a64.PMEVCNTR(0), start)
			r.setReg(p, a64.PMEVCNTR(1), odd)
			r.setReg(p, pmintenset, 0b11)
			r.setReg(p, a64.PMCNTENSET_EL0, 0b11)
			r.swinc(p, 1, 1)
			waitCount(g, p, a64.X2, 1)
			p.Mrs(a64.X3, a64.PMEVCNTR(1))
			p.Mrs(a64.X4, pmovsset)
			p.Sync(1, a64.X2, a64.X3, a64.X4)
			p.Done()
			got := r.syncs(ctx, g, p)[1]
			AddReportEntry("interrupts, counter 1 (CHAIN), PMOVSSET_EL0", got)
			oddMask := ^uint64(0)
			if !lp {
				oddMask = 0xffff_ffff // bits 63:32 exist (and count on) with PMUv3p5 only
			}
			Expect(got[1]&oddMask).To(Equal(wantOdd), "the CHAIN counter after the even counter's overflow (%#x)", got[1])
			Expect(got[2]).To(BeZero(), "PMOVSSET_EL0 after the handler")
			// The bits may come in one interrupt or two; each exactly once.
			n := got[0]
			Expect(n).To(And(BeNumerically(">=", 1), BeNumerically("<=", 2)), "interrupts")
			var all, found uint64
			for i := range n {
				v, err := g.VM.Load64(g.UserBlock(0) + a64guest.UserScratch + 8*i)
				Expect(err).NotTo(HaveOccurred())
				all |= v
				found += uint64(popcount(v))
			}
			Expect(all).To(Equal(wantOvs), "the overflow bits the interrupts found")
			Expect(found).To(Equal(uint64(popcount(wantOvs))), "each overflow bit in exactly one interrupt")
			intids, _, spurious, err := g.gic.IRQs(0)
			Expect(err).NotTo(HaveOccurred())
			Expect(spurious).To(BeZero())
			for _, id := range intids {
				Expect(id).To(Equal(uint32(a64PMUIRQ)), "INTIDs %v", intids)
			}
		}, SpecTimeout(a64SpecTimeout))
	}

	// KVM counts CPU_CYCLES (event counters and the cycle counter) with
	// host perf events whose period is the distance to the overflow; a
	// 64-bit counter with 32-bit overflow must get the distance to the
	// next 2^32 boundary whatever its upper half holds (KVM commit
	// 58ff6569bc6e, "Fix period computation for 64bit counters with
	// 32bit overflow": the interrupt came 2^64 events late). Each
	// counter starts 0x10000 cycles below a boundary with bits 63:32 set.
	const perfStart = 0x0101_0101_ffff_0000
	perfCases := []struct {
		name    string
		counter a64.SysReg
		bit     uint64 // PMOVS/PMINTEN/PMCNTEN bit
		pmcr    uint64
		start   uint64
		wrapped uint64 // bits 63:32 after the overflow (0: not checked)
		needP5  bool
	}{
		{"a CPU_CYCLES event counter with 32-bit overflow (PMCR_EL0.LP clear) interrupts at the next 2^32 boundary, its bits 63:32 set",
			a64.PMEVCNTR(0), 1 << 0, pmcrE, perfStart, 0x0101_0102, false},
		{"a CPU_CYCLES event counter with 64-bit overflow (PMCR_EL0.LP set) interrupts at 2^64",
			a64.PMEVCNTR(0), 1 << 0, pmcrE | pmcrLP, ^uint64(0) - 0xffff, 0, true},
		{"the cycle counter with 32-bit overflow (PMCR_EL0.LC clear) interrupts at the next 2^32 boundary, its bits 63:32 set",
			a64.PMCCNTR_EL0, 1 << 31, pmcrE, perfStart, 0x0101_0102, false},
	}
	for _, c := range perfCases {
		It(c.name, func(ctx SpecContext) {
			g, p := irqGuest()
			if c.bit != 1<<31 {
				r.needCounters(g, 1)
				r.setReg(p, a64.PMEVTYPER(0), evCPUCycles)
			}
			if c.needP5 && g.pmuVer < pmuVerP5 {
				Skip("64-bit event counters need FEAT_PMUv3p5; the vCPU's ID_AA64DFR0_EL1.PMUVer is " + itoa(int(g.pmuVer)))
			}
			r.setReg(p, a64.PMCR_EL0, c.pmcr)
			p.Mrs(a64.X5, a64.PMCR_EL0)
			r.setReg(p, c.counter, c.start)
			p.Mrs(a64.X6, c.counter) // what the counter kept of the start value
			r.setReg(p, pmintenset, c.bit)
			r.setReg(p, a64.PMCNTENSET_EL0, c.bit)
			waitCount(g, p, a64.X2, 1)
			r.setReg(p, pmcntenclr, c.bit)
			p.Mrs(a64.X3, c.counter)
			p.Mrs(a64.X4, pmovsset)
			p.Sync(1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6)
			p.Done()
			got := r.syncs(ctx, g, p)[1]
			AddReportEntry("interrupts, counter, PMOVSSET_EL0, PMCR_EL0, counter at the start", got)
			if c.pmcr&pmcrLC == 0 && got[3]&pmcrLC != 0 && c.bit == 1<<31 {
				Skip("PMCR_EL0.LC is RES1 on this vCPU (PMCR_EL0 " + strconv.FormatUint(got[3], 16) + ")")
			}
			Expect(got[0]).To(Equal(uint64(1)), "interrupts from the counter started 0x10000 cycles below its overflow")
			Expect(got[2]).To(BeZero(), "PMOVSSET_EL0 after the handler")
			Expect(got[1]&0xffff_ffff).To(BeNumerically("<", uint64(1)<<31), "the counter's bits 31:0 wrapped")
			if c.wrapped != 0 && got[4] == c.start {
				// The counter kept bits 63:32 (a 64-bit counter): they
				// count on through the 32-bit overflow.
				Expect(got[1]>>32).To(Equal(c.wrapped), "bits 63:32 after the 32-bit overflow, counter %#x", got[1])
			}
			interrupts(g, c.bit)
		}, SpecTimeout(a64SpecTimeout))
	}
}

func popcount(v uint64) int { return bits.OnesCount64(v) }
