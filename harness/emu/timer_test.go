package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
)

// Deterministic time (Options.Time = TimeInstructions): the TSC, the APIC
// timer and the PMU's cycles are one clock of retired instructions.

const timerVector = 0x40

var detOpts = Options{Time: TimeInstructions}

// rdtsc64 leaves the whole TSC in RAX.
func rdtsc64(a *asm.Assembler) {
	a.Rdtsc()
	a.Shl(asm.RDX, asm.Imm(32))
	a.Or(asm.RAX, asm.RDX)
}

// apicGuest is a test guest with an irqchip, its APIC page mapped (RDI
// points at it) and software-enabled by the program's first instructions.
func apicGuest(t *testing.T, opt Options, build func(a *asm.Assembler)) *testGuest {
	t.Helper()
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EDI, asm.Imm(apicDefault))
		a.Mov(asm.D(asm.RDI, lapic.RegSVR), asm.Imm(lapic.SVREnable|0xff))
		build(a)
	})
	g := newTestGuest(t, New(opt), guestOpt{cfg: hv.VMConfig{IRQChip: true}}, code)
	put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87) // 1 GiB page over the APIC
	return g
}

// TestDeterministicTSC: RDTSC counts retired instructions, the same on
// every run.
func TestDeterministicTSC(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		rdtsc64(a)
		a.Mov(asm.RSI, asm.RAX)
		a.Mov(asm.ECX, asm.Imm(1000))
		l := a.Here()
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		rdtsc64(a)
		a.Sub(asm.RAX, asm.RSI)
		done(a)
	})
	var first hv.Regs
	for run := 0; run < 2; run++ {
		g := newTestGuest(t, New(detOpts), guestOpt{}, code)
		r := g.runDone(t)
		// From the first RDTSC to the second: 3 + 2 (mov, mov) + 2000 (loop).
		if want := uint64(3 + 2 + 2000); r.RAX != want {
			t.Fatalf("run %d: TSC delta %d, want %d instructions", run, r.RAX, want)
		}
		if run == 0 {
			first = r
		} else if r.RSI != first.RSI {
			t.Fatalf("TSC at the first RDTSC: %d, then %d", first.RSI, r.RSI)
		}
	}
}

// TestTSCMatchesPMUCycles: the TSC and the PMU's unhalted core cycles
// (fixed counter 1) advance together.
func TestTSCMatchesPMUCycles(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.ECX, asm.Imm(hv.MSRFixedCtrCtrl))
		a.Mov(asm.EAX, asm.Imm(int64(hv.FixedCtrOS|hv.FixedCtrUSR)<<hv.FixedCtrBits))
		a.Xor(asm.EDX, asm.EDX)
		a.Wrmsr()
		a.Mov(asm.ECX, asm.Imm(hv.MSRPerfGlobalCtrl))
		a.Xor(asm.EAX, asm.EAX)
		a.Mov(asm.EDX, asm.Imm(int64(hv.PerfGlobalFixed0<<1>>32)))
		a.Wrmsr()
		sample := func(tsc, cyc asm.Reg) {
			rdtsc64(a)
			a.Mov(tsc, asm.RAX)
			a.Mov(asm.ECX, asm.Imm(int64(hv.RDPMCFixed|1)))
			a.Rdpmc()
			a.Shl(asm.RDX, asm.Imm(32))
			a.Or(asm.RAX, asm.RDX)
			a.Mov(cyc, asm.RAX)
		}
		sample(asm.R8, asm.R9)
		a.Mov(asm.ECX, asm.Imm(500))
		l := a.Here()
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		sample(asm.R10, asm.R11)
		done(a)
	})
	g := newTestGuest(t, New(detOpts), guestOpt{}, code)
	r := g.runDone(t)
	tsc, cyc := r.R10-r.R8, r.R11-r.R9
	if tsc != cyc || tsc < 1000 {
		t.Fatalf("TSC advanced %d, core cycles %d: want equal (and at least the loop's 1000)", tsc, cyc)
	}
}

// armTimer emits the LVT timer entry and divide configuration, then
// the initial count: the timer starts when that last MOV retires.
func armTimer(a *asm.Assembler, lvt uint32, div uint32, count uint32) {
	a.Mov(asm.D(asm.RDI, lapic.RegLVT0), asm.Imm(int64(lvt)))
	a.Mov(asm.D(asm.RDI, lapic.RegTDiv), asm.Imm(int64(div)))
	a.Mov(asm.D(asm.RDI, lapic.RegTInit), asm.Imm(int64(count)))
}

const divBy1 = 0xb // divide configuration 1011b

// TestAPICTimerCounts: the current count falls by one per instruction at
// divide-by-1, and the interrupt comes after exactly the initial count.
func TestAPICTimerCounts(t *testing.T) {
	g := apicGuest(t, detOpts, func(a *asm.Assembler) {
		a.Sti()
		a.Xor(asm.EBX, asm.EBX)
		armTimer(a, timerVector, divBy1, 1000)
		a.Mov(asm.EDX, asm.D(asm.RDI, lapic.RegTCur)) // at the start: 1000
		for i := 0; i < 10; i++ {
			a.Nop()
		}
		a.Mov(asm.ECX, asm.D(asm.RDI, lapic.RegTCur)) // 11 instructions later
		l := a.Here()
		a.Inc(asm.EBX)
		a.Jmp(l)
	})
	io := g.runIO(t)
	if io.Port != portExc || io.Value()&0xff != timerVector {
		t.Fatalf("exit %v, want the timer interrupt (vector %#x)", io, timerVector)
	}
	r, _ := g.vcpu.Regs()
	if r.RDX != 1000 || r.RCX != 989 {
		t.Fatalf("current count %d then %d, want 1000 then 989", r.RDX, r.RCX)
	}
	// 1000 instructions after the start: the two reads, ten NOPs, then
	// the loop's pairs.
	if want := uint64((1000 - 12) / 2); r.RBX != want {
		t.Fatalf("%d loop iterations before the interrupt, want %d", r.RBX, want)
	}
}

// TestAPICTimerHaltSkips: HLT waiting for the timer jumps to its
// deadline (a count no interpreter could run through in the test's
// time), and the TSC shows the jump.
func TestAPICTimerHaltSkips(t *testing.T) {
	const count, div = 0xffffffff, 128
	g := apicGuest(t, detOpts, func(a *asm.Assembler) {
		a.Sti()
		a.Mov(asm.D(asm.RDI, lapic.RegLVT0), asm.Imm(timerVector))
		a.Mov(asm.D(asm.RDI, lapic.RegTDiv), asm.Imm(0xa)) // 1010b: divide by 128
		rdtsc64(a)
		a.Mov(asm.RSI, asm.RAX)
		a.Mov(asm.D(asm.RDI, lapic.RegTInit), asm.Imm(count))
		a.Hlt()
		done(a)
	})
	// The timer's stub: the TSC into RAX, then the report.
	copy(g.mem.Bytes()[stubGPA+16*timerVector:], assemble(t, func(a *asm.Assembler) {
		rdtsc64(a)
		a.Out(asm.Imm(portExc), asm.AL)
	}))
	if c := assemble(t, func(a *asm.Assembler) { rdtsc64(a); a.Out(asm.Imm(portExc), asm.AL) }); len(c) > 16 {
		t.Fatalf("timer stub of %d bytes overruns its 16", len(c))
	}
	io := g.runIO(t)
	if io.Port != portExc {
		t.Fatalf("exit %v, want the timer interrupt", io)
	}
	r, _ := g.vcpu.Regs()
	// From the RDTSC (3 instructions with its combine) and the MOV to
	// RSI, the MOV that starts the timer retires at +5; the deadline is
	// count*div after that, when the handler's RDTSC reads.
	if got, want := r.RAX-r.RSI, uint64(5+count*div); got != want {
		t.Fatalf("TSC advanced %d over the halt, want %d", got, want)
	}
}

// TestAPICTimerPeriodic: a periodic timer interrupts every count*div
// instructions.
func TestAPICTimerPeriodic(t *testing.T) {
	g := apicGuest(t, detOpts, func(a *asm.Assembler) {
		a.Sti()
		a.Xor(asm.EBX, asm.EBX)
		armTimer(a, timerVector|lvtTimerPeriodic, 0x0 /* divide by 2 */, 100)
		l := a.Here()
		a.Inc(asm.EBX)
		a.Jmp(l)
	})
	io := g.runIO(t)
	if io.Port != portExc {
		t.Fatalf("exit %v, want the timer interrupt", io)
	}
	r, _ := g.vcpu.Regs()
	if r.RBX != 100 { // 200 cycles of two-instruction iterations
		t.Fatalf("%d iterations before the first period ended, want 100", r.RBX)
	}
	if tc := g.vcpu.(*VCPU).c.clk.timer; !tc.armed || tc.deadline-tc.start != 200 {
		t.Fatalf("timer after the first period %+v, want re-armed for 200 cycles", tc)
	}
}

// TestAPICTimerHostTime: without TimeInstructions the timer is not
// modelled, as before: it never fires and its current count reads 0.
func TestAPICTimerHostTime(t *testing.T) {
	g := apicGuest(t, Options{}, func(a *asm.Assembler) {
		a.Sti()
		armTimer(a, timerVector, divBy1, 10)
		a.Mov(asm.ECX, asm.Imm(100))
		l := a.Here()
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		a.Mov(asm.EAX, asm.D(asm.RDI, lapic.RegTCur))
		done(a)
	})
	if r := g.runDone(t); r.RAX&0xffffffff != 0 {
		t.Fatalf("current count %d under host time, want 0 (no timer)", r.RAX)
	}
}

func TestTimerDivide(t *testing.T) {
	for code, want := range map[uint32]uint64{0x0: 2, 0x1: 4, 0x2: 8, 0x3: 16, 0x8: 32, 0x9: 64, 0xa: 128, 0xb: 1} {
		if got := timerDivide(code); got != want {
			t.Errorf("divide configuration %#x: %d, want %d", code, got, want)
		}
	}
}
