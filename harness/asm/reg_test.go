package asm_test

import (
	"fmt"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
)

func TestReg(t *testing.T) {
	names := map[int][]string{
		8: {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"},
		4: {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"},
		2: {"ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"},
		1: {"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"},
	}
	first := map[int]asm.Reg{8: asm.RAX, 4: asm.EAX, 2: asm.AX, 1: asm.AL}
	last := map[int]asm.Reg{8: asm.R15, 4: asm.R15D, 2: asm.R15W, 1: asm.R15B}
	for size, ns := range names {
		for i, name := range ns {
			r := first[size] + asm.Reg(i)
			if r.Size() != size || r.Num() != i || r.String() != name {
				t.Errorf("%v: Size %d Num %d String %q, want %d %d %q", r, r.Size(), r.Num(), r.String(), size, i, name)
			}
			for other := range names {
				if got := r.As(other); got.Num() != i || got.Size() != other {
					t.Errorf("%v.As(%d) = %v", r, other, got)
				}
			}
		}
		if first[size]+15 != last[size] {
			t.Errorf("size %d registers are not contiguous", size)
		}
	}
	if asm.RAX.As(4) != asm.EAX || asm.R9.As(1) != asm.R9B || asm.SIL.As(8) != asm.RSI {
		t.Error("As does not map between widths")
	}
	for _, r := range []asm.Reg{asm.NoReg, asm.Reg(65), asm.Reg(255)} {
		if r.Size() != 0 || r.Num() != -1 || r.As(8) != asm.NoReg {
			t.Errorf("%v: Size %d Num %d As(8) %v, want 0 -1 NoReg", r, r.Size(), r.Num(), r.As(8))
		}
	}
	if asm.RAX.As(3) != asm.NoReg {
		t.Error("As(3) should be NoReg")
	}
	if asm.NoReg.String() != "noreg" || asm.Reg(99).String() != "Reg(99)" {
		t.Errorf("invalid register names %q, %q", asm.NoReg, asm.Reg(99))
	}
}

func TestCond(t *testing.T) {
	names := []string{"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}
	for i, n := range names {
		c := asm.Cond(i)
		if c.String() != n {
			t.Errorf("Cond(%d) = %q, want %q", i, c, n)
		}
		if c.Not().Not() != c || c.Not() == c {
			t.Errorf("%v.Not() = %v", c, c.Not())
		}
	}
	for c, not := range map[asm.Cond]asm.Cond{asm.CondE: asm.CondNE, asm.CondB: asm.CondAE, asm.CondL: asm.CondGE, asm.CondLE: asm.CondG, asm.CondS: asm.CondNS} {
		if c.Not() != not {
			t.Errorf("%v.Not() = %v, want %v", c, c.Not(), not)
		}
	}
	if asm.CondC != asm.CondB || asm.CondNC != asm.CondAE || asm.CondZ != asm.CondE || asm.CondNZ != asm.CondNE {
		t.Error("condition aliases are wrong")
	}
	if asm.Cond(16).String() != "Cond(16)" {
		t.Errorf("invalid condition name %q", asm.Cond(16))
	}
}

func TestSpecialRegs(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{asm.CR0.String(), "cr0"}, {asm.CR8.String(), "cr8"}, {asm.CReg(1).String(), "CReg(1)"},
		{asm.DR0.String(), "dr0"}, {asm.DR7.String(), "dr7"}, {asm.DReg(8).String(), "DReg(8)"},
		{asm.Q(asm.RAX, 8).Idx(asm.R12, 4).String(), "qword ptr [rax+r12*4+0x8]"},
		{asm.Abs(4, -16).String(), "dword ptr [-0x10]"},
		{asm.Mem{}.String(), "[0x0]"},
		{fmt.Sprint(asm.B(asm.RSP, 0)), "byte ptr [rsp]"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
