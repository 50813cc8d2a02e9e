package emu

import (
	"context"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// runBench runs a guest loop of iters iterations and reports rates.
func runBench(b *testing.B, code []byte, perIter float64, unit string) {
	g := newTestGuest(b, New(Options{}), guestOpt{}, code)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	var insns uint64
	for i := 0; i < b.N; i++ {
		g.setup(b, g.vcpu, codeGPA)
		if e, err := g.vcpu.Run(ctx); err != nil || e.Kind() != hv.ExitIO {
			b.Fatalf("exit %v, %v", e, err)
		}
	}
	el := time.Since(start).Seconds()
	st, _ := g.vcpu.Stats()
	insns, _ = st.Get("instructions")
	b.ReportMetric(float64(insns)/el/1e6, "Minsn/s")
	b.ReportMetric(float64(b.N)*perIter/el/1e6, unit)
}

const benchIters = 1 << 20

// BenchmarkRegisterLoop: a register-only arithmetic loop (7 instructions
// per iteration).
func BenchmarkRegisterLoop(b *testing.B) {
	code := assemble(b, func(a *asm.Assembler) {
		registerLoop(a)
		done(a)
	})
	runBench(b, code, benchIters*7, "Minsn/s-loop")
}

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

// BenchmarkMemoryLoop: loads and stores over 64 pages of mapped memory
// (4 memory accesses per 6-instruction iteration).
func BenchmarkMemoryLoop(b *testing.B) {
	code := assemble(b, func(a *asm.Assembler) {
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
	runBench(b, code, benchIters*4, "Maccess/s")
}
