package debug

import (
	"errors"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

// loggedGPA is the page of the dirty-logged slot the interplay cases
// watch, above the standard guest's memory and below its MMIO windows.
const loggedGPA = 0x40000000

// maxSteps bounds a host single-step walk to a label (the ucall return
// path is a few dozen instructions).
const maxSteps = 500

// stepTo single-steps until RIP is at, and returns the number of steps.
// RIP after a ucall exit differs between hypervisors (kvm-host.md), so
// the walk starts from wherever the vCPU is.
func (e *env) stepTo(ctx SpecContext, at uint64) int {
	GinkgoHelper()
	r, err := e.vcpu().Regs()
	Expect(err).NotTo(HaveOccurred())
	if r.RIP == at {
		return 0 // the exit that stopped the guest left it there
	}
	for n := 1; n <= maxSteps; n++ {
		ev := e.run(ctx)
		d, ok := ev.Exit.(*hv.DebugExit)
		Expect(ok).To(BeTrue(), "want a single-step exit on the way to %s, got %v %v", e.g.Source(at), ev.Exit, ev.Ucall)
		GinkgoWriter.Printf("step %d: %v (%s)\n", n, d, e.g.Source(d.PC))
		if d.PC == at {
			return n
		}
	}
	Fail("single-step never reached " + e.g.Source(at))
	return 0
}

// loggedSlot adds a dirty-logged slot of one page at loggedGPA, mapped
// for the guest, with its log harvested once.
func (e *env) loggedSlot() {
	GinkgoHelper()
	e.b.Require(hv.CapDirtyLog)
	e.extraSlot(hv.MemLogDirty)
	Expect(e.dirty()).To(BeZero(), "first harvest of the new slot")
}

// demandSlot adds a slot of one page at loggedGPA whose page the host
// fills on first touch with pagePattern; faults counts the touches.
func (e *env) demandSlot(faults *atomic.Int32) {
	GinkgoHelper()
	e.b.Require(hv.CapUserfault)
	e.extraSlot(0)
	Expect(e.g.VM.SetMissingPageHandler(1, func(f hv.Fault, page []byte) error {
		faults.Add(1)
		for i := range page {
			page[i] = pagePattern
		}
		return nil
	})).To(Succeed())
}

// pagePattern fills a demand-paged page.
const pagePattern = 0x5c

// extraSlot adds slot 1: one page at loggedGPA, mapped for the guest.
func (e *env) extraSlot(flags hv.MemFlags) {
	GinkgoHelper()
	mem, err := hv.NewMemory(hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close)
	Expect(e.g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: loggedGPA, Size: hv.PageSize, Flags: flags, Memory: mem})).To(Succeed())
	Expect(e.g.PT.Map(loggedGPA, loggedGPA, hv.PageSize, guest.PTEWrite|guest.PTEUser)).To(Succeed())
}

// dirty harvests the logged slot's bitmap.
func (e *env) dirty() uint64 {
	GinkgoHelper()
	bm := make([]uint64, 1)
	Expect(e.g.VM.GetDirtyLog(1, bm)).To(Succeed())
	return bm[0]
}

func interplayCases() []tcase {
	return []tcase{
		{name: "host single-step meets the guest's own watchpoint", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapSingleStep)
			p := e.p
			w := e.buf + 320
			e.arm(dr7Enable(0, false)|dr7Cond(0, rwWrite, 4), w)
			p.MovAbs(asm.RDI, w)
			p.Sync(1)
			at := p.Here()
			p.Mov(asm.D(asm.RDI, 0), asm.Imm(9))
			after := p.Here()
			p.Nop()
			e.disarm()
			// The host saw the #DB: the guest does not, unless the host
			// injects it (what KVM does on VMX and SVM).
			e.checkDB()
			p.Done()
			e.load()
			e.runSync(ctx, 1)
			e.setDebug(hv.DebugEnable|hv.DebugSingleStep, 0)
			e.stepTo(ctx, e.addr(at))
			By("one exit reports both the step and the guest's watchpoint")
			d := e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(after), dr6: dr6Fixed | dr6BS | 1})
			Expect(d.DR7).To(Equal(uint64(dr7Fixed|dr7Enable(0, false)|dr7Cond(0, rwWrite, 4))), "DR7 of %v: the guest's", d)
			e.noDebug()
			Expect(e.g.RunUntilDone(ctx, 0, nil)).To(Succeed(), func() string { return e.hostLog() })
		}},
		{name: "host watchpoint on a dirty-logged page", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapWatchpoint)
			e.loggedSlot()
			p := e.p
			p.MovAbs(asm.RDI, loggedGPA)
			p.Mov(asm.Q(asm.RDI, 24), asm.Imm(0x77))
			after := p.Here()
			p.Done()
			e.load()
			dr7 := hostWatch(1, rwWrite, 8)
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, 0, loggedGPA+24)
			e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(after), dr6: dr6Fixed | 1<<1})
			Expect(e.dirty()).To(Equal(uint64(1)), "the watched write is logged")
			e.noDebug()
			e.runDone(ctx)
			Expect(e.g.Read64(loggedGPA + 24)).To(Equal(uint64(0x77)))
		}},
		{name: "guest watchpoint on a dirty-logged page", fn: func(ctx SpecContext, e *env) {
			e.loggedSlot()
			p := e.p
			e.arm(dr7Enable(2, false)|dr7Cond(2, rwWrite, 8), uint64(0), uint64(0), uint64(loggedGPA+40))
			p.MovAbs(asm.RDI, loggedGPA)
			p.Mov(asm.Q(asm.RDI, 40), asm.Imm(0x99))
			after := p.Here()
			e.disarm()
			e.checkDB(rec{after, dr6Fixed | 1<<2})
			e.finish(ctx)
			Expect(e.dirty()).To(Equal(uint64(1)), "the watched write is logged")
			Expect(e.g.Read64(loggedGPA + 40)).To(Equal(uint64(0x99)))
		}},
		{name: "host read/write watchpoint on a demand-paged page", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapWatchpoint)
			var faults atomic.Int32
			e.demandSlot(&faults)
			p := e.p
			p.MovAbs(asm.RDI, loggedGPA)
			p.Mov(asm.RAX, asm.Q(asm.RDI, 48))
			after := p.Here()
			p.MovAbs(asm.RBX, 0x5c5c5c5c5c5c5c5c)
			p.AssertEq(asm.RAX, asm.RBX, "the value the host paged in")
			p.Done()
			e.load()
			dr7 := hostWatch(3, rwRW, 8)
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, 0, 0, 0, loggedGPA+48)
			e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(after), dr6: dr6Fixed | 1<<3})
			Expect(faults.Load()).To(Equal(int32(1)), "missing-page faults before the trap")
			e.noDebug()
			e.runDone(ctx)
		}},
		{name: "guest read/write watchpoint on a demand-paged page", fn: func(ctx SpecContext, e *env) {
			var faults atomic.Int32
			e.demandSlot(&faults)
			p := e.p
			e.arm(dr7Enable(1, false)|dr7Cond(1, rwRW, 4), uint64(0), uint64(loggedGPA+64))
			p.MovAbs(asm.RDI, loggedGPA)
			p.Mov(asm.EAX, asm.D(asm.RDI, 66)) // straddles the watched dword
			after := p.Here()
			p.AssertEq(asm.RAX, asm.Imm(0x5c5c5c5c), "the value the host paged in")
			e.disarm()
			e.checkDB(rec{after, dr6Fixed | 1<<1})
			e.finish(ctx)
			Expect(faults.Load()).To(Equal(int32(1)), "missing-page faults")
		}},
	}
}

// badInputEntries are the bad-input cases, each its own spec.
func badInputEntries() []TableEntry {
	var out []TableEntry
	for _, c := range badInputCases() {
		out = append(out, Entry(c.name, SpecTimeout(specTimeout), c.fn))
	}
	return out
}

// badInputCases need no privilege level: they talk to the vCPU only.
func badInputCases() []tcase {
	return []tcase{
		{name: "unknown guest debug flags are EINVAL and change nothing", fn: func(ctx SpecContext, e *env) {
			p := e.p
			p.Nop()
			p.Done()
			e.load()
			err := e.vcpu().SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep | 1<<25})
			Expect(errors.Is(err, unix.EINVAL)).To(BeTrue(), "SetGuestDebug with flag 1<<25: %v", err)
			e.runDone(ctx) // no single-step took effect
		}},
		{name: "DR7 with bits 63:32 set is EINVAL", fn: func(ctx SpecContext, e *env) {
			err := e.vcpu().SetDebugRegs(&hv.DebugRegs{DR6: dr6Fixed, DR7: 1<<32 | dr7Fixed})
			Expect(errors.Is(err, unix.EINVAL)).To(BeTrue(), "SetDebugRegs: %v", err)
		}},
		{name: "DR6 with bits 63:32 set is EINVAL", fn: func(ctx SpecContext, e *env) {
			err := e.vcpu().SetDebugRegs(&hv.DebugRegs{DR6: 1<<40 | dr6Fixed, DR7: dr7Fixed})
			Expect(errors.Is(err, unix.EINVAL)).To(BeTrue(), "SetDebugRegs: %v", err)
		}},
		{name: "debug registers read back as set", fn: func(ctx SpecContext, e *env) {
			in := hv.DebugRegs{DB: [4]uint64{0x1000, 0x2001, 0x3002, 0xffff800000000000}, DR6: dr6Fixed | 1, DR7: dr7Fixed | 0x000d0002}
			Expect(e.vcpu().SetDebugRegs(&in)).To(Succeed())
			out, err := e.vcpu().DebugRegs()
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(Equal(in))
		}},
	}
}
