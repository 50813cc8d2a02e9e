package emu

import (
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// The four workload kinds of issue 16, each run to completion b.N times
// on the emu and reported as guest instructions per second (wall and
// process CPU time). Each program checks its own result, so a faster
// interpreter cannot get there by computing something else.

const (
	crcBytes = 64 << 10 // bytes the CRC-32 workload checksums
	fibN     = 24       // the recursion workload computes fib(fibN)
)

// crcProgram is a bitwise, branch-per-bit CRC-32 (IEEE, reflected) over
// crcBytes bytes at dataGPA: about 5 instructions and 2 conditional
// branches per bit, half of them taken at random.
func crcProgram(b *testing.B) []byte {
	return assemble(b, func(a *asm.Assembler) {
		a.Mov(asm.RSI, asm.Imm(dataGPA))
		a.Mov(asm.EDI, asm.Imm(crcBytes))
		a.Mov(asm.EAX, asm.Imm(-1))
		outer := a.Here()
		a.Movzx(asm.EDX, asm.B(asm.RSI, 0))
		a.Xor(asm.EAX, asm.EDX)
		a.Mov(asm.ECX, asm.Imm(8))
		bit := a.Here()
		skip := a.NewLabel()
		a.Shr(asm.EAX, asm.Imm(1))
		a.Jcc(asm.CondNC, skip)
		a.Xor(asm.EAX, asm.Imm(crc32.IEEE-1<<32)) // sign-extended imm32)
		a.Bind(skip)
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, bit)
		a.Inc(asm.RSI)
		a.Dec(asm.EDI)
		a.Jcc(asm.CondNZ, outer)
		a.Not(asm.EAX)
		done(a)
	})
}

// twoPathProgram walks the bits of crcBytes bytes at dataGPA and, per
// bit, takes one of two paths of two instructions each (TEST + JZ, then
// ADD/XOR or SUB/ADD, joined by a JMP): a branch on random data that no
// conditional-skip handler folds away, beside crcProgram's skip over one
// XOR, which the emu runs branch-free.
func twoPathProgram(b *testing.B) []byte {
	return assemble(b, func(a *asm.Assembler) {
		a.Mov(asm.RSI, asm.Imm(dataGPA))
		a.Mov(asm.EDI, asm.Imm(crcBytes))
		a.Xor(asm.EAX, asm.EAX)
		a.Xor(asm.R8D, asm.R8D)
		outer := a.Here()
		a.Movzx(asm.EDX, asm.B(asm.RSI, 0))
		a.Mov(asm.ECX, asm.Imm(8))
		bit := a.Here()
		zero, next := a.NewLabel(), a.NewLabel()
		a.Test(asm.EDX, asm.Imm(1))
		a.Jcc(asm.CondZ, zero)
		a.Add(asm.EAX, asm.ECX)
		a.Xor(asm.EAX, asm.EDI)
		a.Jmp(next)
		a.Bind(zero)
		a.Sub(asm.EAX, asm.ECX)
		a.Add(asm.R8D, asm.Imm(1))
		a.Bind(next)
		a.Shr(asm.EDX, asm.Imm(1))
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, bit)
		a.Inc(asm.RSI)
		a.Dec(asm.EDI)
		a.Jcc(asm.CondNZ, outer)
		done(a)
	})
}

// twoPath is twoPathProgram in Go: EAX and R8D at the end.
func twoPath(data []byte) (uint32, uint32) {
	var eax, zeros uint32
	for i, c := range data {
		edi := uint32(len(data) - i)
		for ecx := uint32(8); ecx > 0; ecx-- {
			if c&1 != 0 {
				eax = (eax + ecx) ^ edi
			} else {
				eax -= ecx
				zeros++
			}
			c >>= 1
		}
	}
	return eax, zeros
}

// fibProgram computes fib(fibN) by naive recursion: a call, a return,
// two pushes and pops per call.
func fibProgram(b *testing.B) []byte {
	return assemble(b, func(a *asm.Assembler) {
		fib := a.NewLabel()
		a.Mov(asm.EDI, asm.Imm(fibN))
		a.Call(fib)
		done(a)
		a.Bind(fib)
		base := a.NewLabel()
		a.Cmp(asm.RDI, asm.Imm(2))
		a.Jcc(asm.CondB, base)
		a.Push(asm.RDI)
		a.Dec(asm.RDI)
		a.Call(fib)
		a.Pop(asm.RDI)
		a.Push(asm.RAX)
		a.Sub(asm.RDI, asm.Imm(2))
		a.Call(fib)
		a.Pop(asm.RDX)
		a.Add(asm.RAX, asm.RDX)
		a.Ret()
		a.Bind(base)
		a.Mov(asm.RAX, asm.RDI)
		a.Ret()
	})
}

func fib(n uint64) uint64 {
	a, b := uint64(0), uint64(1)
	for ; n > 0; n-- {
		a, b = b, a+b
	}
	return a
}

// runWorkload runs code to its done exit b.N times, checks the final
// registers with check, and reports instructions per second.
func runWorkload(b *testing.B, code []byte, prep func(mem []byte), check func(r *hv.Regs) string) {
	g := newTestGuest(b, New(Options{}), guestOpt{}, code)
	if prep != nil {
		prep(g.mem.Bytes())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st0, _ := g.vcpu.Stats()
	insns0, _ := st0.Get("instructions")
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	for i := 0; i < b.N; i++ {
		g.setup(b, g.vcpu, codeGPA)
		e, err := g.vcpu.Run(ctx)
		if err != nil {
			b.Fatalf("Run: %v", err)
		}
		if io, ok := e.(*hv.IOExit); !ok || io.Port != portDone {
			r, _ := g.vcpu.Regs()
			b.Fatalf("exit %v, want out to port %#x; regs %v", e, portDone, r)
		}
	}
	el, cpu := time.Since(start).Seconds(), (cpuTime(b) - cpu0).Seconds()
	b.StopTimer()
	r, err := g.vcpu.Regs()
	if err != nil {
		b.Fatal(err)
	}
	if msg := check(&r); msg != "" {
		b.Fatal(msg)
	}
	st, _ := g.vcpu.Stats()
	insns, _ := st.Get("instructions")
	insns -= insns0
	b.ReportMetric(float64(insns)/el/1e6, "Minsn/s")
	b.ReportMetric(float64(insns)/cpu/1e6, "Minsn/cpu-s")
	b.ReportMetric(float64(insns)/float64(b.N), "insn/op")
}

// BenchmarkWorkload runs the four workload kinds issue 16 sets targets
// for: a register ALU loop, a memory read-modify-write loop, a branchy
// bit loop (bitwise CRC-32, and a second one whose random branch picks
// one of two paths) and call/return recursion (fib).
func BenchmarkWorkload(b *testing.B) {
	b.Run("alu-loop", func(b *testing.B) {
		runWorkload(b, registerProgram(b), nil, func(r *hv.Regs) string {
			if r.RCX != 0 {
				return "loop did not run to the end"
			}
			return ""
		})
	})
	b.Run("mem-rmw-loop", func(b *testing.B) {
		runWorkload(b, memoryProgram(b), nil, func(r *hv.Regs) string {
			if r.RCX != 0 {
				return "loop did not run to the end"
			}
			return ""
		})
	})
	data := make([]byte, crcBytes)
	rng := rand.New(rand.NewPCG(16, 16))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	b.Run("crc32-bitwise", func(b *testing.B) {
		runWorkload(b, crcProgram(b), func(mem []byte) { copy(mem[dataGPA:], data) }, func(r *hv.Regs) string {
			if want := uint64(crc32.ChecksumIEEE(data)); r.RAX != want {
				return fmt.Sprintf("crc32 %#x, want %#x", r.RAX, want)
			}
			return ""
		})
	})
	b.Run("branchy-two-path", func(b *testing.B) {
		runWorkload(b, twoPathProgram(b), func(mem []byte) { copy(mem[dataGPA:], data) }, func(r *hv.Regs) string {
			eax, zeros := twoPath(data)
			if uint32(r.RAX) != eax || uint32(r.R8) != zeros {
				return fmt.Sprintf("eax %#x r8d %d, want %#x %d", uint32(r.RAX), uint32(r.R8), eax, zeros)
			}
			return ""
		})
	})
	b.Run("recursion", func(b *testing.B) {
		runWorkload(b, fibProgram(b), nil, func(r *hv.Regs) string {
			if want := fib(fibN); r.RAX != want {
				return fmt.Sprintf("fib %d, want %d", r.RAX, want)
			}
			return ""
		})
	})
}
