package debug

// The debug area's arm64 specs: host-side guest debug of an arm64 guest
// (KVM_SET_GUEST_DEBUG with the arm64 registers): BRK to the host, single
// steps, and the host's hardware breakpoint and watchpoint, each stopping
// where the architecture says with the exception class KVM reports.

import (
	"context"
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

func init() { framework.RegisterArch(taxonomy.Debug, hv.ArchARM64, arm64Specs) }

const a64SpecTimeout = 60 * time.Second

// DBGBCR/DBGWCR values: an EL1 execute breakpoint (BAS all, PMC EL1,
// enabled) and an EL1 store watchpoint of 8 bytes (BAS 0xff, LSC store,
// PAC EL1, enabled).
const (
	a64BCRExecEL1  = 0xf<<5 | 1<<1 | 1
	a64WCRStoreEL1 = 0xff<<5 | 2<<3 | 1<<1 | 1
)

func arm64Specs(b *framework.Backend) {
	setDebug := func(g *a64guest.Guest, d *hv.ARM64GuestDebug) {
		GinkgoHelper()
		v, ok := g.VCPUs[0].(hv.ARM64VCPU)
		Expect(ok).To(BeTrue(), "%s vCPUs have no arm64 guest debug", b.Name)
		Expect(v.SetARM64GuestDebug(d)).To(Succeed())
	}
	// wantDebug runs to a debug exit of class ec at pc.
	wantDebug := func(ctx context.Context, g *a64guest.Guest, ec uint32, pc uint64) *hv.DebugExit {
		GinkgoHelper()
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		d, ok := ev.Exit.(*hv.DebugExit)
		Expect(ok).To(BeTrue(), "want a debug exit, got exit %v ucall %v", ev.Exit, ev.Ucall)
		Expect(a64guest.ECName(d.Exception)).To(Equal(a64guest.ECName(ec)), "%v", d)
		Expect(d.PC).To(Equal(pc), "pc of %v (%s)", d, g.Source(d.PC))
		return d
	}
	addr := func(p *a64guest.Program, l *a64.Label) uint64 {
		GinkgoHelper()
		a, ok := p.Addr(l)
		Expect(ok).To(BeTrue())
		return a
	}

	It("a brk exits to the host with use-swbp and resumes past it", taxonomy.Needs(hv.CapSoftwareBP), func(ctx SpecContext) {
		b.Require(hv.CapSoftwareBP)
		g := b.NewARM64Guest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(1))
		brk := p.Here()
		p.Brk(0x17)
		p.Add(a64.X5, a64.X5, a64.Imm(6))
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		setDebug(g, &hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseSWBP})
		d := wantDebug(ctx, g, a64guest.ECBRK64, addr(p, brk))
		Expect(d.ESR&0xffff).To(Equal(uint64(0x17)), "BRK's comment in the syndrome (%v)", d)
		setDebug(g, &hv.ARM64GuestDebug{})
		Expect(g.Reg(0).SetOneReg(a64guest.RegPC, addr(p, brk)+4)).To(Succeed())
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			Expect(u.Args[1]).To(Equal(uint64(7)), "X5 after the BRK")
			return nil
		})).To(Succeed())
	}, SpecTimeout(a64SpecTimeout))

	It("single-step stops after each instruction", taxonomy.Needs(hv.CapSoftwareBP), taxonomy.Needs(hv.CapSingleStep), func(ctx SpecContext) {
		b.Require(hv.CapSoftwareBP)
		b.Require(hv.CapSingleStep)
		g := b.NewARM64Guest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(0))
		p.Mov(a64.X6, a64.Imm(0))
		// The BRK stops the guest where stepping starts (the program
		// begins with the runtime's boot code).
		brk := p.Here()
		p.Brk(0)
		first := p.Here()
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		p.Add(a64.X6, a64.X5, a64.Imm(40))
		p.Sync(1, a64.X5, a64.X6)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		setDebug(g, &hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseSWBP})
		wantDebug(ctx, g, a64guest.ECBRK64, addr(p, brk))
		Expect(g.Reg(0).SetOneReg(a64guest.RegPC, addr(p, first))).To(Succeed())
		setDebug(g, &hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep})
		for i := uint64(1); i <= 3; i++ {
			// A step from EL1 is a software-step exception from a
			// lower EL as KVM (at EL2) takes it.
			wantDebug(ctx, g, a64guest.ECSoftStepLower, addr(p, first)+4*i)
			x5, err := g.Reg(0).GetOneReg(a64guest.RegX(5))
			Expect(err).NotTo(HaveOccurred())
			Expect(x5).To(Equal(min(i, 2)), "X5 after %d steps", i)
		}
		setDebug(g, &hv.ARM64GuestDebug{})
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			Expect(u.Args[1:]).To(Equal([]uint64{2, 42}))
			return nil
		})).To(Succeed())
	}, SpecTimeout(a64SpecTimeout))

	It("a hardware breakpoint stops before the instruction", taxonomy.Needs(hv.CapHWBreakpoint), func(ctx SpecContext) {
		b.Require(hv.CapHWBreakpoint)
		g := b.NewARM64Guest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(1))
		bp := p.Here()
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		d := hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP}
		d.BCR[0], d.BVR[0] = a64BCRExecEL1, addr(p, bp)
		setDebug(g, &d)
		wantDebug(ctx, g, a64guest.ECBreakptLower, addr(p, bp))
		x5, err := g.Reg(0).GetOneReg(a64guest.RegX(5))
		Expect(err).NotTo(HaveOccurred())
		Expect(x5).To(Equal(uint64(1)), "X5: the ADD has not run")
		setDebug(g, &hv.ARM64GuestDebug{})
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			Expect(u.Args[1]).To(Equal(uint64(2)), "X5 after the resumed ADD")
			return nil
		})).To(Succeed())
	}, SpecTimeout(a64SpecTimeout))

	It("a hardware watchpoint stops before the store with far", taxonomy.Needs(hv.CapWatchpoint), func(ctx SpecContext) {
		b.Require(hv.CapWatchpoint)
		g := b.NewARM64Guest(a64guest.Config{})
		buf, err := g.Alloc(64, 64)
		Expect(err).NotTo(HaveOccurred())
		p := g.Program()
		p.Mov(a64.X1, a64.Imm(int64(buf)))
		p.Mov(a64.X2, a64.Imm(0x55))
		st := p.Here()
		p.Str(a64.X2, a64.Ptr(a64.X1, 0))
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		d := hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP}
		d.WCR[0], d.WVR[0] = a64WCRStoreEL1, buf
		setDebug(g, &d)
		e := wantDebug(ctx, g, a64guest.ECWatchptLower, addr(p, st))
		Expect(e.FAR).To(Equal(buf), "FAR of %v", e)
		Expect(g.VM.Load64(buf)).To(BeZero(), "the store has not run")
		setDebug(g, &hv.ARM64GuestDebug{})
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
		Expect(g.VM.Load64(buf)).To(Equal(uint64(0x55)), "the resumed store")
	}, SpecTimeout(a64SpecTimeout))

	// The guest-internal debug specs (arm64_guest.go).
	arm64GuestSpecs(b)
}
