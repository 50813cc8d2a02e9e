package smoke

// The smoke area's arm64 specs: the same quick check on AArch64 guests
// (harness/guest/a64guest), run where the backend's guests are arm64 (kvm
// on an arm64 host) and skipped with the reason elsewhere. They are
// "smoke / arm64 / …" in reports.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
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

func init() { framework.RegisterArch(taxonomy.Smoke, hv.ArchARM64, arm64Specs) }

// arm64SpecTimeout bounds every arm64 smoke spec: real KVM/arm64 may run
// under TCG (make test-arm64), where a guest takes ~100 times longer.
const arm64SpecTimeout = 60 * time.Second

// Guest-physical addresses outside slot 0 (16 MiB at 0) and below the
// ucall page: an unbacked MMIO page, a read-only slot, and an address
// nothing maps at stage 1.
const (
	a64MMIOGPA     = 0x5000_0000
	a64ReadOnlyGPA = 0x4000_0000
	a64Unmapped    = 0x3000_0000
)

var (
	currentEL, _ = a64.Sys("CURRENTEL")
	sctlrEL1, _  = a64.Sys("SCTLR_EL1")
	tcrEL1, _    = a64.Sys("TCR_EL1")
	idMMFR0, _   = a64.Sys("ID_AA64MMFR0_EL1")
)

// currentELValue is CurrentEL's value at exception level el (EL in [3:2]).
func currentELValue(el int) uint64 { return uint64(el) << 2 }

// callerLine is the line of its caller, for specs that check a report
// names the Go line that built a guest instruction.
func callerLine() int {
	_, _, line, _ := goruntime.Caller(1)
	return line
}

func arm64Specs(b *framework.Backend) {
	newGuest := func(cfg a64guest.Config) *a64guest.Guest {
		GinkgoHelper()
		return b.NewARM64Guest(cfg)
	}
	load := func(g *a64guest.Guest, p *a64guest.Program) {
		GinkgoHelper()
		Expect(g.Load(p)).To(Succeed())
	}
	// run runs vCPU 0 to its next stop, which must be a ucall.
	runUcall := func(ctx context.Context, g *a64guest.Guest) *guest.Ucall {
		GinkgoHelper()
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		if ev.Exit != nil {
			Fail(g.Unexpected(0, ev.Exit).Error())
		}
		return ev.Ucall
	}
	runMMIO := func(ctx context.Context, g *a64guest.Guest) *hv.MMIOExit {
		GinkgoHelper()
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		m, ok := ev.Exit.(*hv.MMIOExit)
		Expect(ok).To(BeTrue(), "want an MMIO exit, got exit %v ucall %v", ev.Exit, ev.Ucall)
		return m
	}

	It("boots at EL1 and ends with a done ucall", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		p.Mrs(a64.X1, currentEL)
		p.Mrs(a64.X2, sctlrEL1)
		p.Sync(1, a64.X0, a64.X1, a64.X2)
		p.Done()
		load(g, p)
		u := runUcall(ctx, g)
		Expect([]any{u.Cmd, u.Stage()}).To(Equal([]any{guest.UcallSync, uint64(1)}))
		Expect(u.Args[1]).To(Equal(uint64(0)), "X0 at entry: the vCPU index")
		Expect(u.Args[2]).To(Equal(currentELValue(1)), "CurrentEL")
		Expect(u.Args[3]&a64guest.SCTLRM).NotTo(BeZero(), "SCTLR_EL1 %#x: the stage-1 MMU is on", u.Args[3])
		Expect(runUcall(ctx, g).Cmd).To(Equal(guest.UcallDone))
	}, SpecTimeout(arm64SpecTimeout))

	It("runs test code at EL0 and returns to EL1", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X6, a64.Imm(0x55))
		p.ToEL0()
		p.Add(a64.X6, a64.X6, a64.Imm(1))
		// The vCPU's EL1 block is EL1-only: at EL0 a read of it is a data
		// abort from a lower EL.
		fix := p.NewLabel()
		p.ExpectException(fix)
		p.Sub(a64.X7, a64.X28, a64.Imm(0x10000))
		p.Ldr(a64.X8, a64.Ptr(a64.X7, 0))
		p.Fail("EL0 read EL1 data")
		p.Bind(fix)
		p.Ldr(a64.X9, a64.Ptr(a64.X28, a64guest.ExcVector))
		p.Ldr(a64.X10, a64.Ptr(a64.X28, a64guest.ExcESR))
		p.Sync(1, a64.X6, a64.X9, a64.X10)
		p.ToEL1()
		p.Mrs(a64.X11, currentEL)
		p.Sync(2, a64.X6, a64.X11)
		p.Done()
		load(g, p)
		u := runUcall(ctx, g)
		Expect(u.Stage()).To(Equal(uint64(1)))
		Expect(u.Args[1]).To(Equal(uint64(0x56)), "X6 computed at EL0")
		Expect(a64guest.VectorName(u.Args[2])).To(Equal(a64guest.VectorName(a64guest.VecSyncLower64)), "vector of the EL0 abort")
		x := a64guest.Exception{ESR: u.Args[3]}
		Expect(x.EC()).To(Equal(uint32(a64guest.ECDABTLower)), "EL0 read of EL1 data: %v", x)
		u = runUcall(ctx, g)
		Expect(u.Stage()).To(Equal(uint64(2)))
		Expect(u.Args[1:]).To(Equal([]uint64{0x56, currentELValue(1)}), "X6 and CurrentEL back at EL1")
		Expect(runUcall(ctx, g).Cmd).To(Equal(guest.UcallDone))
	}, SpecTimeout(arm64SpecTimeout))

	It("ucall round trip with arguments", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		regs := []a64.Reg{a64.X1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6}
		for i, r := range regs {
			p.Mov(r, a64.Imm(0x0A00_0000_0000_0000|int64(i)<<32|int64(i)))
		}
		p.Sync(1, a64.X1, a64.X2, a64.X3, a64.X4, a64.X5, a64.X6)
		// The host answers through the scratch area; echo it back.
		p.Ldr(a64.X7, a64.Ptr(a64.X28, a64guest.UserScratch))
		p.Sync(2, a64.X7, a64.Imm(0x1234))
		p.Done()
		load(g, p)
		stages := 0
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			stages++
			switch u.Stage() {
			case 1:
				Expect(u.Args).To(HaveLen(7))
				for i := range regs {
					Expect(u.Args[i+1]).To(Equal(uint64(0x0A00_0000_0000_0000|int64(i)<<32|int64(i))), "argument %d", i+1)
				}
				return g.VM.Store64(g.UserBlock(0)+a64guest.UserScratch, 0xfeedface_cafef00d)
			case 2:
				Expect(u.Args[1:]).To(Equal([]uint64{0xfeedface_cafef00d, 0x1234}), "host value echoed by the guest, an immediate argument")
			}
			return nil
		})).To(Succeed())
		Expect(stages).To(Equal(2))
	}, SpecTimeout(arm64SpecTimeout))

	It("guest assert failure names the go source line", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(41))
		line := callerLine() + 1
		p.AssertEq(a64.X5, a64.Imm(42), "the answer")
		p.Done()
		load(g, p)
		err := g.RunUntilDone(ctx, 0, nil)
		var ae *guest.AssertError
		Expect(errors.As(err, &ae)).To(BeTrue(), "want a guest assertion, got %v", err)
		Expect(ae.Site).NotTo(BeNil())
		Expect(ae.Site.Line).To(Equal(line), "the assertion's Go line")
		Expect(err.Error()).To(MatchRegexp(`arm64\.go:%d: the answer \(values: 0x29 0x2a\)`, line))
	}, SpecTimeout(arm64SpecTimeout))

	It("mmio writes and reads of 1, 2, 4 and 8 bytes", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		Expect(g.MapIdentity(a64MMIOGPA, g.PageSize(), a64guest.Device)).To(Succeed())
		p := g.Program()
		p.Mov(a64.X1, a64.Imm(a64MMIOGPA))
		p.Mov(a64.X2, a64.Imm(0x1122_3344_5566_7788))
		p.Strb(a64.W2, a64.Ptr(a64.X1, 0x10))
		p.Strh(a64.W2, a64.Ptr(a64.X1, 0x20))
		p.Str(a64.W2, a64.Ptr(a64.X1, 0x30))
		p.Str(a64.X2, a64.Ptr(a64.X1, 0x40))
		p.Ldrb(a64.W3, a64.Ptr(a64.X1, 0x50))
		p.Ldrh(a64.W4, a64.Ptr(a64.X1, 0x60))
		p.Ldr(a64.W5, a64.Ptr(a64.X1, 0x70))
		p.Ldr(a64.X6, a64.Ptr(a64.X1, 0x80))
		p.Sync(1, a64.X3, a64.X4, a64.X5, a64.X6)
		p.Done()
		load(g, p)
		const answer = 0xf1f2_f3f4_f5f6_f7f8
		for i, size := range []int{1, 2, 4, 8} {
			By(fmt.Sprintf("a %d-byte write", size))
			m := runMMIO(ctx, g)
			mask := uint64(1)<<(8*size) - 1
			if size == 8 {
				mask = ^uint64(0)
			}
			Expect([]any{m.GPA, m.Len, m.Write, m.Value()}).To(Equal([]any{uint64(a64MMIOGPA + 0x10 + 0x10*i), size, true, uint64(0x1122_3344_5566_7788) & mask}))
		}
		for i, size := range []int{1, 2, 4, 8} {
			By(fmt.Sprintf("a %d-byte read the host answers", size))
			m := runMMIO(ctx, g)
			Expect([]any{m.GPA, m.Len, m.Write}).To(Equal([]any{uint64(a64MMIOGPA + 0x50 + 0x10*i), size, false}))
			m.SetValue(answer)
		}
		u := runUcall(ctx, g)
		Expect(u.Args[1:]).To(Equal([]uint64{0xf8, 0xf7f8, 0xf5f6_f7f8, answer}), "values the host supplied, zero-extended")
		Expect(runUcall(ctx, g).Cmd).To(Equal(guest.UcallDone))
	}, SpecTimeout(arm64SpecTimeout))

	It("an unhandled data abort is reported with ESR, FAR and ELR", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X1, a64.Imm(a64Unmapped))
		at := p.Here()
		p.Ldr(a64.X2, a64.Ptr(a64.X1, 0x18))
		p.Done()
		load(g, p)
		err := g.RunUntilDone(ctx, 0, nil)
		var xe *a64guest.ExceptionError
		Expect(errors.As(err, &xe)).To(BeTrue(), "want an unexpected exception, got %v", err)
		elr, _ := p.Addr(at)
		Expect(a64guest.VectorName(xe.Vector)).To(Equal(a64guest.VectorName(a64guest.VecSyncEL1t)), "%v", xe)
		Expect(xe.EC()).To(Equal(uint32(a64guest.ECDABTCurrent)), "%v", xe)
		Expect(xe.FAR).To(Equal(uint64(a64Unmapped+0x18)), "FAR (%v)", xe)
		Expect(xe.ELR).To(Equal(elr), "ELR: the load (%v)", xe)
		_, ferr := g.Walker().Translate(a64Unmapped+0x18, a64guest.Access{EL: 1})
		var f *a64guest.Fault
		Expect(errors.As(ferr, &f)).To(BeTrue(), "the walker predicts a fault: %v", ferr)
		Expect(xe.FSC()).To(Equal(f.FSC()), "fault status: the walker predicts %v", f)
		Expect(xe.Source).To(ContainSubstring("arm64.go"), "the report names the load's Go line")
		Expect(err.Error()).To(ContainSubstring("far %#x", uint64(a64Unmapped+0x18)))
	}, SpecTimeout(arm64SpecTimeout))

	It("an exception is taken by its vector's handler", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		Expect(g.Handle(a64guest.Handler{Vector: a64guest.VecSyncEL1t, Body: func(p *a64guest.Program, f a64guest.Frame) {
			// Skip the BRK and report its syndrome from the handler,
			// clobbering X5, which the frame restores.
			p.Mov(a64.X5, a64.Imm(0))
			p.Ldr(a64.X0, f.ELR)
			p.Add(a64.X0, a64.X0, a64.Imm(4))
			p.Str(a64.X0, f.ELR)
			p.Ldr(a64.X1, f.ESR)
			p.Sync(9, a64.X1)
		}})).To(Succeed())
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(0x55))
		p.Brk(3)
		p.Sync(10, a64.X5)
		p.Done()
		load(g, p)
		var got []uint64
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			got = append(got, u.Args...)
			return nil
		})).To(Succeed())
		// ESR of BRK #3: EC BRK64, IL (a 32-bit instruction), the comment.
		Expect(got).To(Equal([]uint64{9, uint64(a64guest.ECBRK64)<<26 | 1<<25 | 3, 10, 0x55}), "handler's ucall, then the test code's")
		n, err := g.HandlerCount(0, a64guest.VecSyncEL1t)
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(Equal(uint32(1)), "handler runs")
	}, SpecTimeout(arm64SpecTimeout))

	It("a write to a read-only memslot exits as mmio", taxonomy.Needs(hv.CapReadOnlyMem), func(ctx SpecContext) {
		b.Require(hv.CapReadOnlyMem)
		const size = 0x10000 // one page of every granule
		mem, err := hv.NewMemory(size, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mem.Close) // after the guest's cleanup, which is registered later
		binary.LittleEndian.PutUint64(mem.Bytes()[0x100:], 0x0123_4567_89ab_cdef)
		binary.LittleEndian.PutUint64(mem.Bytes()[0x108:], 0x1111)
		g := newGuest(a64guest.Config{})
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: a64ReadOnlyGPA, Size: size, Flags: hv.MemReadOnly, Memory: mem})).To(Succeed())
		Expect(g.MapIdentity(a64ReadOnlyGPA, size, a64guest.KernelData)).To(Succeed())
		p := g.Program()
		p.Mov(a64.X1, a64.Imm(a64ReadOnlyGPA))
		p.Ldr(a64.X2, a64.Ptr(a64.X1, 0x100))
		p.Mov(a64.X3, a64.Imm(0x5a5a))
		p.Str(a64.X3, a64.Ptr(a64.X1, 0x108))
		p.Ldr(a64.X4, a64.Ptr(a64.X1, 0x108))
		p.Sync(1, a64.X2, a64.X4)
		p.Done()
		load(g, p)
		m := runMMIO(ctx, g)
		Expect([]any{m.GPA, m.Len, m.Write, m.Value()}).To(Equal([]any{uint64(a64ReadOnlyGPA + 0x108), 8, true, uint64(0x5a5a)}))
		u := runUcall(ctx, g)
		Expect(u.Args[1:]).To(Equal([]uint64{0x0123_4567_89ab_cdef, 0x1111}), "reads see the slot; the write did not reach it")
		Expect(runUcall(ctx, g).Cmd).To(Equal(guest.UcallDone))
		Expect(binary.LittleEndian.Uint64(mem.Bytes()[0x108:])).To(Equal(uint64(0x1111)), "host view of the read-only slot")
	}, SpecTimeout(arm64SpecTimeout))

	for _, gr := range a64guest.Granules {
		gr := gr
		It(fmt.Sprintf("boots with the %v granule", gr), func(ctx SpecContext) {
			probe := newGuest(a64guest.Config{})
			mmfr0, err := probe.Reg(0).GetOneReg(a64guest.RegSys(idMMFR0))
			Expect(err).NotTo(HaveOccurred(), "ID_AA64MMFR0_EL1")
			if !a64guest.SupportsGranule(mmfr0, gr) {
				Skip(fmt.Sprintf("%s: the CPU has no %v stage-1 granule (ID_AA64MMFR0_EL1 %#x)", b.Name, gr, mmfr0))
			}
			mode := a64guest.Mode{PABits: 40, VABits: 48, Granule: gr}
			g := newGuest(a64guest.Config{Mode: mode})
			ps := g.PageSize()
			Expect(ps).To(Equal(gr.Size()))
			buf, err := g.Alloc(2*ps, ps)
			Expect(err).NotTo(HaveOccurred())
			p := g.Program()
			p.Mov(a64.X1, a64.Imm(int64(buf)))
			p.Mov(a64.X2, a64.Imm(0x600d_0000_0000_0001))
			p.Str(a64.X2, a64.Ptr(a64.X1, 0))
			p.Add(a64.X2, a64.X2, a64.Imm(1))
			// The next page: 64K is beyond an STR's immediate offset.
			p.Mov(a64.X5, a64.Imm(int64(buf+ps)))
			p.Str(a64.X2, a64.Ptr(a64.X5, 0))
			p.Ldr(a64.X3, a64.Ptr(a64.X1, 0))
			p.Mrs(a64.X4, tcrEL1)
			p.Sync(1, a64.X3, a64.X4)
			p.Done()
			load(g, p)
			u := runUcall(ctx, g)
			Expect(u.Args[1]).To(Equal(uint64(0x600d_0000_0000_0001)), "read back")
			got, err := a64guest.ModeFromTCR(u.Args[2])
			Expect(err).NotTo(HaveOccurred(), "TCR_EL1 %#x", u.Args[2])
			Expect(got.Granule).To(Equal(gr), "the guest's TCR_EL1 %#x", u.Args[2])
			Expect(runUcall(ctx, g).Cmd).To(Equal(guest.UcallDone))
			for off, want := range map[uint64]uint64{0: 0x600d_0000_0000_0001, ps: 0x600d_0000_0000_0002} {
				Expect(g.VM.Load64(buf+off)).To(Equal(want), "guest memory at %#x", buf+off)
			}
			tr, err := g.Walker().Translate(buf+ps, a64guest.Access{EL: 1, Write: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(tr.PA).To(Equal(buf+ps), "identity map")
		}, SpecTimeout(arm64SpecTimeout))
	}

	for _, n := range []int{2, 4} {
		n := n
		It(fmt.Sprintf("%d vcpus run at once", n), taxonomy.Needs(hv.CapMultiVCPU), func(ctx SpecContext) {
			b.Require(hv.CapMultiVCPU)
			g := newGuest(a64guest.Config{VCPUs: n})
			counter, err := g.Alloc(8, 64)
			Expect(err).NotTo(HaveOccurred())
			const iters = 1000
			p := g.Program()
			// Each vCPU reports its index and user block and adds to a
			// shared counter with load-acquire/store-release exclusives.
			p.Mov(a64.X1, a64.Imm(int64(counter)))
			p.Mov(a64.X2, a64.Imm(iters))
			loop := p.Here()
			p.Ldaxr(a64.X3, a64.X1)
			p.Add(a64.X3, a64.X3, a64.Imm(1))
			p.Stlxr(a64.W4, a64.X3, a64.X1)
			p.Cbnz(a64.W4, loop)
			p.Subs(a64.X2, a64.X2, a64.Imm(1))
			p.Bcond(a64.NE, loop)
			p.Sync(1, a64.X0, a64.X28)
			p.Done()
			load(g, p)
			var mu sync.Mutex
			seen := map[uint64]uint64{}
			Expect(g.RunAll(ctx, func(u *guest.Ucall) error {
				mu.Lock()
				defer mu.Unlock()
				if u.Args[1] != uint64(u.VCPU) {
					return fmt.Errorf("vcpu %d says it is %d", u.VCPU, u.Args[1])
				}
				seen[u.Args[1]] = u.Args[2]
				return nil
			})).To(Succeed())
			for i := 0; i < n; i++ {
				Expect(seen).To(HaveKeyWithValue(uint64(i), g.UserBlock(i)), "vcpu %d's user block", i)
			}
			Expect(g.VM.Load64(counter)).To(Equal(uint64(n*iters)), "shared counter after the exclusive adds")
		}, SpecTimeout(arm64SpecTimeout))
	}

	It("psci system_off is a system-event exit", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		p.Mov(a64.X5, a64.Imm(0x5150))
		p.Mov(a64.W0, a64.Imm(hv.PSCISystemOff))
		p.Hvc(0)
		p.Fail("PSCI SYSTEM_OFF returned", a64.X0)
		load(g, p)
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		se, ok := ev.Exit.(*hv.SystemEventExit)
		Expect(ok).To(BeTrue(), "want a system-event exit, got exit %v ucall %v", ev.Exit, ev.Ucall)
		Expect(se.Type).To(BeEquivalentTo(hv.SystemEventShutdown), "%v", se)
		x5, err := g.Reg(0).GetOneReg(a64guest.RegX(5))
		Expect(err).NotTo(HaveOccurred())
		Expect(x5).To(Equal(uint64(0x5150)), "the guest's registers as it left them")
	}, SpecTimeout(arm64SpecTimeout))

	It("a spinning guest is cut off by its timeout", func(ctx SpecContext) {
		g := newGuest(a64guest.Config{})
		p := g.Program()
		spin := p.Here()
		p.B(spin)
		p.Done()
		load(g, p)
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := g.RunUntilDone(short, 0, nil)
		var te *a64guest.TimeoutError
		Expect(errors.As(err, &te)).To(BeTrue(), "want a timeout, got %v", err)
		Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue(), "%v", err)
		pc, _ := p.Addr(spin)
		Expect(te.PC).To(Equal(pc), "the vCPU stopped in its loop")
		Expect(te.Source).To(ContainSubstring("arm64.go"), "the report names the spinning instruction's Go line")
		AddReportEntry("stopped after", time.Since(start).String())
		By("the vCPU runs again afterwards")
		q := g.Program()
		q.Done()
		load(g, q)
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}, SpecTimeout(arm64SpecTimeout))

	arm64IRQSpecs(b) // arm64_irq.go
	arm64SGISpecs(b) // arm64_sgi.go
}
