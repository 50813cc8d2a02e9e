package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// TestInstructionAcrossPages runs instructions that start in one page and
// end in the next, with every split point: x86asm decodes a cut-off
// instruction as a one-byte Op(0) without an error, which the emu once
// took for an invalid opcode (#UD on any program past 4 KiB).
func TestInstructionAcrossPages(t *testing.T) {
	forms := []struct {
		name  string
		emit  func(a *asm.Assembler)
		check func(rcx, rax uint64) bool
	}{
		{"add ecx, imm8", func(a *asm.Assembler) { a.Add(asm.ECX, asm.Imm(4)) }, func(rcx, _ uint64) bool { return rcx == 4 }},
		{"mov eax, imm32", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.Imm(0x12345678)) }, func(_, rax uint64) bool { return rax == 0x12345678 }},
		{"movabs rax, imm64", func(a *asm.Assembler) { a.MovAbs(asm.RAX, 0x1122334455667788) }, func(_, rax uint64) bool { return rax == 0x1122334455667788 }},
		{"inc rcx", func(a *asm.Assembler) { a.Inc(asm.RCX) }, func(rcx, _ uint64) bool { return rcx == 1 }},
	}
	for _, f := range forms {
		// The form's length, to place each split point exactly.
		n := len(assemble(t, f.emit))
		for cut := 1; cut < n; cut++ {
			for _, user := range []bool{false, true} {
				code := assemble(t, func(a *asm.Assembler) {
					a.Xor(asm.ECX, asm.ECX)
					a.Xor(asm.EAX, asm.EAX)
					for a.PC() < codeGPA+0x1000-uint64(cut) {
						a.Nop()
					}
					f.emit(a)
					done(a)
				})
				g := newTestGuest(t, newEmu(t), guestOpt{user: user}, code)
				r := g.runDone(t)
				if !f.check(r.RCX, r.RAX) {
					t.Errorf("%s split after byte %d (user=%v): rcx %#x rax %#x", f.name, cut, user, r.RCX, r.RAX)
				}
			}
		}
	}
}
