package asm_test

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// TestEncodeForms emits every generated form alone and checks that x86asm
// decodes it to exactly the requested instruction: op, operands, memory
// size, prefixes and, where the form pins it, length.
func TestEncodeForms(t *testing.T) {
	cases := allCases()
	t.Logf("%d forms", len(cases))
	failed := 0
	for i := range cases {
		c := &cases[i]
		if _, err := runCase(c, 0x40_0000); err != nil {
			t.Errorf("%s: %v", c.name, err)
			if failed++; failed > 30 {
				t.Fatal("too many failures")
			}
		}
	}
}

// TestEncodingChoices pins the exact bytes where several encodings exist,
// so that "shortest standard encoding" and "what executes is what was
// written" are checked directly rather than through a decoder.
func TestEncodingChoices(t *testing.T) {
	for _, c := range []struct {
		name string
		emit func(a *asm.Assembler)
		hex  string
	}{
		{"alu imm8 sign-extended", func(a *asm.Assembler) { a.Add(asm.RAX, asm.Imm(1)) }, "4883c001"},
		{"alu accumulator imm32", func(a *asm.Assembler) { a.Add(asm.EAX, asm.Imm(1000)) }, "05e8030000"},
		{"alu imm32", func(a *asm.Assembler) { a.Add(asm.ECX, asm.Imm(1000)) }, "81c1e8030000"},
		{"alu al imm8", func(a *asm.Assembler) { a.Add(asm.AL, asm.Imm(1)) }, "0401"},
		{"alu r8 imm8", func(a *asm.Assembler) { a.Add(asm.CL, asm.Imm(-1)) }, "80c1ff"},
		{"alu ax imm16", func(a *asm.Assembler) { a.Add(asm.AX, asm.Imm(1000)) }, "6605e803"},
		{"alu 0xffffffff is imm8 -1 at 32 bits", func(a *asm.Assembler) { a.Sub(asm.EAX, asm.Imm(0xFFFFFFFF)) }, "83e8ff"},
		{"alu reg,reg uses the r/m,reg opcode", func(a *asm.Assembler) { a.Xor(asm.EAX, asm.EAX) }, "31c0"},
		{"alu reg,mem", func(a *asm.Assembler) { a.Cmp(asm.R9, asm.Q(asm.RSP, 8)) }, "4c3b4c2408"},
		{"mov r64 imm32 sign-extended", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Imm(-1)) }, "48c7c0ffffffff"},
		{"mov r64 zero-extended 32-bit value stays 64-bit", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Imm(0xFFFFFFFF)) }, "48b8ffffffff00000000"},
		{"mov r32 imm32", func(a *asm.Assembler) { a.Mov(asm.R9D, asm.Imm(1)) }, "41b901000000"},
		{"mov r16 imm16", func(a *asm.Assembler) { a.Mov(asm.AX, asm.Imm(-1)) }, "66b8ffff"},
		{"mov r8 imm8 needs REX.B", func(a *asm.Assembler) { a.Mov(asm.R8B, asm.Imm(1)) }, "41b001"},
		{"mov sil needs REX", func(a *asm.Assembler) { a.Mov(asm.SIL, asm.Imm(1)) }, "40b601"},
		{"mov spl,al needs REX", func(a *asm.Assembler) { a.Mov(asm.SPL, asm.AL) }, "4088c4"},
		{"mov m64 imm32", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RAX, 0), asm.Imm(-2)) }, "48c700feffffff"},
		{"movabs", func(a *asm.Assembler) { a.MovAbs(asm.R15, 1) }, "49bf0100000000000000"},
		{"rsp base needs SIB", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RSP, 0), asm.RAX) }, "48890424"},
		{"r12 base needs SIB", func(a *asm.Assembler) { a.Mov(asm.Q(asm.R12, 0), asm.RAX) }, "49890424"},
		{"rbp base needs disp8 0", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RBP, 0), asm.RAX) }, "48894500"},
		{"r13 base needs disp8 0", func(a *asm.Assembler) { a.Mov(asm.Q(asm.R13, 0), asm.RAX) }, "49894500"},
		{"disp8 127", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.D(asm.RBX, 127)) }, "8b437f"},
		{"disp32 128", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.D(asm.RBX, 128)) }, "8b8380000000"},
		{"disp8 -128", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.D(asm.RBX, -128)) }, "8b4380"},
		{"disp32 -129", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.D(asm.RBX, -129)) }, "8b837fffffff"},
		{"r12 index", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Q(asm.RAX, 0).Idx(asm.R12, 8)) }, "4a8b04e0"},
		{"index without base", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.Mem{Index: asm.RCX, Scale: 4, Disp: 16}) }, "8b048d10000000"},
		{"absolute via SIB", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Abs(8, 0x1000)) }, "488b042500100000"},
		{"test accumulator", func(a *asm.Assembler) { a.Test(asm.EAX, asm.Imm(1)) }, "a901000000"},
		{"test has no imm8 form", func(a *asm.Assembler) { a.Test(asm.ECX, asm.Imm(1)) }, "f7c101000000"},
		{"test al", func(a *asm.Assembler) { a.Test(asm.AL, asm.Imm(1)) }, "a801"},
		{"test reg,mem is test mem,reg", func(a *asm.Assembler) { a.Test(asm.RAX, asm.Q(asm.RDI, 0)) }, "488507"},
		{"shift by 1 short form", func(a *asm.Assembler) { a.Shl(asm.EAX, asm.Imm(1)) }, "d1e0"},
		{"shift by imm8", func(a *asm.Assembler) { a.Shl(asm.EAX, asm.Imm(2)) }, "c1e002"},
		{"shift by cl", func(a *asm.Assembler) { a.Sar(asm.RDX, asm.CL) }, "48d3fa"},
		{"xchg accumulator short form", func(a *asm.Assembler) { a.Xchg(asm.RAX, asm.RCX) }, "4891"},
		{"xchg r8,rax short form", func(a *asm.Assembler) { a.Xchg(asm.R8, asm.RAX) }, "4990"},
		{"xchg eax,eax is not NOP", func(a *asm.Assembler) { a.Xchg(asm.EAX, asm.EAX) }, "87c0"},
		{"xchg with memory", func(a *asm.Assembler) { a.Xchg(asm.RAX, asm.Q(asm.RSI, 0)) }, "488706"},
		{"push imm8", func(a *asm.Assembler) { a.Push(asm.Imm(-1)) }, "6aff"},
		{"push imm32", func(a *asm.Assembler) { a.Push(asm.Imm(1000)) }, "68e8030000"},
		{"push r8", func(a *asm.Assembler) { a.Push(asm.R8) }, "4150"},
		{"push m64 without REX.W", func(a *asm.Assembler) { a.Push(asm.Mem{Base: asm.RAX}) }, "ff30"},
		{"pop m16", func(a *asm.Assembler) { a.Pop(asm.W(asm.RAX, 0)) }, "668f00"},
		{"imul3 imm8", func(a *asm.Assembler) { a.Imul3(asm.EAX, asm.ECX, 5) }, "6bc105"},
		{"imul3 imm32", func(a *asm.Assembler) { a.Imul3(asm.EAX, asm.ECX, 500) }, "69c1f4010000"},
		{"lock after operand size", func(a *asm.Assembler) { a.Lock().Add(asm.W(asm.RDI, 0), asm.Imm(1)) }, "66f0830701"},
		{"lock cmpxchg", func(a *asm.Assembler) { a.Lock().Cmpxchg(asm.Q(asm.RDI, 0), asm.RCX) }, "f0480fb10f"},
		{"rep stosq", func(a *asm.Assembler) { a.RepStosq() }, "f348ab"},
		{"rep stosw: operand size then rep", func(a *asm.Assembler) { a.Rep().Stosw() }, "66f3ab"},
		{"repne scasb", func(a *asm.Assembler) { a.RepneScasb() }, "f2ae"},
		{"repe cmpsb", func(a *asm.Assembler) { a.RepeCmpsb() }, "f3a6"},
		{"rep movsb", func(a *asm.Assembler) { a.RepMovsb() }, "f3a4"},
		{"pause", func(a *asm.Assembler) { a.Pause() }, "f390"},
		{"iretq", func(a *asm.Assembler) { a.Iretq() }, "48cf"},
		{"vmcall", func(a *asm.Assembler) { a.Vmcall() }, "0f01c1"},
		{"mov cr8 needs REX.R", func(a *asm.Assembler) { a.MovToCR(asm.CR8, asm.RAX) }, "440f22c0"},
		{"mov from dr7 to r9", func(a *asm.Assembler) { a.MovFromDR(asm.R9, asm.DR7) }, "410f21f9"},
		{"ltr without operand-size prefix", func(a *asm.Assembler) { a.Ltr(asm.AX) }, "0f00d8"},
		{"lidt", func(a *asm.Assembler) { a.Lidt(asm.Mem{Base: asm.RDI}) }, "0f011f"},
		{"in al, imm8", func(a *asm.Assembler) { a.In(asm.AL, asm.Imm(0x80)) }, "e480"},
		{"out dx, ax", func(a *asm.Assembler) { a.Out(asm.DX, asm.AX) }, "66ef"},
		{"int3 vs int 3", func(a *asm.Assembler) { a.Int3(); a.Int(3) }, "cccd03"},
		{"setcc sil", func(a *asm.Assembler) { a.Setcc(asm.CondE, asm.SIL) }, "400f94c6"},
		{"movzx byte mem", func(a *asm.Assembler) { a.Movzx(asm.EAX, asm.B(asm.RSI, 0)) }, "0fb606"},
		{"movsxd", func(a *asm.Assembler) { a.Movsxd(asm.RAX, asm.ECX) }, "4863c1"},
		{"jmp backward rel8", func(a *asm.Assembler) { a.Jmp(a.Here()) }, "ebfe"},
		{"jcc backward rel8", func(a *asm.Assembler) { a.Jcc(asm.CondNE, a.Here()) }, "75fe"},
		{"jmp forward rel32", func(a *asm.Assembler) { l := a.NewLabel(); a.Jmp(l); a.Bind(l) }, "e900000000"},
		{"jcc forward rel32", func(a *asm.Assembler) { l := a.NewLabel(); a.Jcc(asm.CondE, l); a.Bind(l) }, "0f8400000000"},
		{"jmp short forward", func(a *asm.Assembler) { l := a.NewLabel(); a.JmpShort(l); a.Bind(l) }, "eb00"},
		{"call", func(a *asm.Assembler) { a.Call(a.Here()) }, "e8fbffffff"},
		{"lea rip-relative", func(a *asm.Assembler) { a.Lea(asm.RAX, asm.Rel(0, a.Here())) }, "488d05f9ffffff"},
		{"bswap r8d", func(a *asm.Assembler) { a.Bswap(asm.R8D) }, "410fc8"},
		{"bt imm", func(a *asm.Assembler) { a.Bts(asm.D(asm.RAX, 0), asm.Imm(3)) }, "0fba2803"},
		{"cqo", func(a *asm.Assembler) { a.Cqo() }, "4899"},
	} {
		a := asm.New(0x1000)
		c.emit(a)
		code, err := a.Assemble()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := hex.EncodeToString(code); got != c.hex {
			t.Errorf("%s: encoded %s, want %s", c.name, got, c.hex)
		}
	}
}

// TestX86asmGaps checks that each instruction in the listing fallback table
// is still one x86asm cannot decode (if x86asm learns one, the emulator
// backend can drop its special case and the table its entry), and that
// Disasm names it.
func TestX86asmGaps(t *testing.T) {
	for code, name := range asm.X86asmGaps {
		b := append(code[:], 0x90)
		if inst, err := x86asm.Decode(b, 64); err == nil && inst.Op != 0 {
			t.Errorf("x86asm now decodes % x as %v: remove %q from the fallback table", code, inst, name)
		}
		lines := asm.Disasm(b, 0)
		if len(lines) != 2 || lines[0].Text != name || lines[1].Text != "nop" {
			t.Errorf("Disasm(% x) = %v, want %s then nop", b, lines, name)
		}
		if strings.ToLower(name) != name {
			t.Errorf("fallback name %q should be lower case like x86asm's Intel syntax", name)
		}
	}
}

// TestEveryMethodHasForms guards the generated table: each instruction
// method of Assembler must appear in it, so a new method cannot be added
// without decoder-checked forms.
func TestEveryMethodHasForms(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range allCases() {
		name := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(c.name, "Lock()."), "Rep()."), "Repne().")
		covered[name[:strings.IndexAny(name, "(/")]] = true
	}
	// Methods that are not instructions, or are shorthands for a prefix
	// plus a covered instruction (checked byte for byte in
	// TestEncodingChoices), or are data directives (TestLabelFixups,
	// TestListing).
	notInsn := map[string]bool{
		"NewLabel": true, "Bind": true, "Here": true, "PC": true, "Len": true, "Addr": true,
		"Assemble": true, "Err": true, "Listing": true, "SourceAt": true, "SkipCallerPackage": true,
		"Lock": true, "Rep": true, "Repne": true,
		"RepStosb": true, "RepStosq": true, "RepMovsb": true, "RepMovsq": true,
		"RepInsb": true, "RepOutsb": true, "RepeCmpsb": true, "RepneScasb": true,
		"Byte": true, "Word": true, "Long": true, "Quad": true, "QuadLabel": true, "Align": true, "Space": true,
	}
	typ := reflect.TypeOf(&asm.Assembler{})
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i).Name
		if !notInsn[m] && !covered[m] {
			t.Errorf("method %s has no generated forms", m)
		}
	}
}
