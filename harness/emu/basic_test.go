package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

func TestBasicProgram(t *testing.T) {
	for _, user := range []bool{false, true} {
		code := assemble(t, func(a *asm.Assembler) {
			a.Mov(asm.RAX, asm.Imm(5))
			a.Mov(asm.RBX, asm.Imm(7))
			a.Add(asm.RAX, asm.RBX)
			a.Mov(asm.RCX, asm.Imm(10))
			loop := a.Here()
			a.Add(asm.RDX, asm.RCX)
			a.Dec(asm.RCX)
			a.Jcc(asm.CondNZ, loop)
			a.Push(asm.RAX)
			a.Pop(asm.RSI)
			a.Mov(asm.Q(asm.RSP, -64), asm.RSI)
			a.Mov(asm.RDI, asm.Q(asm.RSP, -64))
			done(a)
		})
		g := newTestGuest(t, newEmu(t), guestOpt{user: user}, code)
		r := g.runDone(t)
		if r.RAX != 12 || r.RDX != 55 || r.RSI != 12 || r.RDI != 12 {
			t.Fatalf("user=%v: regs %v", user, r)
		}
	}
}

func TestHalt(t *testing.T) {
	g := newTestGuest(t, newEmu(t), guestOpt{}, []byte{0xf4})
	e := g.run(t)
	if e.Kind() != hv.ExitHalt {
		t.Fatalf("exit %v", e)
	}
	r, _ := g.vcpu.Regs()
	if r.RIP != codeGPA+1 {
		t.Fatalf("rip %#x after hlt", r.RIP)
	}
}
