package emu

import (
	"context"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// runBench runs a guest loop of iters iterations and reports rates.
func runBench(b *testing.B, code []byte, perIter float64, unit string) {
	runBenchArmed(b, code, perIter, unit, nil)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Debug registers armed away from the benchmark loops: an execute
// breakpoint on code the loop never runs, a write watchpoint on a page it
// never touches. They must cost the loops little (issue 10: within 10%).
var (
	armedExec  = &hv.DebugRegs{DB: [4]uint64{codeGPA + 0x10000}, DR6: dr6Fixed, DR7: dr7Fixed | 1}
	armedWatch = &hv.DebugRegs{DB: [4]uint64{0, dataGPA + 0x80000}, DR6: dr6Fixed, DR7: dr7Fixed | 1<<2 | (1|3<<2)<<20}
)

// runBenchArmed is runBench with the guest's debug registers set to dr
// (nil: none armed).
func runBenchArmed(b *testing.B, code []byte, perIter float64, unit string, dr *hv.DebugRegs) {
	g := newTestGuest(b, New(Options{}), guestOpt{}, code)
	if dr != nil {
		if err := g.vcpu.SetDebugRegs(dr); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	var insns uint64
	for i := 0; i < b.N; i++ {
		g.setup(b, g.vcpu, codeGPA)
		if e, err := g.vcpu.Run(ctx); err != nil || e.Kind() != hv.ExitIO {
			b.Fatalf("exit %v, %v", e, err)
		}
	}
	el, cpu := time.Since(start).Seconds(), (cpuTime(b) - cpu0).Seconds()
	if dr != nil {
		if got, _ := g.vcpu.DebugRegs(); got.DR7 != dr.DR7 {
			b.Fatalf("DR7 %#x after the runs, want %#x armed", got.DR7, dr.DR7)
		}
	}
	st, _ := g.vcpu.Stats()
	insns, _ = st.Get("instructions")
	b.ReportMetric(float64(insns)/el/1e6, "Minsn/s")
	// Per second of process CPU time: less at the mercy of other load on
	// a shared machine than wall time.
	b.ReportMetric(float64(insns)/cpu/1e6, "Minsn/cpu-s")
	b.ReportMetric(float64(b.N)*perIter/el/1e6, unit)
}

const benchIters = 1 << 20

// registerLoop emits the register-only loop: benchIters iterations of 7
// instructions (one branch), after three setup instructions.
func registerLoop(a *asm.Assembler) {
	a.Mov(asm.ECX, asm.Imm(benchIters))
	a.Xor(asm.EAX, asm.EAX)
	a.Mov(asm.EBX, asm.Imm(3))
	l := a.Here()
	a.Add(asm.RAX, asm.RBX)
	a.Xor(asm.RDX, asm.RAX)
	a.Shl(asm.RDX, asm.Imm(1))
	a.Sub(asm.RBX, asm.RDX)
	a.Imul(asm.RSI, asm.RAX)
	a.Dec(asm.ECX)
	a.Jcc(asm.CondNZ, l)
}

// registerProgram is the register loop (7 instructions per iteration)
// ending with the done exit.
func registerProgram(b *testing.B) []byte {
	return assemble(b, func(a *asm.Assembler) {
		registerLoop(a)
		done(a)
	})
}

// memoryProgram is loads and stores over 64 pages of mapped memory (4
// memory accesses per 6-instruction iteration).
func memoryProgram(b *testing.B) []byte {
	return assemble(b, func(a *asm.Assembler) {
		a.Mov(asm.ECX, asm.Imm(benchIters))
		a.Mov(asm.RSI, asm.Imm(dataGPA))
		l := a.Here()
		a.Mov(asm.EDI, asm.ECX)
		a.And(asm.EDI, asm.Imm(0x3fff8)) // 256 KiB window = 64 pages
		a.Mov(asm.RAX, asm.Q(asm.RSI, 0).Idx(asm.RDI, 1))
		a.Add(asm.Q(asm.RSI, 8).Idx(asm.RDI, 1), asm.RAX) // load + store
		a.Mov(asm.Q(asm.RSI, 16).Idx(asm.RDI, 1), asm.RCX)
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		done(a)
	})
}

func BenchmarkRegisterLoop(b *testing.B) {
	runBench(b, registerProgram(b), benchIters*7, "Minsn/s-loop")
}

func BenchmarkMemoryLoop(b *testing.B) {
	runBench(b, memoryProgram(b), benchIters*4, "Maccess/s")
}

// The loops with one breakpoint armed where they never go.

func BenchmarkRegisterLoopExecBPElsewhere(b *testing.B) {
	runBenchArmed(b, registerProgram(b), benchIters*7, "Minsn/s-loop", armedExec)
}

func BenchmarkRegisterLoopWatchElsewhere(b *testing.B) {
	runBenchArmed(b, registerProgram(b), benchIters*7, "Minsn/s-loop", armedWatch)
}

func BenchmarkMemoryLoopExecBPElsewhere(b *testing.B) {
	runBenchArmed(b, memoryProgram(b), benchIters*4, "Maccess/s", armedExec)
}

func BenchmarkMemoryLoopWatchElsewhere(b *testing.B) {
	runBenchArmed(b, memoryProgram(b), benchIters*4, "Maccess/s", armedWatch)
}
