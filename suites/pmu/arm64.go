package pmu

// The pmu area's arm64 specs, in the shape of the kernel's
// arm64/vpmu_counter_access selftest and kvm-unit-tests arm/pmu.c: a vCPU
// with the PMUv3 feature, its overflow PPI and INIT set after the vGICv3
// exists, and guest code at EL1 that checks what the host set
// (PMCR_EL0.N), reaches every implemented event counter by both accessors
// and finds the unimplemented ones UNDEFINED, checks the set/clear bitmap
// registers hold bits of implemented counters only, and counts software
// increments (SW_INCR, exact) across the 32- and 64-bit overflow
// boundaries PMCR_EL0.LP selects and into a CHAIN counter. The event
// filter (KVM_ARM_VCPU_PMU_V3_FILTER) hides a denied event in PMCEID0_EL0
// and keeps its counter at zero. CPU_CYCLES is the counting event: QEMU
// TCG hosts count it but not INST_RETIRED.

import (
	"context"
	"strconv"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.RegisterArch(taxonomy.PMU, hv.ArchARM64, arm64Specs) }

const (
	a64SpecTimeout = 90 * time.Second
	// The vGICv3 (distributor, redistributors) outside slot 0, where the
	// virt board has them, and the PMU overflow PPI it uses.
	a64GICD   = 0x0800_0000
	a64GICR   = 0x080a_0000
	a64PMUIRQ = 23

	// PMCR_EL0 fields.
	pmcrE      = 1 << 0
	pmcrP      = 1 << 1
	pmcrC      = 1 << 2
	pmcrLC     = 1 << 6
	pmcrLP     = 1 << 7
	pmcrNShift = 11
	pmcrNMask  = 0x1f

	// Events and PMEVTYPER<n>_EL0 filter bits.
	evSWIncr     = 0x00
	evInstRet    = 0x08
	evCPUCycles  = 0x11
	evChain      = 0x1e
	evExcludeEL1 = 1 << 31
	evExcludeEL0 = 1 << 30

	a64MaxCounters = 31 // PMEVCNTR0..30_EL0; bit 31 is the cycle counter
	pmuVerP5       = 6  // ID_AA64DFR0_EL1.PMUVer of FEAT_PMUv3p5 (64-bit event counters)
)

var (
	a64PMCR    = hv.ARM64SysReg(3, 3, 9, 12, 0)
	a64DFR0    = hv.ARM64SysReg(3, 0, 0, 5, 0)
	pmsel, _   = a64.Sys("PMSELR_EL0")
	pmxcnt, _  = a64.Sys("PMXEVCNTR_EL0")
	pmxtyp, _  = a64.Sys("PMXEVTYPER_EL0")
	pmswinc    = mustSys("PMSWINC_EL0")
	pmceid0    = mustSys("PMCEID0_EL0")
	dfr0       = mustSys("ID_AA64DFR0_EL1")
	pmovsclr   = mustSys("PMOVSCLR_EL0")
	pmovsset   = mustSys("PMOVSSET_EL0")
	pmcntenclr = mustSys("PMCNTENCLR_EL0")
	pmintenclr = mustSys("PMINTENCLR_EL1")
	// The three set/clear bitmap pairs.
	a64Bitmaps = []struct{ name, set, clr string }{
		{"PMCNTENSET_EL0/PMCNTENCLR_EL0", "PMCNTENSET_EL0", "PMCNTENCLR_EL0"},
		{"PMINTENSET_EL1/PMINTENCLR_EL1", "PMINTENSET_EL1", "PMINTENCLR_EL1"},
		{"PMOVSSET_EL0/PMOVSCLR_EL0", "PMOVSSET_EL0", "PMOVSCLR_EL0"},
	}
)

func mustSys(name string) a64.SysReg {
	r, ok := a64.Sys(name)
	if !ok {
		panic("pmu: no system register " + name)
	}
	return r
}

// a64Valid is the mask of implemented counters with n event counters:
// bits 0..n-1 and the cycle counter's bit 31.
func a64Valid(n int) uint64 { return 1<<n - 1 | 1<<31 }

// pmuGuest is a one-vCPU arm64 guest with a PMUv3 set up.
type pmuGuest struct {
	*a64guest.Guest
	vcpu   hv.ARM64VCPU
	gic    *a64guest.GICv3
	hostN  int    // PMCR_EL0.N KVM gave the vCPU
	n      int    // PMCR_EL0.N the guest gets
	pmuVer uint64 // the guest's ID_AA64DFR0_EL1.PMUVer
}

// pmuSetup is how a spec wants the PMU: n < 0 keeps KVM's PMCR_EL0.N,
// else the host writes n to it (KVM_SET_ONE_REG) before the first run.
type pmuSetup struct {
	n       int
	filters []hv.ARM64PMUFilter
	irq     a64guest.IRQBody // run by the guest's IRQ handler (nil: log only)
}

func arm64Specs(b *framework.Backend) {
	newPMU := func(s pmuSetup) *pmuGuest {
		GinkgoHelper()
		b.Require(hv.CapARM64PMU)
		b.Require(hv.CapVGICv3)
		g := b.NewARM64Guest(a64guest.Config{Features: hv.ARM64VCPUFeatures{PMUv3: true}})
		v, ok := g.VCPUs[0].(hv.ARM64VCPU)
		Expect(ok).To(BeTrue(), "%s vCPUs have no arm64 PMU controls", b.Name)
		for _, f := range s.filters {
			Expect(v.SetPMUFilter(f)).To(Succeed())
		}
		gic, err := g.NewGICv3(a64GICD, a64GICR, 0, s.irq)
		Expect(err).NotTo(HaveOccurred())
		Expect(v.SetPMUIRQ(a64PMUIRQ)).To(Succeed())
		Expect(v.InitPMU()).To(Succeed())
		pmcr, err := v.GetOneReg(a64PMCR)
		Expect(err).NotTo(HaveOccurred())
		pg := &pmuGuest{Guest: g, vcpu: v, gic: gic, hostN: int(pmcr >> pmcrNShift & pmcrNMask)}
		pg.n = pg.hostN
		if s.n >= 0 {
			Expect(v.SetOneReg(a64PMCR, pmcr&^(pmcrNMask<<pmcrNShift)|uint64(s.n)<<pmcrNShift)).To(Succeed())
			got, err := v.GetOneReg(a64PMCR)
			Expect(err).NotTo(HaveOccurred())
			pg.n = int(got >> pmcrNShift & pmcrNMask)
		}
		d, err := v.GetOneReg(a64DFR0)
		Expect(err).NotTo(HaveOccurred())
		pg.pmuVer = d >> 8 & 0xf
		return pg
	}
	// run loads p and runs it to DONE, handing each SYNC to onSync.
	run := func(ctx context.Context, g *pmuGuest, p *a64guest.Program, onSync func(*guest.Ucall) error) {
		GinkgoHelper()
		Expect(g.Load(p)).To(Succeed())
		Expect(g.RunUntilDone(ctx, 0, onSync)).To(Succeed())
	}
	// syncs collects the SYNC arguments (without the stage) by stage.
	syncs := func(ctx context.Context, g *pmuGuest, p *a64guest.Program) map[uint64][]uint64 {
		GinkgoHelper()
		got := map[uint64][]uint64{}
		run(ctx, g, p, func(u *guest.Ucall) error {
			got[u.Args[0]] = append([]uint64(nil), u.Args[1:]...)
			return nil
		})
		return got
	}
	// readN leaves PMCR_EL0.N in X0.
	readN := func(p *a64guest.Program) {
		p.Mrs(a64.X0, a64.PMCR_EL0)
		p.Lsr(a64.X0, a64.X0, a64.Imm(pmcrNShift))
		p.And(a64.X0, a64.X0, a64.Imm(pmcrNMask))
	}
	// wantUndef runs access, which must take an UNDEFINED exception (EC
	// 0, unknown reason), and continues after it.
	wantUndef := func(p *a64guest.Program, what string, access func()) {
		fix := p.NewLabel()
		p.ExpectException(fix)
		access()
		p.Str(a64.XZR, a64.Ptr(a64.X28, a64guest.ExcFixup))
		p.Fail(what + ": no exception")
		p.Bind(fix)
		p.Ldr(a64.X9, a64.Ptr(a64.X28, a64guest.ExcESR))
		p.Lsr(a64.X9, a64.X9, a64.Imm(a64guest.ESRECShift))
		p.AssertEq(a64.X9, a64.Imm(a64guest.ECUnknown), what+": exception class, want 0 (UNDEFINED)")
	}
	// eq asserts that register r holds v.
	eq := func(p *a64guest.Program, r a64.Reg, v uint64, msg string) {
		p.Mov(a64.X15, a64.Imm(int64(v)))
		p.AssertEq(r, a64.X15, msg)
	}
	// setReg writes v to s.
	setReg := func(p *a64guest.Program, s a64.SysReg, v uint64) {
		p.Mov(a64.X14, a64.Imm(int64(v)))
		p.Msr(s, a64.X14)
		p.Isb()
	}
	// swinc writes mask to PMSWINC_EL0 k times.
	swinc := func(p *a64guest.Program, mask uint64, k int) {
		p.Mov(a64.X14, a64.Imm(int64(mask)))
		for range k {
			p.Msr(pmswinc, a64.X14)
		}
		p.Isb()
	}
	// quiesce disables every counter and clears their interrupt enables
	// and overflow flags: all three are UNKNOWN after reset (KVM fills
	// them with a pattern), so a spec that counts starts here.
	quiesce := func(p *a64guest.Program) {
		setReg(p, pmcntenclr, ^uint64(0))
		setReg(p, pmintenclr, ^uint64(0))
		setReg(p, pmovsclr, ^uint64(0))
	}
	// spin runs a loop of k iterations (X13).
	spin := func(p *a64guest.Program, k int64) {
		p.Mov(a64.X13, a64.Imm(k))
		loop := p.Here()
		p.Subs(a64.X13, a64.X13, a64.Imm(1))
		p.Bcond(a64.NE, loop)
		p.Isb()
	}
	needCounters := func(g *pmuGuest, k int) {
		GinkgoHelper()
		if g.n < k {
			Skip("the vCPU's PMU has " + itoa(g.n) + " event counters, the spec needs " + itoa(k))
		}
	}

	It("the guest reads the host's PMCR_EL0.N and ID_AA64DFR0_EL1 reports a PMUv3", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		p := g.Program()
		readN(p)
		p.Mrs(a64.X1, dfr0)
		p.Lsr(a64.X1, a64.X1, a64.Imm(8))
		p.And(a64.X1, a64.X1, a64.Imm(0xf))
		p.Sync(1, a64.X0, a64.X1)
		p.Done()
		got := syncs(ctx, g, p)[1]
		AddReportEntry("PMCR_EL0.N, PMUVer", got)
		Expect(got[0]).To(Equal(uint64(g.hostN)), "guest PMCR_EL0.N")
		Expect(got[0]).To(BeNumerically("<=", a64MaxCounters))
		Expect(got[1]).To(And(BeNumerically(">=", 1), BeNumerically("<", 0xf)), "PMUVer: PMUv3, not IMPLEMENTATION DEFINED")
		Expect(got[1]).To(Equal(g.pmuVer), "the guest's PMUVer is the ONE_REG one")
	}, SpecTimeout(a64SpecTimeout))

	It("a smaller PMCR_EL0.N the host sets is the one the guest reads", func(ctx SpecContext) {
		probe := newPMU(pmuSetup{n: -1})
		if probe.hostN == 0 {
			Skip("the host PMU has no event counters")
		}
		for _, n := range []int{0, probe.hostN / 2, probe.hostN - 1} {
			g := newPMU(pmuSetup{n: n})
			Expect(g.n).To(Equal(n), "PMCR_EL0.N read back by ONE_REG")
			p := g.Program()
			readN(p)
			p.Sync(1, a64.X0)
			p.Done()
			Expect(syncs(ctx, g, p)[1][0]).To(Equal(uint64(n)), "guest PMCR_EL0.N after the host set %d", n)
		}
	}, SpecTimeout(a64SpecTimeout))

	It("a PMCR_EL0.N above the host's is ignored", func(ctx SpecContext) {
		probe := newPMU(pmuSetup{n: -1})
		if probe.hostN == a64MaxCounters {
			Skip("the host PMU has every counter (N=31)")
		}
		g := newPMU(pmuSetup{n: probe.hostN + 1})
		Expect(g.n).To(Equal(probe.hostN), "PMCR_EL0.N read back by ONE_REG after writing N+1")
		p := g.Program()
		readN(p)
		p.Sync(1, a64.X0)
		p.Done()
		Expect(syncs(ctx, g, p)[1][0]).To(Equal(uint64(probe.hostN)), "guest PMCR_EL0.N")
	}, SpecTimeout(a64SpecTimeout))

	It("every implemented counter is written and read back through PMEVCNTR<n>_EL0", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		for n := range g.n {
			setReg(p, a64.PMEVCNTR(n), uint64(n)+0x12345)
		}
		for n := range g.n {
			p.Mrs(a64.X2, a64.PMEVCNTR(n))
			eq(p, a64.X2, uint64(n)+0x12345, "PMEVCNTR"+itoa(n)+"_EL0")
		}
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	It("every implemented counter is reached through PMSELR_EL0 and PMXEVCNTR_EL0", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		// Indirect write, direct read; then direct write, indirect read.
		for n := range g.n {
			setReg(p, pmsel, uint64(n))
			setReg(p, pmxcnt, uint64(n)+0x54321)
		}
		for n := range g.n {
			p.Mrs(a64.X2, a64.PMEVCNTR(n))
			eq(p, a64.X2, uint64(n)+0x54321, "PMEVCNTR"+itoa(n)+"_EL0 after the PMXEVCNTR_EL0 write")
			setReg(p, a64.PMEVCNTR(n), uint64(n)+0x777)
		}
		for n := range g.n {
			setReg(p, pmsel, uint64(n))
			p.Mrs(a64.X2, pmxcnt)
			eq(p, a64.X2, uint64(n)+0x777, "PMXEVCNTR_EL0 with PMSELR_EL0="+itoa(n))
		}
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	It("every implemented counter's event type is written and read directly and through PMXEVTYPER_EL0", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		for n := range g.n {
			setReg(p, a64.PMEVTYPER(n), evExcludeEL1|evInstRet)
		}
		for n := range g.n {
			setReg(p, pmsel, uint64(n))
			p.Mrs(a64.X2, pmxtyp)
			eq(p, a64.X2, evExcludeEL1|evInstRet, "PMXEVTYPER_EL0 with PMSELR_EL0="+itoa(n))
			setReg(p, pmxtyp, evExcludeEL0|evCPUCycles)
			p.Mrs(a64.X2, a64.PMEVTYPER(n))
			eq(p, a64.X2, evExcludeEL0|evCPUCycles, "PMEVTYPER"+itoa(n)+"_EL0 after the PMXEVTYPER_EL0 write")
		}
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	It("PMCR_EL0.P zeroes every event counter and PMCR_EL0.C the cycle counter", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		for n := range g.n {
			setReg(p, a64.PMEVCNTR(n), uint64(n)+0x1000)
		}
		setReg(p, a64.PMCCNTR_EL0, 0xabcdef)
		setReg(p, a64.PMCR_EL0, pmcrP)
		for n := range g.n {
			p.Mrs(a64.X2, a64.PMEVCNTR(n))
			eq(p, a64.X2, 0, "PMEVCNTR"+itoa(n)+"_EL0 after PMCR_EL0.P")
		}
		p.Mrs(a64.X2, a64.PMCCNTR_EL0)
		eq(p, a64.X2, 0xabcdef, "PMCCNTR_EL0 after PMCR_EL0.P (P leaves the cycle counter)")
		setReg(p, a64.PMCR_EL0, pmcrC)
		p.Mrs(a64.X2, a64.PMCCNTR_EL0)
		eq(p, a64.X2, 0, "PMCCNTR_EL0 after PMCR_EL0.C")
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	// unimplemented gives a guest whose counters N..30 do not exist (the
	// host lowers N when the PMU has all 31).
	unimplemented := func() *pmuGuest {
		GinkgoHelper()
		probe := newPMU(pmuSetup{n: -1})
		if probe.hostN < a64MaxCounters {
			return probe
		}
		return newPMU(pmuSetup{n: a64MaxCounters - 1})
	}

	It("unimplemented counters are UNDEFINED through PMEVCNTR<n>_EL0 and PMEVTYPER<n>_EL0", func(ctx SpecContext) {
		g := unimplemented()
		p := g.Program()
		for n := g.n; n < a64MaxCounters; n++ {
			wantUndef(p, "MRS PMEVCNTR"+itoa(n)+"_EL0", func() { p.Mrs(a64.X2, a64.PMEVCNTR(n)) })
			wantUndef(p, "MSR PMEVCNTR"+itoa(n)+"_EL0", func() { p.Msr(a64.PMEVCNTR(n), a64.XZR) })
			wantUndef(p, "MRS PMEVTYPER"+itoa(n)+"_EL0", func() { p.Mrs(a64.X2, a64.PMEVTYPER(n)) })
			wantUndef(p, "MSR PMEVTYPER"+itoa(n)+"_EL0", func() { p.Msr(a64.PMEVTYPER(n), a64.XZR) })
		}
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	It("unimplemented counters are UNDEFINED through PMSELR_EL0 and PMXEVCNTR_EL0/PMXEVTYPER_EL0", func(ctx SpecContext) {
		g := unimplemented()
		p := g.Program()
		for n := g.n; n < a64MaxCounters; n++ {
			setReg(p, pmsel, uint64(n))
			wantUndef(p, "MRS PMXEVCNTR_EL0 with PMSELR_EL0="+itoa(n), func() { p.Mrs(a64.X2, pmxcnt) })
			wantUndef(p, "MSR PMXEVCNTR_EL0 with PMSELR_EL0="+itoa(n), func() { p.Msr(pmxcnt, a64.XZR) })
			wantUndef(p, "MRS PMXEVTYPER_EL0 with PMSELR_EL0="+itoa(n), func() { p.Mrs(a64.X2, pmxtyp) })
		}
		p.Done()
		run(ctx, g, p, nil)
	}, SpecTimeout(a64SpecTimeout))

	for _, bm := range a64Bitmaps {
		It(bm.name+" hold the bits of implemented counters only", func(ctx SpecContext) {
			g := newPMU(pmuSetup{n: -1})
			set, clr := mustSys(bm.set), mustSys(bm.clr)
			valid := a64Valid(g.n)
			p := g.Program()
			setReg(p, clr, ^uint64(0))
			p.Mrs(a64.X2, set)
			eq(p, a64.X2, 0, bm.set+" after all-ones to "+bm.clr)
			setReg(p, set, ^uint64(0))
			p.Mrs(a64.X2, set)
			p.Mrs(a64.X3, clr)
			p.Sync(1, a64.X2, a64.X3)
			for n := range g.n {
				setReg(p, clr, 1<<n)
				p.Mrs(a64.X2, set)
				eq(p, a64.X2, valid&^(1<<(n+1)-1), bm.set+" after clearing counters 0.."+itoa(n))
			}
			setReg(p, clr, ^uint64(0))
			p.Mrs(a64.X2, clr)
			eq(p, a64.X2, 0, bm.clr+" after all-ones to it")
			p.Done()
			got := syncs(ctx, g, p)[1]
			Expect(got[0]).To(Equal(valid), "%s after all-ones to it, N=%d", bm.set, g.n)
			Expect(got[1]).To(Equal(valid), "%s reads the same bits", bm.clr)
		}, SpecTimeout(a64SpecTimeout))
	}

	// The userspace side of the same registers (vpmu_counter_access's
	// validity test): KVM_SET_ONE_REG of all-ones to a set register keeps
	// the implemented bits only, to the clear register clears them, and
	// the guest reads what the host left.
	for _, bm := range a64Bitmaps {
		It("host ONE_REG writes to "+bm.name+" keep the bits of implemented counters only", func(ctx SpecContext) {
			g := newPMU(pmuSetup{n: -1})
			set, clr := mustSys(bm.set), mustSys(bm.clr)
			setID := hv.ARM64SysReg(set.Op0, set.Op1, set.CRn, set.CRm, set.Op2)
			clrID := hv.ARM64SysReg(clr.Op0, clr.Op1, clr.CRn, clr.CRm, clr.Op2)
			valid := a64Valid(g.n)
			get := func(id uint64) uint64 {
				GinkgoHelper()
				v, err := g.vcpu.GetOneReg(id)
				Expect(err).NotTo(HaveOccurred())
				return v
			}
			Expect(get(setID)&^valid).To(BeZero(), "%s at reset: no bits beyond the implemented counters (N=%d)", bm.set, g.n)
			Expect(g.vcpu.SetOneReg(clrID, ^uint64(0))).To(Succeed())
			Expect(get(setID)).To(BeZero(), "%s after all-ones to %s", bm.set, bm.clr)
			Expect(g.vcpu.SetOneReg(setID, ^uint64(0))).To(Succeed())
			Expect(get(setID)).To(Equal(valid), "%s after all-ones to it", bm.set)
			Expect(get(clrID)).To(Equal(valid), "%s reads the same bits", bm.clr)
			p := g.Program()
			p.Mrs(a64.X2, set)
			p.Mrs(a64.X3, clr)
			p.Sync(1, a64.X2, a64.X3)
			p.Done()
			Expect(syncs(ctx, g, p)[1]).To(Equal([]uint64{valid, valid}), "the guest's %s and %s", bm.set, bm.clr)
		}, SpecTimeout(a64SpecTimeout))
	}

	It("SW_INCR counts exactly the PMSWINC_EL0 writes to enabled counters while PMCR_EL0.E is set", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 2)
		p := g.Program()
		quiesce(p)
		setReg(p, a64.PMEVTYPER(0), evSWIncr)
		setReg(p, a64.PMEVTYPER(1), evSWIncr)
		setReg(p, a64.PMCR_EL0, pmcrP|pmcrE)
		setReg(p, a64.PMCNTENSET_EL0, 1<<0) // counter 1 stays disabled
		swinc(p, 0b11, 5)
		setReg(p, a64.PMCR_EL0, 0)
		swinc(p, 0b11, 2) // PMCR_EL0.E clear: no count
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, a64.PMEVCNTR(1))
		p.Sync(1, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)[1]
		Expect(got).To(Equal([]uint64{5, 0}), "counters 0 (enabled) and 1 (disabled) after 5 increments with E and 2 without")
	}, SpecTimeout(a64SpecTimeout))

	// overflow counts 3 software increments on counter 0 from start with
	// PMCR_EL0 pmcr and leaves the counter and PMOVSSET_EL0 at stage 1.
	overflow := func(p *a64guest.Program, pmcr, start uint64) {
		quiesce(p)
		setReg(p, a64.PMEVTYPER(0), evSWIncr)
		setReg(p, a64.PMCR_EL0, pmcr|pmcrE)
		setReg(p, a64.PMEVCNTR(0), start)
		setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		swinc(p, 1, 3)
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, pmovsset)
	}

	It("with PMCR_EL0.LP clear an event counter overflows at 2^32", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		overflow(p, 0, 0xffff_fffe)
		p.Sync(1, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)[1]
		AddReportEntry("counter, PMOVSSET_EL0", got)
		Expect(got[0]&0xffff_ffff).To(Equal(uint64(1)), "counter bits 31:0 after 3 increments from 2^32-2")
		if g.pmuVer < pmuVerP5 {
			Expect(got[0]).To(Equal(uint64(1)), "a 32-bit counter (PMUVer %d)", g.pmuVer)
		}
		Expect(got[1]).To(Equal(uint64(1)), "PMOVSSET_EL0: counter 0 overflowed")
	}, SpecTimeout(a64SpecTimeout))

	It("with PMCR_EL0.LP set an event counter overflows at 2^64, not 2^32", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		if g.pmuVer < pmuVerP5 {
			Skip("64-bit event counters need FEAT_PMUv3p5; the vCPU's ID_AA64DFR0_EL1.PMUVer is " + itoa(int(g.pmuVer)))
		}
		p := g.Program()
		overflow(p, pmcrLP, 0xffff_fffe)
		p.Sync(1, a64.X2, a64.X3)
		overflow(p, pmcrLP, 0xffff_ffff_ffff_fffe)
		p.Sync(2, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)
		Expect(got[1]).To(Equal([]uint64{0x1_0000_0001, 0}), "counter and PMOVSSET_EL0 after 3 increments from 2^32-2")
		Expect(got[2]).To(Equal([]uint64{1, 1}), "counter and PMOVSSET_EL0 after 3 increments from 2^64-2")
	}, SpecTimeout(a64SpecTimeout))

	It("a CHAIN counter counts the overflows of the even counter below it", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 2)
		p := g.Program()
		quiesce(p)
		setReg(p, a64.PMEVTYPER(0), evSWIncr)
		setReg(p, a64.PMEVTYPER(1), evChain)
		setReg(p, a64.PMCR_EL0, pmcrP|pmcrE)
		setReg(p, a64.PMEVCNTR(0), 0xffff_ffff)
		setReg(p, a64.PMCNTENSET_EL0, 0b11)
		swinc(p, 1, 1)
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, a64.PMEVCNTR(1))
		p.Mrs(a64.X4, pmovsset)
		p.Sync(1, a64.X2, a64.X3, a64.X4)
		swinc(p, 1, 1)
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, a64.PMEVCNTR(1))
		p.Sync(2, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)
		Expect(got[1][0]&0xffff_ffff).To(BeZero(), "counter 0 bits 31:0 after wrapping")
		Expect(got[1][1:]).To(Equal([]uint64{1, 1}), "counter 1 (CHAIN) and PMOVSSET_EL0 after counter 0 wrapped")
		Expect(got[2][0]&0xffff_ffff).To(Equal(uint64(1)), "counter 0 bits 31:0 one increment later")
		Expect(got[2][1]).To(Equal(uint64(1)), "counter 1 (CHAIN): no further overflow")
	}, SpecTimeout(a64SpecTimeout))

	// The cycle counter is 64 bits wide; PMCR_EL0.LC says whether its
	// overflow flag (PMOVSSET_EL0 bit 31) comes at 2^32 or at 2^64. The
	// guest starts it 50000 cycles below 2^32, spins past 2^32 and polls
	// the flag (the overflow reaches KVM through a host perf event).
	for _, lc := range []bool{false, true} {
		name := "with PMCR_EL0.LC clear the cycle counter overflows at 2^32"
		if lc {
			name = "with PMCR_EL0.LC set the cycle counter does not overflow at 2^32"
		}
		It(name, func(ctx SpecContext) {
			g := newPMU(pmuSetup{n: -1})
			pmcr := uint64(pmcrE)
			if lc {
				pmcr |= pmcrLC
			}
			p := g.Program()
			quiesce(p)
			setReg(p, a64.PMCR_EL0, pmcr)
			p.Mrs(a64.X4, a64.PMCR_EL0)
			setReg(p, a64.PMCCNTR_EL0, 1<<32-50000)
			setReg(p, a64.PMCNTENSET_EL0, 1<<31)
			p.Mov(a64.X5, a64.Imm(100)) // polls left
			seen := p.NewLabel()
			poll := p.Here()
			spin(p, 20000)
			p.Mrs(a64.X3, pmovsset)
			p.Tbnz(a64.X3, 31, seen)
			p.Subs(a64.X5, a64.X5, a64.Imm(1))
			p.Bcond(a64.NE, poll)
			p.Bind(seen)
			p.Mrs(a64.X2, a64.PMCCNTR_EL0)
			p.Sync(1, a64.X2, a64.X3, a64.X4)
			p.Done()
			got := syncs(ctx, g, p)[1]
			AddReportEntry("PMCCNTR_EL0, PMOVSSET_EL0, PMCR_EL0", got)
			if !lc && got[2]&pmcrLC != 0 {
				Skip("PMCR_EL0.LC is RES1 on this vCPU (PMCR_EL0 " + strconv.FormatUint(got[2], 16) + ")")
			}
			Expect(got[2]&pmcrLC != 0).To(Equal(lc), "PMCR_EL0.LC read back")
			Expect(got[0]).To(BeNumerically(">=", uint64(1)<<32), "PMCCNTR_EL0 is 64 bits wide and went past 2^32")
			Expect(got[1]>>31&1 == 1).To(Equal(!lc), "PMOVSSET_EL0 bit 31 (cycle counter overflow), PMOVSSET %#x", got[1])
		}, SpecTimeout(a64SpecTimeout))
	}

	// cycles counts CPU_CYCLES on counter 0 over a loop and leaves the
	// count in X2 and PMCEID0_EL0 in X3.
	cycles := func(p *a64guest.Program) {
		quiesce(p)
		setReg(p, a64.PMEVTYPER(0), evCPUCycles)
		setReg(p, a64.PMCR_EL0, pmcrP|pmcrE)
		setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		spin(p, 100000)
		setReg(p, pmcntenclr, 1<<0)
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, pmceid0)
	}

	It("CPU_CYCLES is a common event and its counter counts", func(ctx SpecContext) {
		g := newPMU(pmuSetup{n: -1})
		needCounters(g, 1)
		p := g.Program()
		cycles(p)
		p.Sync(1, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)[1]
		AddReportEntry("CPU_CYCLES count, PMCEID0_EL0", got)
		Expect(got[1]>>evCPUCycles&1).To(Equal(uint64(1)), "PMCEID0_EL0 bit 17 (CPU_CYCLES), PMCEID0 %#x", got[1])
		Expect(got[0]).NotTo(BeZero(), "CPU_CYCLES over 100000 loop iterations")
	}, SpecTimeout(a64SpecTimeout))

	It("an event filter denying CPU_CYCLES hides it from PMCEID0_EL0 and its counter stays zero", func(ctx SpecContext) {
		// The same guest without a filter: its PMCEID0_EL0 is the
		// reference the filtered one must equal but for bit 17.
		ref := newPMU(pmuSetup{n: -1})
		needCounters(ref, 1)
		p := ref.Program()
		p.Mrs(a64.X3, pmceid0)
		p.Sync(1, a64.X3)
		p.Done()
		all := syncs(ctx, ref, p)[1][0]
		if all>>evCPUCycles&1 == 0 {
			Skip("the vCPU's PMU does not offer CPU_CYCLES (PMCEID0_EL0 " + strconv.FormatUint(all, 16) + ")")
		}
		g := newPMU(pmuSetup{n: -1, filters: []hv.ARM64PMUFilter{{BaseEvent: evCPUCycles, NEvents: 1, Action: hv.PMUFilterDeny}}})
		p = g.Program()
		cycles(p)
		p.Sync(1, a64.X2, a64.X3)
		p.Done()
		got := syncs(ctx, g, p)[1]
		AddReportEntry("CPU_CYCLES count, PMCEID0_EL0 filtered, unfiltered", append(got, all))
		Expect(got[1]).To(Equal(all&^(1<<evCPUCycles)), "PMCEID0_EL0 with CPU_CYCLES denied: the unfiltered %#x without bit 17", all)
		Expect(got[0]).To(BeZero(), "the denied CPU_CYCLES counter over 100000 loop iterations")
	}, SpecTimeout(a64SpecTimeout))

	rig := a64Rig{newPMU: newPMU, run: run, syncs: syncs, setReg: setReg, swinc: swinc, quiesce: quiesce, needCounters: needCounters}
	a64IRQSpecs(rig)
	a64PMUVerSpecs(rig)
}

func itoa(n int) string { return strconv.Itoa(n) }
