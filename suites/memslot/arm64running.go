package memslot

// set_memory_region_test's MOVE and DELETE tests on an arm64 guest (the
// host side and the scenarios are running.go's), and what KVM/arm64 does
// when the guest's code goes: it has no exit for it. A stage-2 fault on
// an instruction fetch outside every slot is injected back into the
// guest as a prefetch abort (kvm_handle_guest_abort: userspace has no
// syndrome to act on), whose vector is in the same missing slot, so the
// vCPU takes that abort over and over and KVM_RUN returns only when the
// host interrupts it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// a64Stall is how long a vCPU without its code runs before the spec
// stops it: long enough for any exit KVM had to come.
const a64Stall = 2 * time.Second

// ESR_ELx of an instruction abort (Arm ARM D24.2.40), and the offset of
// the synchronous vector for the current EL with SP_ELx.
const (
	esrECShift   = 26
	esrECIABTCur = 0x21 // EC: instruction abort from the current EL
	esrIFSCMask  = 0x3f
	// esrFSCExtAbt is the fault status KVM's injected aborts carry
	// (inject_abt64: a synchronous external abort, not on a walk).
	esrFSCExtAbt  = 0x10
	vectorSyncSPx = 0x200
)

var (
	regVBAR = a64guest.RegSys(a64.VBAR_EL1)
	regESR  = a64guest.RegSys(a64.ESR_EL1)
	regFAR  = a64guest.RegSys(a64.FAR_EL1)
)

// newA64Reader is newReader's guest in AArch64 at EL1: the same loop,
// log and values, the read slot at readGPA with the pages around it
// mapped at stage 1 (4K granule).
func newA64Reader(b *framework.Backend) (*reader, *a64guest.Guest) {
	GinkgoHelper()
	g := b.NewARM64Guest(a64guest.Config{})
	shGPA, err := g.Alloc(hv.PageSize, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	r := newReaderHost(g, g.VM, func() (uint64, error) { return g.Reg(0).GetOneReg(a64guest.RegPC) },
		g.Mem.Bytes()[shGPA:shGPA+hv.PageSize])
	Expect(g.MapIdentity(readGPA-hv.PageSize, 3*hv.PageSize, a64guest.KernelData)).To(Succeed())

	p := g.Program()
	start, end := p.NewLabel(), p.NewLabel()
	p.Mov(a64.X8, a64.Imm(readGPA))
	p.Mov(a64.X9, a64.Imm(int64(shGPA+shLog)))
	p.Mov(a64.X11, a64.Imm(int64(shGPA)))
	p.Mov(a64.X12, a64.Imm(valueFinal))
	p.Mov(a64.X1, a64.Imm(-1))
	p.Mov(a64.X10, a64.Imm(0))
	p.Bind(start)
	p.Ldr(a64.X2, a64.Ptr(a64.X8, 0))
	p.Cmp(a64.X2, a64.X1)
	p.Bcond(a64.EQ, start)
	p.Mov(a64.X1, a64.X2)
	p.Str(a64.X2, a64.PostIndex(a64.X9, 8))
	p.Add(a64.X10, a64.X10, a64.Imm(1))
	p.Str(a64.X10, a64.Ptr(a64.X11, shCount))
	p.Str(a64.X2, a64.Ptr(a64.X11, shSeen))
	p.Cmp(a64.X10, a64.Imm(maxLog))
	p.Assert(a64.LO, "more value changes than the log holds", a64.X10)
	p.Cmp(a64.X2, a64.X12)
	p.Bcond(a64.NE, start)
	p.Bind(end)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	var ok1, ok2 bool
	r.loopStart, ok1 = p.Addr(start)
	r.loopEnd, ok2 = p.Addr(end)
	Expect(ok1 && ok2).To(BeTrue())
	return r, g
}

// a64Aborts is what a stopped vCPU's registers say of the exception it
// was taking: PC, VBAR_EL1, ESR_EL1, FAR_EL1, ELR_EL1.
type a64Aborts struct {
	pc, vbar, esr, far, elr uint64
}

func readA64Aborts(r a64guest.OneReg) (a64Aborts, error) {
	var s a64Aborts
	var errs []error
	for _, x := range []struct {
		id  uint64
		dst *uint64
	}{{a64guest.RegPC, &s.pc}, {regVBAR, &s.vbar}, {regESR, &s.esr}, {regFAR, &s.far}, {a64guest.RegELREL1, &s.elr}} {
		v, err := r.GetOneReg(x.id)
		errs = append(errs, err)
		*x.dst = v
	}
	return s, errors.Join(errs...)
}

func (s a64Aborts) ec() uint64 { return s.esr >> esrECShift & 0x3f }

func (s a64Aborts) String() string {
	return fmt.Sprintf("pc %#x, VBAR_EL1 %#x, ESR_EL1 %#x (EC %#x), FAR_EL1 %#x, ELR_EL1 %#x", s.pc, s.vbar, s.esr, s.ec(), s.far, s.elr)
}

// expectPrefetchAbortLoop checks a vCPU that KVM_RUN kept for a64Stall:
// it is at the synchronous vector of its own EL (EL1h: the vector's
// fetch faulted too), the last abort was an instruction abort taken at
// EL1 with the fault status KVM injects, whose return address and fault
// address are that vector. Measured on 6.12 under TCG: ESR_EL1
// 0x86000010 with the vector at VBAR_EL1+0x200 (VBAR_EL1 0 in a vCPU
// that never set it).
func expectPrefetchAbortLoop(s a64Aborts) {
	GinkgoHelper()
	Expect(s.ec()).To(Equal(uint64(esrECIABTCur)), "ESR_EL1 EC: an instruction abort from EL1 (%s)", s)
	Expect(s.esr&esrIFSCMask).To(Equal(uint64(esrFSCExtAbt)), "ESR_EL1 IFSC: the synchronous external abort KVM injects (%s)", s)
	Expect(s.pc).To(Equal(s.vbar+vectorSyncSPx), "the vCPU is at VBAR_EL1's synchronous vector for EL1h (%s)", s)
	Expect([]uint64{s.elr, s.far}).To(Equal([]uint64{s.pc, s.pc}), "ELR_EL1 and FAR_EL1: the vector itself (%s)", s)
}

func a64RunningSpecs(b *framework.Backend) {
	DescribeTable("a slot under a guest reading it",
		func(ctx SpecContext, sc moveScenario) {
			r, _ := newA64Reader(b)
			runScenario(ctx, r, sc)
		},
		moveScenarios,
	)

	It("deleting the slot of the guest's code leaves the vcpu taking prefetch aborts inside KVM_RUN", func(ctx SpecContext) {
		r, g := newA64Reader(b)
		r.stopOnExit = true
		rctx, cancel := context.WithCancel(framework.GuestContext(ctx, 4*waitTime))
		defer cancel()
		r.start(rctx)
		r.waitSeen(valueOld)
		By("deleting slot 0: code, vectors, page tables, stacks")
		Expect(r.vm.DeleteMemslot(0)).To(Succeed())
		select {
		case err := <-r.done:
			Fail(fmt.Sprintf("KVM_RUN returned within %v of the delete: exit %v at pc %#x, error %v", a64Stall, r.finalExit, r.finalPC, err))
		case <-time.After(a64Stall):
		}
		cancel()
		err := r.wait()
		var te *a64guest.TimeoutError
		Expect(errors.As(err, &te)).To(BeTrue(), "the run ended by the host's interrupt: %v", err)
		s, err := readA64Aborts(g.Reg(0))
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("vcpu after the code slot went", fmt.Sprintf("no exit in %v; stopped by the host: %s (test loop [%#x, %#x))", a64Stall, s, r.loopStart, r.loopEnd))
		expectPrefetchAbortLoop(s)
	}, SpecTimeout(time.Minute))

	It("a vcpu with no memory at all takes prefetch aborts inside KVM_RUN", func(ctx SpecContext) {
		vm, err := b.HV.NewVM(hv.VMConfig{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(vm.Close)
		v, err := vm.NewVCPU(0)
		Expect(err).NotTo(HaveOccurred())
		regs, ok := v.(a64guest.OneReg)
		Expect(ok).To(BeTrue(), "%s vCPUs have ONE_REG access", b.Name)
		rctx, cancel := context.WithTimeout(ctx, a64Stall)
		defer cancel()
		exit, err := v.Run(rctx)
		Expect(exit).To(BeNil(), "KVM_RUN returned an exit without memory (error %v)", err)
		Expect(rctx.Err()).To(HaveOccurred(), "KVM_RUN returned before the host stopped it: %v", err)
		s, err := readA64Aborts(regs)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("vcpu without memory", fmt.Sprintf("no exit in %v; stopped by the host: %s", a64Stall, s))
		expectPrefetchAbortLoop(s)
	}, SpecTimeout(time.Minute))
}
