package debug

// The debug area's guest-internal arm64 specs, in the shape of the kernel
// selftests' arm64 debug-exceptions: the guest debugs itself at EL1 with
// its own vector table (an a64guest handler on the EL1t synchronous
// vector) — BRK and its comment, hardware breakpoints and watchpoints
// (MDSCR_EL1.MDE/KDE, the OS lock released, PSTATE.D cleared), software
// step (MDSCR_EL1.SS, SPSR.SS) over known instruction sequences, context-ID
// linked breakpoints and watchpoints, and every implemented breakpoint
// with every implemented watchpoint (counts from ID_AA64DFR0_EL1).

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Debug control bits and register fields (Arm ARM D19).
const (
	mdscrSS  = 1 << 0
	mdscrKDE = 1 << 13
	mdscrMDE = 1 << 15

	spsrD  = 1 << 9
	spsrSS = 1 << 21

	// ISS.IFSC/DFSC of breakpoint, watchpoint and step exceptions.
	fscDebug = 0x22
	issWnR   = 1 << 6

	// DBGBCR.BT: linked address match, linked context-ID match.
	bcrBTLinkedAddr = 0b0001 << 20
	bcrBTLinkedCtx  = 0b0011 << 20
	// DBGWCR.WT: linked watchpoint.
	wcrWT    = 1 << 20
	lbnShift = 16

	a64WCRLoadEL1 = 0xff<<5 | 1<<3 | 1<<1 | 1
)

// CONTEXTIDR_EL1 (the runtime's register table does not name it).
var contextIDR = a64.SysReg{Name: "CONTEXTIDR_EL1", Op0: 3, Op1: 0, CRn: 13, CRm: 0, Op2: 1}

// The guest handler's record: the number of debug exceptions taken, then
// logs of each one's ELR, ESR and FAR.
const (
	recCount  = 0
	recLogN   = 128
	recELR    = 8
	recESR    = recELR + 8*recLogN
	recFAR    = recESR + 8*recLogN
	recStop   = recFAR + 8*recLogN // the step handler masks debug at this ELR
	recSize   = recStop + 8
	dfr0BRPs  = 12
	dfr0WRPs  = 20
	dfr0CTX   = 28
	maxDbgReg = 16
	bpGroup   = 4
)

// dbgEvent is one exception the guest's handler logged.
type dbgEvent struct{ ELR, ESR, FAR uint64 }

func (e dbgEvent) EC() uint32 { return uint32(e.ESR>>a64guest.ESRECShift) & 0x3f }

func (e dbgEvent) String() string {
	return fmt.Sprintf("%s elr=%#x esr=%#x far=%#x", a64guest.ECName(e.EC()), e.ELR, e.ESR, e.FAR)
}

// dbgGuest is a guest whose EL1t synchronous vector logs every debug
// exception: a BRK resumes past it, a step keeps stepping (SPSR.SS) up
// to the stop address (then it masks debug exceptions), a
// breakpoint or watchpoint returns with debug exceptions masked (SPSR.D)
// so that the instruction completes; anything else fails the test.
type dbgGuest struct {
	*a64guest.Guest
	rec uint64
}

func newDbgGuest(b *framework.Backend) *dbgGuest {
	GinkgoHelper()
	g := b.NewARM64Guest(a64guest.Config{})
	rec, err := g.Alloc(recSize, 64)
	Expect(err).NotTo(HaveOccurred())
	err = g.Handle(a64guest.Handler{Vector: a64guest.VecSyncEL1t, Body: func(p *a64guest.Program, f a64guest.Frame) {
		noLog, brk, step, mask, done := p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel()
		p.Mov(a64.X9, a64.Imm(int64(rec)))
		p.Ldr(a64.X1, a64.Ptr(a64.X9, recCount))
		p.Ldr(a64.X2, f.ESR)
		p.Ldr(a64.X3, f.FAR)
		p.Ldr(a64.X4, f.ELR)
		p.Cmp(a64.X1, a64.Imm(recLogN))
		p.Bcond(a64.HS, noLog)
		p.Lsl(a64.X6, a64.X1, a64.Imm(3))
		p.Add(a64.X6, a64.X6, a64.X9)
		p.Str(a64.X4, a64.Ptr(a64.X6, recELR))
		p.Str(a64.X2, a64.Ptr(a64.X6, recESR))
		p.Str(a64.X3, a64.Ptr(a64.X6, recFAR))
		p.Bind(noLog)
		p.Add(a64.X1, a64.X1, a64.Imm(1))
		p.Str(a64.X1, a64.Ptr(a64.X9, recCount))
		p.Lsr(a64.X5, a64.X2, a64.Imm(a64guest.ESRECShift))
		p.And(a64.X5, a64.X5, a64.Imm(0x3f))
		p.Ldr(a64.X7, f.SPSR)
		p.Cmp(a64.X5, a64.Imm(a64guest.ECBRK64))
		p.Bcond(a64.EQ, brk)
		p.Cmp(a64.X5, a64.Imm(a64guest.ECSoftStepCurrent))
		p.Bcond(a64.EQ, step)
		p.Cmp(a64.X5, a64.Imm(a64guest.ECBreakptCurrent))
		p.Bcond(a64.EQ, mask)
		p.Cmp(a64.X5, a64.Imm(a64guest.ECWatchptCurrent))
		p.Bcond(a64.EQ, mask)
		p.Fail("unexpected exception in the debug handler", a64.X2, a64.X4, a64.X3)
		p.B(done)
		p.Bind(brk)
		p.Add(a64.X4, a64.X4, a64.Imm(4))
		p.Str(a64.X4, f.ELR)
		p.B(done)
		p.Bind(step)
		p.Ldr(a64.X8, a64.Ptr(a64.X9, recStop))
		p.Cmp(a64.X4, a64.X8)
		p.Bcond(a64.EQ, mask)
		p.Orr(a64.X7, a64.X7, a64.Imm(spsrSS))
		p.Str(a64.X7, f.SPSR)
		p.B(done)
		p.Bind(mask)
		p.Orr(a64.X7, a64.X7, a64.Imm(spsrD))
		p.Str(a64.X7, f.SPSR)
		p.Bind(done)
	}})
	Expect(err).NotTo(HaveOccurred())
	return &dbgGuest{Guest: g, rec: rec}
}

// events reads the handler's log.
func (g *dbgGuest) events() []dbgEvent {
	GinkgoHelper()
	n, err := g.VM.Load64(g.rec + recCount)
	Expect(err).NotTo(HaveOccurred())
	Expect(n).To(BeNumerically("<=", recLogN), "debug exceptions logged")
	out := make([]dbgEvent, n)
	for i := range out {
		o := 8 * uint64(i)
		var e dbgEvent
		for _, f := range []struct {
			v   *uint64
			off uint64
		}{{&e.ELR, recELR}, {&e.ESR, recESR}, {&e.FAR, recFAR}} {
			*f.v, err = g.VM.Load64(g.rec + f.off + o)
			Expect(err).NotTo(HaveOccurred())
		}
		out[i] = e
	}
	return out
}

// run runs the loaded program to Done, collecting its Sync values.
func (g *dbgGuest) run(ctx SpecContext) [][]uint64 {
	GinkgoHelper()
	var syncs [][]uint64
	Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
		syncs = append(syncs, append([]uint64(nil), u.Args...))
		return nil
	})).To(Succeed())
	return syncs
}

// enableDebug emits the selftests' reset-and-enable sequence: clear the
// breakpoint and watchpoint registers in use, release the OS lock, set
// MDSCR_EL1 and unmask debug exceptions.
func enableDebug(p *a64guest.Program, mdscr int64) {
	p.Msr(a64.OSLAR_EL1, a64.XZR)
	p.Mov(a64.X16, a64.Imm(mdscr))
	p.Msr(a64.MDSCR_EL1, a64.X16)
	p.Isb()
	p.MsrDAIFClr(8)
}

// disableDebug masks debug exceptions and clears MDSCR_EL1.
func disableDebug(p *a64guest.Program) {
	p.MsrDAIFSet(8)
	p.Msr(a64.MDSCR_EL1, a64.XZR)
	p.Isb()
}

func msrImm(p *a64guest.Program, r a64.SysReg, v uint64) {
	p.Mov(a64.X16, a64.Imm(int64(v)))
	p.Msr(r, a64.X16)
}

func msrLabel(p *a64guest.Program, r a64.SysReg, l *a64.Label) {
	p.Adr(a64.X16, l)
	p.Msr(r, a64.X16)
}

// startStep emits the switch to stepping: MDSCR_EL1.SS with KDE and
// debug exceptions unmasked. PSTATE.SS is 0, so the step is active-pending
// at once: the first step exception comes before any instruction steps,
// at the ISB or at the instruction after it (the MSR's effect needs the
// context synchronization, but may come sooner). It returns the ISB.
func startStep(p *a64guest.Program) *a64.Label {
	enableDebug(p, mdscrKDE)
	msrImm(p, a64.MDSCR_EL1, mdscrKDE|mdscrSS)
	isb := p.Here()
	p.Isb()
	return isb
}

// stepped checks the step exceptions logged: the first taken before any
// instruction stepped (ISS.ISV clear, at the ISB or after it), then one
// after each instruction (ISV set) at want's addresses, the last at stop.
func stepped(ev []dbgEvent, isb uint64, want []uint64) {
	GinkgoHelper()
	Expect(ev).NotTo(BeEmpty())
	first := ev[0]
	Expect(a64guest.ECName(first.EC())).To(Equal(a64guest.ECName(a64guest.ECSoftStepCurrent)), "%v", first)
	Expect(first.ESR&(1<<24)).To(BeZero(), "ISV of the first step, taken before any instruction stepped: %v", first)
	if first.ELR == isb {
		AddReportEntry("first step exception", "at the ISB: the MDSCR_EL1.SS write took effect before the context synchronization")
		ev = ev[1:]
	} else {
		Expect(first.ELR).To(Equal(want[0]), "the first step exception: at the ISB (%#x) or after it", isb)
		ev, want = ev[1:], want[1:]
	}
	got := make([]uint64, len(ev))
	for i, e := range ev {
		Expect(a64guest.ECName(e.EC())).To(Equal(a64guest.ECName(a64guest.ECSoftStepCurrent)), "%v", e)
		Expect(e.ESR&0x3f).To(Equal(uint64(fscDebug)), "FSC of %v", e)
		Expect(e.ESR&(1<<24)).NotTo(BeZero(), "ISV of a step after an instruction: %v", e)
		got[i] = e.ELR
	}
	Expect(got).To(Equal(want), "stepped pcs")
}

func arm64GuestSpecs(b *framework.Backend) {
	addr := func(p *a64guest.Program, l *a64.Label) uint64 {
		GinkgoHelper()
		a, ok := p.Addr(l)
		Expect(ok).To(BeTrue())
		return a
	}
	// wantEvent checks one logged exception's class, ELR and debug FSC.
	wantEvent := func(e dbgEvent, ec uint32, elr uint64) {
		GinkgoHelper()
		Expect(a64guest.ECName(e.EC())).To(Equal(a64guest.ECName(ec)), "%v", e)
		Expect(e.ELR).To(Equal(elr), "ELR of %v", e)
		if ec != a64guest.ECBRK64 {
			Expect(e.ESR&0x3f).To(Equal(uint64(fscDebug)), "FSC of %v", e)
		}
	}
	dfr0 := func(g *dbgGuest) (brps, wrps, ctx int) {
		GinkgoHelper()
		r, _ := a64.Sys("ID_AA64DFR0_EL1")
		v, err := g.Reg(0).GetOneReg(a64guest.RegSys(r))
		Expect(err).NotTo(HaveOccurred())
		return int(v>>dfr0BRPs&15) + 1, int(v>>dfr0WRPs&15) + 1, int(v>>dfr0CTX&15) + 1
	}

	It("guest brk traps to its own vector with the comment in the esr", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		imms := []uint16{0, 1, 0x7ff, 0x8000, 0xffff}
		var brks []*a64.Label
		p.Mov(a64.X5, a64.Imm(0))
		for _, imm := range imms {
			brks = append(brks, p.Here())
			p.Brk(imm)
			p.Add(a64.X5, a64.X5, a64.Imm(1))
		}
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		Expect(g.run(ctx)).To(Equal([][]uint64{{1, uint64(len(imms))}}), "every BRK resumed past itself")
		ev := g.events()
		Expect(ev).To(HaveLen(len(imms)))
		for i, imm := range imms {
			wantEvent(ev[i], a64guest.ECBRK64, addr(p, brks[i]))
			Expect(ev[i].ESR&0xffff).To(Equal(uint64(imm)), "comment of %v", ev[i])
			Expect(ev[i].ESR&(1<<25)).NotTo(BeZero(), "IL of %v", ev[i])
		}
	}, SpecTimeout(a64SpecTimeout))

	It("guest brk is taken with debug exceptions masked and mdscr clear", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		p.MsrDAIFSet(8)
		p.Msr(a64.MDSCR_EL1, a64.XZR)
		p.Isb()
		brk := p.Here()
		p.Brk(0x42)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		g.run(ctx)
		ev := g.events()
		Expect(ev).To(HaveLen(1))
		wantEvent(ev[0], a64guest.ECBRK64, addr(p, brk))
		Expect(ev[0].ESR & 0xffff).To(Equal(uint64(0x42)))
	}, SpecTimeout(a64SpecTimeout))

	It("guest hardware breakpoint is taken before the instruction at el1", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		bp := p.NewLabel()
		p.Mov(a64.X5, a64.Imm(1))
		msrLabel(p, a64.DBGBVR(0), bp)
		msrImm(p, a64.DBGBCR(0), a64BCRExecEL1)
		enableDebug(p, mdscrMDE|mdscrKDE)
		p.Bind(bp)
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		disableDebug(p)
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		Expect(g.run(ctx)).To(Equal([][]uint64{{1, 3}}), "the breakpointed ADD ran once after the exception")
		ev := g.events()
		Expect(ev).To(HaveLen(1))
		wantEvent(ev[0], a64guest.ECBreakptCurrent, addr(p, bp))
	}, SpecTimeout(a64SpecTimeout))

	for _, c := range []struct {
		name  string
		mdscr int64
		oslk  bool
		mask  bool
	}{
		{"with pstate.d set", mdscrMDE | mdscrKDE, false, true},
		{"without mdscr.kde", mdscrMDE, false, false},
		{"without mdscr.mde", mdscrKDE, false, false},
		{"with the os lock set", mdscrMDE | mdscrKDE, true, false},
	} {
		It("guest hardware breakpoint is ignored "+c.name, func(ctx SpecContext) {
			g := newDbgGuest(b)
			p := g.Program()
			bp := p.NewLabel()
			msrLabel(p, a64.DBGBVR(0), bp)
			msrImm(p, a64.DBGBCR(0), a64BCRExecEL1)
			enableDebug(p, c.mdscr)
			if c.oslk {
				msrImm(p, a64.OSLAR_EL1, 1)
				p.Isb()
			}
			if c.mask {
				p.MsrDAIFSet(8)
			}
			p.Bind(bp)
			p.Nop()
			p.Msr(a64.OSLAR_EL1, a64.XZR)
			disableDebug(p)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			g.run(ctx)
			Expect(g.events()).To(BeEmpty())
		}, SpecTimeout(a64SpecTimeout))
	}

	watch := func(store bool) func(ctx SpecContext) {
		return func(ctx SpecContext) {
			g := newDbgGuest(b)
			buf, err := g.Alloc(64, 64)
			Expect(err).NotTo(HaveOccurred())
			Expect(g.VM.Store64(buf+8, 0x1234)).To(Succeed())
			p := g.Program()
			wcr := uint64(a64WCRLoadEL1)
			if store {
				wcr = a64WCRStoreEL1
			}
			p.Mov(a64.X1, a64.Imm(int64(buf+8)))
			p.Mov(a64.X2, a64.Imm(0x55))
			p.Mov(a64.X3, a64.Imm(0))
			msrImm(p, a64.DBGWVR(0), buf+8)
			msrImm(p, a64.DBGWCR(0), wcr)
			enableDebug(p, mdscrMDE|mdscrKDE)
			// The other access kind is not watched.
			other := p.Here()
			if store {
				p.Ldr(a64.X3, a64.Ptr(a64.X1, 0))
			} else {
				p.Str(a64.X2, a64.Ptr(a64.X1, 0))
			}
			p.MsrDAIFClr(8)
			acc := p.Here()
			if store {
				p.Str(a64.X2, a64.Ptr(a64.X1, 0))
			} else {
				p.Ldr(a64.X3, a64.Ptr(a64.X1, 0))
			}
			disableDebug(p)
			p.Sync(1, a64.X3)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			syncs := g.run(ctx)
			ev := g.events()
			Expect(ev).To(HaveLen(1), "only the watched access (the other one at %#x)", addr(p, other))
			wantEvent(ev[0], a64guest.ECWatchptCurrent, addr(p, acc))
			Expect(ev[0].FAR).To(Equal(buf+8), "FAR of %v", ev[0])
			v, err := g.VM.Load64(buf + 8)
			Expect(err).NotTo(HaveOccurred())
			if store {
				Expect(ev[0].ESR&issWnR).NotTo(BeZero(), "WnR of %v", ev[0])
				Expect(syncs).To(Equal([][]uint64{{1, 0x1234}}), "the unwatched load read the old value")
				Expect(v).To(Equal(uint64(0x55)), "the store completed after the exception")
			} else {
				Expect(ev[0].ESR&issWnR).To(BeZero(), "WnR of %v", ev[0])
				Expect(syncs).To(Equal([][]uint64{{1, 0x55}}), "the load completed after the exception")
				Expect(v).To(Equal(uint64(0x55)), "the unwatched store")
			}
		}
	}
	It("guest hardware watchpoint on a store is taken before it with far", watch(true), SpecTimeout(a64SpecTimeout))
	It("guest hardware watchpoint on a load is taken before it with far", watch(false), SpecTimeout(a64SpecTimeout))

	It("guest watchpoint byte select matches only the selected bytes", func(ctx SpecContext) {
		g := newDbgGuest(b)
		buf, err := g.Alloc(64, 64)
		Expect(err).NotTo(HaveOccurred())
		p := g.Program()
		p.Mov(a64.X1, a64.Imm(int64(buf)))
		p.Mov(a64.X2, a64.Imm(0x55))
		msrImm(p, a64.DBGWVR(0), buf)
		// BAS 0b0011_0000: bytes 4 and 5 of the doubleword, stores.
		msrImm(p, a64.DBGWCR(0), 0x30<<5|2<<3|1<<1|1)
		enableDebug(p, mdscrMDE|mdscrKDE)
		// Debug exceptions are unmasked before every store: a hit masks them.
		for off := range int64(8) {
			p.MsrDAIFClr(8)
			p.Strb(a64.W2, a64.Ptr(a64.X1, off))
		}
		p.MsrDAIFClr(8)
		hit := p.Here()
		p.Strb(a64.W2, a64.Ptr(a64.X1, 5))
		disableDebug(p)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		g.run(ctx)
		ev := g.events()
		Expect(ev).To(HaveLen(3), "stores to bytes 4 and 5 only: %v", ev)
		wantEvent(ev[2], a64guest.ECWatchptCurrent, addr(p, hit))
		for i, off := range []uint64{4, 5, 5} {
			Expect(ev[i].FAR).To(Equal(buf+off), "FAR of %v", ev[i])
		}
	}, SpecTimeout(a64SpecTimeout))

	It("guest single-step steps each instruction of a known sequence", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(0))
		isb := startStep(p)
		start := p.Here()
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		p.Add(a64.X5, a64.X5, a64.Imm(2))
		p.Mrs(a64.X6, a64.ESR_EL1)
		p.Add(a64.X5, a64.X5, a64.Imm(3))
		p.Nop()
		stop := p.Here()
		disableDebug(p)
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		Expect(g.VM.Store64(g.rec+recStop, addr(p, stop))).To(Succeed())
		Expect(g.run(ctx)).To(Equal([][]uint64{{1, 6}}))
		var want []uint64
		for pc := addr(p, start); pc <= addr(p, stop); pc += 4 {
			want = append(want, pc)
		}
		stepped(g.events(), addr(p, isb), want)
	}, SpecTimeout(a64SpecTimeout))

	It("guest single-step follows taken branches", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		skip, fn, back := p.NewLabel(), p.NewLabel(), p.NewLabel()
		p.Mov(a64.X5, a64.Imm(0))
		isb := startStep(p)
		start := p.Here()
		p.B(skip)
		p.Add(a64.X5, a64.X5, a64.Imm(100))
		p.Bind(skip)
		p.Bl(fn)
		p.Bind(back)
		p.Cbz(a64.X5, skip) // not taken: X5 is 1
		stop := p.Here()
		disableDebug(p)
		p.Sync(1, a64.X5)
		p.Done()
		p.Bind(fn)
		p.Add(a64.X5, a64.X5, a64.Imm(1))
		ret := p.Here()
		p.Ret()
		Expect(g.Load(p)).To(Succeed())
		Expect(g.VM.Store64(g.rec+recStop, addr(p, stop))).To(Succeed())
		Expect(g.run(ctx)).To(Equal([][]uint64{{1, 1}}))
		stepped(g.events(), addr(p, isb), []uint64{addr(p, start), addr(p, skip), addr(p, fn), addr(p, ret), addr(p, back), addr(p, stop)})
	}, SpecTimeout(a64SpecTimeout))

	It("guest single-step needs mdscr.kde at el1", func(ctx SpecContext) {
		g := newDbgGuest(b)
		p := g.Program()
		enableDebug(p, 0)
		msrImm(p, a64.MDSCR_EL1, mdscrSS)
		p.Isb()
		p.Nop()
		p.Nop()
		disableDebug(p)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		g.run(ctx)
		Expect(g.events()).To(BeEmpty())
	}, SpecTimeout(a64SpecTimeout))

	It("guest sees the breakpoint and watchpoint counts of the host's id_aa64dfr0_el1", func(ctx SpecContext) {
		g := newDbgGuest(b)
		r, _ := a64.Sys("ID_AA64DFR0_EL1")
		p := g.Program()
		p.Mrs(a64.X5, r)
		p.Sync(1, a64.X5)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		syncs := g.run(ctx)
		brps, wrps, ctxs := dfr0(g)
		Expect(syncs).To(HaveLen(1))
		v := syncs[0][1]
		Expect([]int{int(v>>dfr0BRPs&15) + 1, int(v>>dfr0WRPs&15) + 1, int(v>>dfr0CTX&15) + 1}).To(Equal([]int{brps, wrps, ctxs}), "guest's ID_AA64DFR0_EL1 %#x", v)
		Expect(brps).To(BeNumerically(">=", 2), "BRPs")
		Expect(wrps).To(BeNumerically(">=", 2), "WRPs")
		Expect(ctxs).To(BeNumerically("<=", brps), "CTX_CMPs")
		AddReportEntry("debug registers", fmt.Sprintf("%d breakpoints (%d context-aware), %d watchpoints", brps, ctxs, wrps))
	}, SpecTimeout(a64SpecTimeout))

	// linked runs an address breakpoint (or a store watchpoint) linked to
	// the highest context-aware breakpoint matching ctxID, with
	// CONTEXTIDR_EL1 set to cur.
	linked := func(watchpoint bool, ctxID, cur uint64) func(ctx SpecContext) {
		return func(ctx SpecContext) {
			g := newDbgGuest(b)
			brps, _, _ := dfr0(g)
			cbp := brps - 1
			buf, err := g.Alloc(64, 64)
			Expect(err).NotTo(HaveOccurred())
			p := g.Program()
			bp := p.NewLabel()
			p.Mov(a64.X1, a64.Imm(int64(buf)))
			msrImm(p, contextIDR, cur)
			msrImm(p, a64.DBGBVR(cbp), ctxID)
			msrImm(p, a64.DBGBCR(cbp), bcrBTLinkedCtx|a64BCRExecEL1)
			if watchpoint {
				msrImm(p, a64.DBGWVR(0), buf)
				msrImm(p, a64.DBGWCR(0), uint64(cbp)<<lbnShift|wcrWT|a64WCRStoreEL1)
			} else {
				msrLabel(p, a64.DBGBVR(0), bp)
				msrImm(p, a64.DBGBCR(0), uint64(cbp)<<lbnShift|bcrBTLinkedAddr|a64BCRExecEL1)
			}
			enableDebug(p, mdscrMDE|mdscrKDE)
			p.Bind(bp)
			p.Str(a64.X1, a64.Ptr(a64.X1, 0))
			disableDebug(p)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			g.run(ctx)
			ev := g.events()
			if ctxID != cur {
				Expect(ev).To(BeEmpty(), "CONTEXTIDR_EL1 %#x does not match %#x", cur, ctxID)
				return
			}
			Expect(ev).To(HaveLen(1))
			if watchpoint {
				wantEvent(ev[0], a64guest.ECWatchptCurrent, addr(p, bp))
				Expect(ev[0].FAR).To(Equal(buf), "FAR of %v", ev[0])
			} else {
				wantEvent(ev[0], a64guest.ECBreakptCurrent, addr(p, bp))
			}
		}
	}
	It("guest breakpoint linked to a context-id breakpoint fires on a match", linked(false, 0x5a5a, 0x5a5a), SpecTimeout(a64SpecTimeout))
	It("guest breakpoint linked to a context-id breakpoint is ignored on a mismatch", linked(false, 0x5a5a, 0x1234), SpecTimeout(a64SpecTimeout))
	It("guest watchpoint linked to a context-id breakpoint fires on a match", linked(true, 0xc0de, 0xc0de), SpecTimeout(a64SpecTimeout))
	It("guest watchpoint linked to a context-id breakpoint is ignored on a mismatch", linked(true, 0xc0de, 0xbeef), SpecTimeout(a64SpecTimeout))

	// Every implemented breakpoint with every implemented watchpoint: one
	// testcase per group of four breakpoint numbers, each breakpoint meeting
	// every watchpoint inside.
	for first := 0; first < maxDbgReg; first += bpGroup {
		It(fmt.Sprintf("guest breakpoints %d-%d each with every watchpoint", first, first+bpGroup-1), func(ctx SpecContext) {
			g := newDbgGuest(b)
			brps, wrps, _ := dfr0(g)
			if first >= brps {
				Skip(fmt.Sprintf("the vCPU implements %d breakpoints (ID_AA64DFR0_EL1.BRPs)", brps))
			}
			last := min(first+bpGroup, brps)
			buf, err := g.Alloc(8*maxDbgReg, 64)
			Expect(err).NotTo(HaveOccurred())
			p := g.Program()
			p.Mov(a64.X5, a64.Imm(0))
			enableDebug(p, mdscrMDE|mdscrKDE)
			type pair struct {
				bpn, wpn int
				bp, st   *a64.Label
			}
			var pairs []pair
			for bpn := first; bpn < last; bpn++ {
				for wpn := range wrps {
					pr := pair{bpn, wpn, p.NewLabel(), p.NewLabel()}
					pairs = append(pairs, pr)
					p.Mov(a64.X1, a64.Imm(int64(buf+8*uint64(wpn))))
					msrLabel(p, a64.DBGBVR(bpn), pr.bp)
					msrImm(p, a64.DBGBCR(bpn), a64BCRExecEL1)
					msrImm(p, a64.DBGWVR(wpn), buf+8*uint64(wpn))
					msrImm(p, a64.DBGWCR(wpn), a64WCRStoreEL1)
					p.Isb()
					p.MsrDAIFClr(8)
					p.Bind(pr.bp)
					p.Add(a64.X5, a64.X5, a64.Imm(1))
					p.MsrDAIFClr(8)
					p.Bind(pr.st)
					p.Str(a64.X5, a64.Ptr(a64.X1, 0))
					p.Msr(a64.DBGBCR(bpn), a64.XZR)
					p.Msr(a64.DBGWCR(wpn), a64.XZR)
					p.Isb()
				}
			}
			disableDebug(p)
			p.Sync(1, a64.X5)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			Expect(g.run(ctx)).To(Equal([][]uint64{{1, uint64(len(pairs))}}))
			ev := g.events()
			Expect(ev).To(HaveLen(2*len(pairs)), "a breakpoint and a watchpoint exception for each of %d pairs: %v", len(pairs), ev)
			for i, pr := range pairs {
				By(fmt.Sprintf("breakpoint %d, watchpoint %d", pr.bpn, pr.wpn))
				wantEvent(ev[2*i], a64guest.ECBreakptCurrent, addr(p, pr.bp))
				w := ev[2*i+1]
				wantEvent(w, a64guest.ECWatchptCurrent, addr(p, pr.st))
				Expect(w.FAR).To(Equal(buf+8*uint64(pr.wpn)), "FAR of %v", w)
			}
			// The last store to each watched doubleword completed.
			for wpn := range wrps {
				v, err := g.VM.Load64(buf + 8*uint64(wpn))
				Expect(err).NotTo(HaveOccurred())
				Expect(v).To(Equal(uint64((last-first-1)*wrps+wpn+1)), "watchpoint %d's doubleword", wpn)
			}
			AddReportEntry("pairs", fmt.Sprintf("breakpoints %d-%d × %d watchpoints", first, last-1, wrps))
		}, SpecTimeout(a64SpecTimeout))
	}
}
