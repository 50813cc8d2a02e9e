package debug

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// watchLens are the data breakpoint lengths DR7 encodes.
var watchLens = []int{1, 2, 4, 8}

// hostWatch arms host data breakpoint i (the G enable, as debug_regs.c
// does) and returns what to pass to setDebug.
func hostWatch(i int, rw uint64, n int) uint64 {
	return dr7Fixed | dr7Enable(i, true) | dr7Cond(i, rw, n)
}

// hostDRs is DR0-DR3 with addr in register i.
func hostDRs(i int, addr uint64) []uint64 {
	d := make([]uint64, 4)
	d[i] = addr
	return d
}

// expectWatchExit runs to the data breakpoint exit of register i after
// the instruction before label after, checks the DR7 the exit carries,
// then turns debugging off and runs to DONE.
func (e *env) expectWatchExit(ctx SpecContext, i int, after *asm.Label, dr7 uint64) {
	GinkgoHelper()
	d := e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(after), dr6: dr6Fixed | 1<<i})
	Expect(d.DR7).To(Equal(dr7), "DR7 of %v", d)
	e.noDebug()
	e.runDone(ctx)
}

func hostCases() []tcase {
	var cs []tcase
	cs = append(cs, tcase{name: "software breakpoint", fn: func(ctx SpecContext, e *env) {
		e.b.Require(hv.CapSoftwareBP)
		e.installHandlers()
		p := e.p
		p.Nop()
		bp := p.Here()
		p.Int3()
		p.Mov(asm.EAX, p.InterruptCount(3))
		p.AssertEq(asm.RAX, asm.Imm(0), "guest #BP count: the int3 was the host's")
		p.Done()
		e.load()
		e.setDebug(hv.DebugEnable|hv.DebugUseSWBP, 0)
		e.expectDebug(ctx, debugExit{vector: 3, pc: e.addr(bp)})
		By("the debugger skips the int3")
		e.setRIP(e.addr(bp) + 1)
		e.noDebug()
		e.runDone(ctx)
	}})
	for i := 0; i < 4; i++ {
		cs = append(cs, tcase{name: fmt.Sprintf("execute breakpoint DR%d", i), fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapHWBreakpoint)
			p := e.p
			p.Nop()
			target := p.Here()
			p.Nop()
			p.Done()
			e.load()
			dr7 := uint64(dr7Fixed | dr7Enable(i, true))
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, hostDRs(i, e.addr(target))...)
			d := e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(target), dr6: dr6Fixed | 1<<i})
			Expect(d.DR7).To(Equal(dr7), "DR7 of %v", d)
			e.noDebug()
			e.runDone(ctx)
		}})
	}
	for i := 0; i < 4; i++ {
		for _, n := range watchLens {
			cs = append(cs, tcase{name: fmt.Sprintf("write watchpoint DR%d len %d", i, n), fn: func(ctx SpecContext, e *env) {
				e.b.Require(hv.CapWatchpoint)
				p := e.p
				w := e.buf + 64
				p.MovAbs(asm.RDI, w)
				p.Mov(asm.B(asm.RDI, int32(n)), asm.Imm(1)) // the byte past the range: no hit
				p.Mov(asm.B(asm.RDI, -1), asm.Imm(1))       // the byte before it: no hit
				p.Mov(asm.B(asm.RDI, int32(n-1)), asm.Imm(2))
				after := p.Here()
				p.Nop()
				p.Done()
				e.load()
				dr7 := hostWatch(i, rwWrite, n)
				e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, hostDRs(i, w)...)
				e.expectWatchExit(ctx, i, after, dr7)
				b, err := e.g.Bytes(w+uint64(n)-1, 1)
				Expect(err).NotTo(HaveOccurred())
				Expect(b[0]).To(Equal(byte(2)), "the write completed before the trap")
			}})
		}
	}
	for i := 0; i < 4; i++ {
		cs = append(cs, tcase{name: fmt.Sprintf("read/write watchpoint DR%d on a read", i), fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapWatchpoint)
			p := e.p
			w := e.buf + 128
			p.MovAbs(asm.RDI, w)
			p.Mov(asm.EAX, asm.D(asm.RDI, 2))
			after := p.Here()
			p.Done()
			e.load()
			dr7 := hostWatch(i, rwRW, 4)
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, hostDRs(i, w)...)
			e.expectWatchExit(ctx, i, after, dr7)
		}})
	}
	cs = append(cs,
		tcase{name: "write watchpoint ignores reads", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapWatchpoint)
			p := e.p
			w := e.buf + 192
			p.MovAbs(asm.RDI, w)
			p.Mov(asm.RAX, asm.Q(asm.RDI, 0))
			p.Add(asm.RAX, asm.Imm(1))
			p.Mov(asm.Q(asm.RDI, 0), asm.RAX)
			after := p.Here()
			p.Done()
			e.load()
			dr7 := hostWatch(2, rwWrite, 8)
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, hostDRs(2, w)...)
			e.expectWatchExit(ctx, 2, after, dr7)
		}},
		tcase{name: "an unaligned watch address is masked to its length", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapWatchpoint)
			p := e.p
			w := e.buf + 256
			p.MovAbs(asm.RDI, w)
			p.Mov(asm.B(asm.RDI, 8), asm.Imm(1)) // past the aligned range
			p.Mov(asm.B(asm.RDI, 4), asm.Imm(1)) // below DR0 but inside its aligned range
			after := p.Here()
			p.Done()
			e.load()
			dr7 := hostWatch(0, rwWrite, 4)
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7, w+5)
			e.expectWatchExit(ctx, 0, after, dr7)
		}},
		tcase{name: "single-step reports the RIP of every instruction", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapSingleStep)
			p := e.p
			var steps []*asm.Label
			p.Nop()
			steps = append(steps, p.Here())
			p.Xor(asm.EAX, asm.EAX)
			steps = append(steps, p.Here())
			p.Mov(asm.EBX, asm.Imm(5))
			steps = append(steps, p.Here())
			p.Add(asm.RAX, asm.RBX)
			steps = append(steps, p.Here())
			p.Push(asm.RAX)
			steps = append(steps, p.Here())
			p.Pop(asm.RCX)
			steps = append(steps, p.Here())
			p.Lea(asm.RDX, asm.Q(asm.RCX, 0x10))
			steps = append(steps, p.Here())
			next := p.NewLabel()
			p.Jmp(next)
			p.Bind(next)
			steps = append(steps, next)
			p.Done()
			e.load()
			e.setDebug(hv.DebugEnable|hv.DebugSingleStep, 0)
			for k, s := range steps {
				By(fmt.Sprintf("step %d", k+1))
				e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(s), dr6: dr6Fixed | dr6BS})
			}
			e.noDebug()
			e.runDone(ctx)
		}},
		tcase{name: "general detect exits before a debug register access", cpl0Only: true, fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapHWBreakpoint)
			p := e.p
			at := p.Here()
			p.MovFromDR(asm.RAX, asm.DR0)
			p.Done()
			e.load()
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7Fixed|dr7GD)
			e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(at), dr6: dr6Fixed | dr6BD})
			e.noDebug()
			e.runDone(ctx)
		}},
		tcase{name: "single-step with BLOCKIRQ holds a pending interrupt back", irqchip: true, fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapSingleStep)
			e.b.Require(hv.CapBlockIRQ)
			e.b.Require(hv.CapHWBreakpoint)
			const vec = 0x41
			Expect(e.g.Handle(guest.Handler{Vector: vec, EOI: true})).To(Succeed())
			p := e.p
			p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
			p.DisableInterrupts()
			p.Sync(1)
			start := p.Here()
			p.Sti()
			s1 := p.Here()
			p.Nop()
			s2 := p.Here()
			p.Nop()
			s3 := p.Here()
			p.Cli()
			s4 := p.Here()
			p.Mov(asm.EAX, p.InterruptCount(vec))
			p.AssertEq(asm.RAX, asm.Imm(0), "interrupts taken while stepping with BLOCKIRQ")
			p.Sti()
			p.WaitInterrupts(vec, asm.Imm(1))
			p.DisableInterrupts()
			p.Done()
			e.load()
			e.runSync(ctx, 1)
			Expect(e.g.VM.Interrupt(0, vec)).To(Succeed())
			By("stop at the sti, then step with BLOCKIRQ")
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7Fixed|dr7Enable(0, true), e.addr(start))
			e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(start), dr6: dr6Fixed | 1})
			e.setDebug(hv.DebugEnable|hv.DebugSingleStep|hv.DebugBlockIRQ, 0)
			for _, s := range []*asm.Label{s1, s2, s3, s4} {
				e.expectDebug(ctx, debugExit{vector: 1, pc: e.addr(s), dr6: dr6Fixed | dr6BS})
			}
			e.noDebug()
			e.runDone(ctx)
			Expect(e.g.InterruptCount(0, vec)).To(Equal(uint32(1)), "the interrupt is taken once stepping ends")
		}},
		tcase{name: "resume with RF runs the breakpoint's instruction once", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapHWBreakpoint)
			target := e.loopProgram()
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7Fixed|dr7Enable(1, true), 0, target)
			for k := 0; k < 3; k++ {
				By(fmt.Sprintf("hit %d", k+1))
				e.expectDebug(ctx, debugExit{vector: 1, pc: target, dr6: dr6Fixed | 1<<1})
				r, err := e.vcpu().Regs()
				Expect(err).NotTo(HaveOccurred())
				r.RFLAGS |= hv.FlagRF
				Expect(e.vcpu().SetRegs(&r)).To(Succeed())
			}
			e.runDone(ctx)
		}},
		tcase{name: "resume by disarm, step, re-arm", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapHWBreakpoint)
			e.b.Require(hv.CapSingleStep)
			target := e.loopProgram()
			arm := func() { e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7Fixed|dr7Enable(3, true), 0, 0, 0, target) }
			arm()
			for k := 0; k < 3; k++ {
				By(fmt.Sprintf("hit %d", k+1))
				e.expectDebug(ctx, debugExit{vector: 1, pc: target, dr6: dr6Fixed | 1<<3})
				e.setDebug(hv.DebugEnable|hv.DebugSingleStep, 0)
				e.expectDebug(ctx, debugExit{vector: 1, pc: target + 1, dr6: dr6Fixed | dr6BS})
				arm()
			}
			e.runDone(ctx)
		}},
		tcase{name: "int3 without sw-bp is the guest's #BP", fn: func(ctx SpecContext, e *env) {
			e.b.Require(hv.CapHWBreakpoint)
			e.installHandlers()
			p := e.p
			p.Int3()
			p.Mov(asm.EAX, p.InterruptCount(3))
			p.AssertEq(asm.RAX, asm.Imm(1), "guest #BP count")
			p.Done()
			e.load()
			// Host debugging on, with a breakpoint elsewhere.
			e.setDebug(hv.DebugEnable|hv.DebugUseHWBP, dr7Fixed|dr7Enable(0, true), e.buf)
			e.runDone(ctx)
		}},
	)
	return cs
}

// loopProgram loads a loop of three passes over a one-byte nop and
// returns the nop's address.
func (e *env) loopProgram() uint64 {
	GinkgoHelper()
	p := e.p
	p.Mov(asm.R12D, asm.Imm(3))
	loop := p.Here()
	p.Nop()
	p.Dec(asm.R12D)
	p.Jcc(asm.CondNZ, loop)
	p.Done()
	e.load()
	return e.addr(loop)
}
