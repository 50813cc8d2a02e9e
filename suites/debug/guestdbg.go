package debug

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The guest's handlers log what they saw in e.log: #DB records (saved
// RIP, DR6) from offset 0, #BP records (saved RIP) from bpLog, 16 bytes
// each, indexed by the handler's count before it is incremented.
const (
	bpLog      = guest.DebugLogSize
	logEntries = guest.DebugLogEntries
)

// installHandlers installs the guest's #DB, #BP and arming handlers.
//
// #DB is guest.DebugLog: it logs the saved RIP and DR6, clears DR6 and
// returns with RF set, so a fault-class #DB (an execute breakpoint,
// general detect) re-runs its instruction once without hitting again.
//
// #UD is how CPL3 test code arms its debug registers (ring 0 only may):
// ud2 with DR0-DR3 in RAX, RBX, RCX, RDX and DR7 in RSI; the handler
// loads them and skips the ud2.
func (e *env) installHandlers() {
	GinkgoHelper()
	log := e.log
	Expect(e.g.Handle(guest.DebugLog(log))).To(Succeed())
	Expect(e.g.Handle(guest.Handler{Vector: 3, Body: func(p *guest.Program, f guest.Frame) {
		p.Mov(asm.ECX, p.InterruptCount(3))
		p.And(asm.ECX, asm.Imm(logEntries-1))
		p.Shl(asm.ECX, asm.Imm(4))
		p.MovAbs(asm.RDX, log+bpLog)
		p.Mov(asm.RAX, f.RIP)
		p.Mov(asm.Q(asm.RDX, 0).Idx(asm.RCX, 1), asm.RAX)
	}})).To(Succeed())
	Expect(e.g.Handle(guest.Handler{Vector: 6, Body: func(p *guest.Program, f guest.Frame) {
		loadDRs(p)
		p.Add(f.RIP, asm.Imm(2))
	}})).To(Succeed())
}

// loadDRs moves RAX, RBX, RCX, RDX into DR0-DR3 and RSI into DR7.
func loadDRs(p *guest.Program) {
	for i, r := range []asm.Reg{asm.RAX, asm.RBX, asm.RCX, asm.RDX} {
		p.MovToDR(asm.DReg(i), r)
	}
	p.MovToDR(asm.DR7, asm.RSI)
}

// loadValue puts an address (a label's or a number) in r.
func loadValue(p *guest.Program, r asm.Reg, v any) {
	switch v := v.(type) {
	case *asm.Label:
		p.MovLabel(r, v)
	case uint64:
		p.MovAbs(r, v)
	case asm.Reg:
		if v != r {
			p.Mov(r, v)
		}
	default:
		panic(fmt.Sprintf("debug: address %T", v))
	}
}

// arm emits the guest's own arming of its debug registers: DR0-DR3 from
// drs (labels, numbers or registers, missing ones zero) and DR7, inline at
// CPL0, through the #UD handler at CPL3. It clobbers RAX-RDX and RSI.
func (e *env) arm(dr7 uint64, drs ...any) {
	regs := []asm.Reg{asm.RAX, asm.RBX, asm.RCX, asm.RDX}
	// Registers first, in reverse, so a source register is read before
	// it is overwritten (the cases pass at most RAX as a source).
	for i := len(regs) - 1; i >= 0; i-- {
		if i < len(drs) {
			loadValue(e.p, regs[i], drs[i])
		} else {
			e.p.Xor(regs[i], regs[i])
		}
	}
	e.p.MovAbs(asm.RSI, dr7|dr7Fixed)
	if e.mode == guest.CPL0 {
		loadDRs(e.p)
	} else {
		e.p.Ud2()
	}
}

// disarm clears DR7.
func (e *env) disarm() { e.arm(0) }

// rec is one #DB the guest expects its handler to have logged.
type rec struct {
	rip any    // label or address
	dr6 uint64 // 0: not checked
}

// checkDB emits the guest's own check: exactly len(want) #DBs so far,
// each with its saved RIP and DR6.
func (e *env) checkDB(want ...rec) {
	p := e.p
	p.Mov(asm.EAX, p.InterruptCount(1))
	p.AssertEq(asm.RAX, asm.Imm(len(want)), "#DB count")
	for i, w := range want {
		p.MovAbs(asm.RDX, e.log+16*uint64(i))
		p.Mov(asm.RAX, asm.Q(asm.RDX, 0))
		loadValue(p, asm.RBX, w.rip)
		p.AssertEq(asm.RAX, asm.RBX, fmt.Sprintf("saved RIP of #DB %d", i+1))
		if w.dr6 != 0 {
			p.Mov(asm.RAX, asm.Q(asm.RDX, 8))
			p.MovAbs(asm.RBX, w.dr6)
			p.AssertEq(asm.RAX, asm.RBX, fmt.Sprintf("DR6 of #DB %d", i+1))
		}
	}
}

// hostLog reads the guest's #DB log, for failure messages.
func (e *env) hostLog() string {
	recs, err := e.g.DebugRecords(0, e.log)
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("%d #DB:", len(recs))
	for _, r := range recs {
		s += fmt.Sprintf(" (rip %#x %s, dr6 %#x)", r.RIP, e.g.Source(r.RIP), r.DR6)
	}
	return s
}

// finish ends the program and runs it to DONE, reporting the guest's log
// when it fails.
func (e *env) finish(ctx SpecContext) {
	GinkgoHelper()
	e.p.Done()
	e.load()
	Expect(e.g.RunUntilDone(ctx, 0, nil)).To(Succeed(), func() string { return e.hostLog() })
}

// watchOnce is a case in which the guest watches n bytes at e.buf+off
// with DRi and one access, emitted by access, hits them once: the #DB
// comes after it.
func watchOnce(name string, i int, rw uint64, n int, off uint64, access func(p *guest.Program, w uint64)) tcase {
	return tcase{name: name, fn: func(ctx SpecContext, e *env) {
		w := e.buf + off
		drs := []any{uint64(0), uint64(0), uint64(0), uint64(0)}
		drs[i] = w
		e.arm(dr7Enable(i, false)|dr7Cond(i, rw, n), drs...)
		access(e.p, w)
		after := e.p.Here()
		e.disarm()
		e.checkDB(rec{after, dr6Fixed | 1<<i})
		e.finish(ctx)
	}}
}

func guestCases() []tcase {
	var cs []tcase
	for i := 0; i < 4; i++ {
		cs = append(cs, tcase{name: fmt.Sprintf("execute breakpoint DR%d", i), fn: func(ctx SpecContext, e *env) {
			p := e.p
			target := p.NewLabel()
			drs := make([]any, i+1)
			for j := range drs {
				drs[j] = uint64(0)
			}
			drs[i] = target
			e.arm(dr7Enable(i, false), drs...)
			p.Nop()
			p.Bind(target)
			p.Nop()
			e.disarm()
			e.checkDB(rec{target, dr6Fixed | 1<<i})
			e.finish(ctx)
		}})
	}
	for i := 0; i < 4; i++ {
		cs = append(cs, tcase{name: fmt.Sprintf("write watchpoint DR%d", i), fn: func(ctx SpecContext, e *env) {
			p := e.p
			w := e.buf + 32
			drs := make([]any, i+1)
			for j := range drs {
				drs[j] = uint64(0)
			}
			drs[i] = w
			e.arm(dr7Enable(i, false)|dr7Cond(i, rwWrite, 4), drs...)
			p.MovAbs(asm.RDI, w)
			p.Mov(asm.EAX, asm.D(asm.RDI, 0)) // a read: not a write watchpoint's
			p.Mov(asm.D(asm.RDI, 4), asm.Imm(1))
			p.Mov(asm.D(asm.RDI, 0), asm.Imm(0x1234))
			after := p.Here()
			e.disarm()
			e.checkDB(rec{after, dr6Fixed | 1<<i})
			e.finish(ctx)
			Expect(e.g.Read64(w)).To(Equal(uint64(1)<<32|0x1234), "the write completed before the trap")
		}})
	}
	cs = append(cs,
		watchOnce("read/write watchpoint on a read", 1, rwRW, 8, 64, func(p *guest.Program, w uint64) {
			p.MovAbs(asm.RDI, w+4)
			p.Movzx(asm.EAX, asm.B(asm.RDI, 0))
		}),
		tcase{name: "rep stosb traps after each iteration that writes the watched bytes", fn: func(ctx SpecContext, e *env) {
			p := e.p
			w := e.buf + 34
			e.arm(dr7Enable(0, false)|dr7Cond(0, rwWrite, 2), w)
			p.MovAbs(asm.RDI, e.buf+32)
			p.Mov(asm.ECX, asm.Imm(8))
			p.Mov(asm.EAX, asm.Imm(0x5a))
			stos := p.Here()
			p.Rep().Stosb()
			p.AssertEq(asm.RCX, asm.Imm(0), "RCX after rep stosb")
			e.disarm()
			// Two iterations write the watched word; more remain after
			// each, so the trap's RIP is the string instruction itself.
			e.checkDB(rec{stos, dr6Fixed | 1}, rec{stos, dr6Fixed | 1})
			e.finish(ctx)
			Expect(e.g.Read64(e.buf + 32)).To(Equal(uint64(0x5a5a5a5a5a5a5a5a)))
		}},
		watchOnce("locked read-modify-write", 2, rwWrite, 4, 96, func(p *guest.Program, w uint64) {
			p.MovAbs(asm.RDI, w)
			p.Mov(asm.EAX, asm.Imm(5))
			p.Lock().Xadd(asm.D(asm.RDI, 0), asm.EAX)
		}),
		watchOnce("misaligned write straddling the watched range", 3, rwWrite, 8, 128, func(p *guest.Program, w uint64) {
			p.MovAbs(asm.RDI, w-3)
			p.MovAbs(asm.RAX, 0x1122334455667788)
			p.Mov(asm.Q(asm.RDI, 0), asm.RAX)
		}),
		tcase{name: "push onto a watched stack slot", fn: func(ctx SpecContext, e *env) {
			p := e.p
			p.Lea(asm.RAX, asm.Q(asm.RSP, -8))
			e.arm(dr7Enable(0, false)|dr7Cond(0, rwWrite, 8), asm.RAX)
			p.Push(asm.Imm(7))
			after := p.Here()
			p.Pop(asm.RAX)
			e.disarm()
			e.checkDB(rec{after, dr6Fixed | 1})
			e.finish(ctx)
		}},
		tcase{name: "call and ret through a watched stack slot", fn: func(ctx SpecContext, e *env) {
			p := e.p
			fn, back, over := p.NewLabel(), p.NewLabel(), p.NewLabel()
			p.Lea(asm.RAX, asm.Q(asm.RSP, -8))
			e.arm(dr7Enable(1, false)|dr7Cond(1, rwRW, 8), uint64(0), asm.RAX)
			p.Call(fn)
			p.Bind(back)
			p.Jmp(over)
			p.Bind(fn)
			p.Ret()
			p.Bind(over)
			e.disarm()
			// The call writes the slot (trap at the callee), the ret reads it.
			e.checkDB(rec{fn, dr6Fixed | 1<<1}, rec{back, dr6Fixed | 1<<1})
			e.finish(ctx)
		}},
		tcase{name: "TF single-step reports every instruction", fn: func(ctx SpecContext, e *env) {
			p := e.p
			p.Pushfq()
			p.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
			p.Popfq() // TF was clear before: no trap after this one
			p.Nop()
			s2 := p.Here()
			p.Xor(asm.EAX, asm.EAX)
			s3 := p.Here()
			p.Mov(asm.EBX, asm.Imm(5))
			s4 := p.Here()
			p.Pushfq()
			s5 := p.Here()
			p.And(asm.Q(asm.RSP, 0), asm.Imm(^int64(hv.FlagTF)))
			s6 := p.Here()
			p.Popfq() // TF was set before: a trap after it
			end := p.Here()
			step := uint64(dr6Fixed | dr6BS)
			e.checkDB(rec{s2, step}, rec{s3, step}, rec{s4, step}, rec{s5, step}, rec{s6, step}, rec{end, step})
			e.finish(ctx)
		}},
		tcase{name: "int3 in a loop", fn: func(ctx SpecContext, e *env) {
			p := e.p
			const n = 5
			p.Mov(asm.R12D, asm.Imm(n))
			loop := p.Here()
			p.Int3()
			after := p.Here()
			p.Dec(asm.R12D)
			p.Jcc(asm.CondNZ, loop)
			p.Mov(asm.EAX, p.InterruptCount(3))
			p.AssertEq(asm.RAX, asm.Imm(n), "#BP count")
			p.MovLabel(asm.RBX, after)
			for i := 0; i < n; i++ {
				p.MovAbs(asm.RDX, e.log+bpLog+16*uint64(i))
				p.Mov(asm.RAX, asm.Q(asm.RDX, 0))
				p.AssertEq(asm.RAX, asm.RBX, fmt.Sprintf("saved RIP of #BP %d (after the int3)", i+1))
			}
			e.finish(ctx)
		}},
		tcase{name: "icebp raises #DB after itself", fn: func(ctx SpecContext, e *env) {
			p := e.p
			p.Int1()
			after := p.Here()
			e.checkDB(rec{rip: after})
			e.finish(ctx)
		}},
		tcase{name: "mov to DR7 with bits 63:32 set raises #GP", cpl0Only: true, fn: func(ctx SpecContext, e *env) {
			p := e.p
			fix := p.NewLabel()
			p.ExpectException(fix)
			p.MovAbs(asm.RAX, 1<<32|dr7Fixed)
			at := p.Here()
			p.MovToDR(asm.DR7, asm.RAX)
			p.Fail("mov to DR7 with bit 32 set did not fault")
			p.Bind(fix)
			p.Mov(asm.RAX, asm.Q(asm.R15, guest.ExcVector))
			p.AssertEq(asm.RAX, asm.Imm(13), "vector")
			p.Mov(asm.RAX, asm.Q(asm.R15, guest.ExcRIP))
			p.MovLabel(asm.RBX, at)
			p.AssertEq(asm.RAX, asm.RBX, "RIP of the #GP")
			p.MovFromDR(asm.RAX, asm.DR7)
			p.AssertEq(asm.RAX, asm.Imm(dr7Fixed), "DR7 unchanged")
			e.finish(ctx)
		}},
		tcase{name: "general detect faults on a debug register access", cpl0Only: true, fn: func(ctx SpecContext, e *env) {
			p := e.p
			e.arm(dr7GD)
			at := p.Here()
			p.MovFromDR(asm.RAX, asm.DR0)
			// The #DB cleared GD so its handler can use the registers;
			// the access then ran.
			p.MovFromDR(asm.RAX, asm.DR7)
			p.AssertEq(asm.RAX, asm.Imm(dr7Fixed), "DR7 after general detect (GD cleared)")
			e.checkDB(rec{at, dr6Fixed | dr6BD})
			e.finish(ctx)
		}},
	)
	// Every execute breakpoint with every watchpoint in another register
	// (x86 shares DR0-DR3 between the two kinds, so 4×3 pairs).
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			if i == j {
				continue
			}
			cs = append(cs, tcase{name: fmt.Sprintf("execute breakpoint DR%d with write watchpoint DR%d", i, j), fn: func(ctx SpecContext, e *env) {
				p := e.p
				target := p.NewLabel()
				w := e.buf + 256
				drs := []any{uint64(0), uint64(0), uint64(0), uint64(0)}
				drs[i], drs[j] = target, w
				e.arm(dr7Enable(i, false)|dr7Enable(j, true)|dr7Cond(j, rwWrite, 8), drs...)
				p.MovAbs(asm.RDI, w)
				p.Bind(target)
				p.Mov(asm.Q(asm.RDI, 0), asm.RDI)
				after := p.Here()
				p.Nop()
				e.disarm()
				e.checkDB(rec{target, dr6Fixed | 1<<i}, rec{after, dr6Fixed | 1<<j})
				e.finish(ctx)
			}})
		}
	}
	return cs
}
