package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

const (
	fCF = hv.FlagCF
	fPF = hv.FlagPF
	fAF = hv.FlagAF
	fZF = hv.FlagZF
	fSF = hv.FlagSF
	fOF = hv.FlagOF
)

// TestInstructionResults checks results and flags against values worked
// out from the SDM, including the two places where hardware and the SDM
// pseudo-code disagree (and the emulator follows the hardware).
func TestInstructionResults(t *testing.T) {
	type regs struct{ rax, rbx, rcx, flags uint64 }
	cases := []struct {
		name  string
		build func(a *asm.Assembler)
		in    regs
		want  regs // flags: the arithmetic flags after the instruction
		undef uint64
	}{
		{"add8 overflow", func(a *asm.Assembler) { a.Add(asm.AL, asm.BL) }, regs{0x7f, 1, 0, 0}, regs{0x80, 1, 0, fOF | fSF | fAF}, 0},
		{"add32 carry zero-extends", func(a *asm.Assembler) { a.Add(asm.EAX, asm.EBX) }, regs{0xdead_ffffffff, 1, 0, 0}, regs{0, 1, 0, fCF | fZF | fAF | fPF}, 0},
		{"sub64 borrow", func(a *asm.Assembler) { a.Sub(asm.RAX, asm.RBX) }, regs{0, 1, 0, 0}, regs{^uint64(0), 1, 0, fCF | fSF | fAF | fPF}, 0},
		{"adc8 with carry", func(a *asm.Assembler) { a.Adc(asm.AL, asm.BL) }, regs{0xff, 0, 0, fCF}, regs{0, 0, 0, fCF | fZF | fAF | fPF}, 0},
		{"sbb8 with carry", func(a *asm.Assembler) { a.Sbb(asm.AL, asm.BL) }, regs{0, 0, 0, fCF}, regs{0xff, 0, 0, fCF | fSF | fAF | fPF}, 0},
		{"neg64 min", func(a *asm.Assembler) { a.Neg(asm.RAX) }, regs{1 << 63, 0, 0, 0}, regs{1 << 63, 0, 0, fCF | fOF | fSF | fPF}, 0},
		{"neg zero", func(a *asm.Assembler) { a.Neg(asm.RAX) }, regs{0, 0, 0, fCF}, regs{0, 0, 0, fZF | fPF}, 0},
		{"inc8 keeps CF", func(a *asm.Assembler) { a.Inc(asm.AL) }, regs{0x7f, 0, 0, fCF}, regs{0x80, 0, 0, fCF | fOF | fSF | fAF}, 0},
		{"dec32 wraps keeps CF", func(a *asm.Assembler) { a.Dec(asm.EAX) }, regs{0, 0, 0, fCF}, regs{0xffffffff, 0, 0, fCF | fSF | fAF | fPF}, 0},
		{"and clears CF OF", func(a *asm.Assembler) { a.And(asm.RAX, asm.RBX) }, regs{0xf0, 0x0f, 0, fCF | fOF}, regs{0, 0x0f, 0, fZF | fPF}, fAF},
		{"mul64 high half", func(a *asm.Assembler) { a.Mul(asm.RBX) }, regs{1 << 63, 2, 0, 0}, regs{0, 2, 0, fCF | fOF}, fSF | fZF | fAF | fPF},
		{"imul32 overflow", func(a *asm.Assembler) { a.Imul(asm.EAX, asm.EBX) }, regs{0x10000, 0x10000, 0, 0}, regs{0, 0x10000, 0, fCF | fOF}, fSF | fZF | fAF | fPF},
		{"rol8 by 1", func(a *asm.Assembler) { a.Rol(asm.AL, asm.Imm(1)) }, regs{0x80, 0, 0, 0}, regs{0x01, 0, 0, fCF | fOF}, 0},
		{"sar8 by 1", func(a *asm.Assembler) { a.Sar(asm.AL, asm.Imm(1)) }, regs{0x81, 0, 0, 0}, regs{0xc0, 0, 0, fCF | fSF | fPF}, fAF},
		{"shr8 by 1", func(a *asm.Assembler) { a.Shr(asm.AL, asm.Imm(1)) }, regs{0x81, 0, 0, 0}, regs{0x40, 0, 0, fCF | fOF}, fAF},
		{"rcr8 by 1", func(a *asm.Assembler) { a.Rcr(asm.AL, asm.Imm(1)) }, regs{0x01, 0, 0, fCF}, regs{0x80, 0, 0, fCF | fOF}, 0},
		// Quirk: a 32-bit shift by a masked count of 0 still writes the
		// register, so the upper half is cleared; flags are unchanged.
		{"shl32 by cl=0 zero-extends", func(a *asm.Assembler) { a.Shl(asm.EAX, asm.CL) }, regs{0xffff_0000_1234, 0, 0x20, fCF | fZF}, regs{0x1234, 0, 0x20, fCF | fZF}, 0},
		{"rol32 by 0 zero-extends", func(a *asm.Assembler) { a.Rol(asm.EAX, asm.CL) }, regs{0xffff_0000_1234, 0, 0, fOF}, regs{0x1234, 0, 0, fOF}, 0},
		{"shl64 by cl=0 keeps all", func(a *asm.Assembler) { a.Shl(asm.RAX, asm.CL) }, regs{0xffff_0000_1234, 0, 0x40, fSF}, regs{0xffff_0000_1234, 0, 0x40, fSF}, 0},
		// Quirk: a failed 32-bit CMPXCHG with a register destination only
		// writes EAX (zero-extended); the destination keeps its upper half.
		{"cmpxchg32 fail", func(a *asm.Assembler) { a.Cmpxchg(asm.EBX, asm.ECX) }, regs{0xaaaa_00000001, 0xbbbb_00000002, 7, 0}, regs{2, 0xbbbb_00000002, 7, fCF | fSF | fAF | fPF}, 0},
		{"cmpxchg32 success", func(a *asm.Assembler) { a.Cmpxchg(asm.EBX, asm.ECX) }, regs{0xaaaa_00000002, 0xbbbb_00000002, 7, 0}, regs{0xaaaa_00000002, 7, 7, fZF | fPF}, 0},
		{"cmov32 false zero-extends", func(a *asm.Assembler) { a.Cmovcc(asm.CondZ, asm.EAX, asm.EBX) }, regs{0xffff_00000001, 5, 0, 0}, regs{1, 5, 0, 0}, 0},
		{"bsf zero source", func(a *asm.Assembler) { a.Bsf(asm.RAX, asm.RBX) }, regs{77, 0, 0, 0}, regs{77, 0, 0, fZF}, fCF | fOF | fSF | fAF | fPF},
		{"bsr", func(a *asm.Assembler) { a.Bsr(asm.RAX, asm.RBX) }, regs{77, 0x8100, 0, fZF}, regs{15, 0x8100, 0, 0}, fCF | fOF | fSF | fAF | fPF},
		{"bt63", func(a *asm.Assembler) { a.Bt(asm.RAX, asm.Imm(63)) }, regs{1 << 63, 0, 0, fZF}, regs{1 << 63, 0, 0, fCF | fZF}, fOF | fSF | fAF | fPF},
		{"bswap32", func(a *asm.Assembler) { a.Bswap(asm.EAX) }, regs{0xffff_11223344, 0, 0, 0}, regs{0x44332211, 0, 0, 0}, 0},
		{"idiv8", func(a *asm.Assembler) { a.Idiv(asm.BL) }, regs{0xfff9, 2, 0, 0}, regs{0xfffd, 2, 0, 0}, hv.FlagsArith},
		{"cqo", func(a *asm.Assembler) { a.Cqo(); a.Mov(asm.RCX, asm.RDX) }, regs{1 << 63, 0, 0, 0}, regs{1 << 63, 0, ^uint64(0), 0}, 0},
		{"movsx", func(a *asm.Assembler) { a.Movsx(asm.RAX, asm.BL) }, regs{0, 0x80, 0, 0}, regs{0xffffffffffffff80, 0x80, 0, 0}, 0},
		{"lea32 truncates", func(a *asm.Assembler) { a.Lea(asm.EAX, asm.Q(asm.RBX, 1)) }, regs{0, 0x1_ffffffff, 0, 0}, regs{0, 0x1_ffffffff, 0, 0}, 0},
	}
	g := newTestGuest(t, newEmu(t), guestOpt{}, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := assemble(t, func(a *asm.Assembler) { c.build(a); done(a) })
			copy(g.mem.Bytes()[codeGPA:], code)
			g.setup(t, g.vcpu, codeGPA)
			g.vcpu.SetRegs(&hv.Regs{RAX: c.in.rax, RBX: c.in.rbx, RCX: c.in.rcx, RIP: codeGPA, RSP: kstackTop, RFLAGS: c.in.flags | hv.FlagsFixed})
			r := g.runDone(t)
			if r.RAX != c.want.rax || r.RBX != c.want.rbx || r.RCX != c.want.rcx {
				t.Errorf("rax %#x rbx %#x rcx %#x, want %#x %#x %#x", r.RAX, r.RBX, r.RCX, c.want.rax, c.want.rbx, c.want.rcx)
			}
			mask := uint64(hv.FlagsArith) &^ c.undef
			if (r.RFLAGS^c.want.flags)&mask != 0 {
				t.Errorf("flags %#x, want %#x (mask %#x)", r.RFLAGS&hv.FlagsArith, c.want.flags, mask)
			}
		})
	}
}

// condHolds is the SDM's definition of each condition code.
func condHolds(cc int, f uint64) bool {
	cf, zf, sf, of, pf := f&fCF != 0, f&fZF != 0, f&fSF != 0, f&fOF != 0, f&fPF != 0
	v := [8]bool{of, cf, zf, cf || zf, sf, pf, sf != of, zf || sf != of}[cc>>1]
	return v != (cc&1 == 1)
}

// TestConditionCodes runs Jcc, SETcc and CMOVcc for all 16 conditions
// over every combination of CF, ZF, SF, OF and PF, both with flags set by
// the host and with flags produced by a CMP (the lazy-flag fast path).
func TestConditionCodes(t *testing.T) {
	g := newTestGuest(t, newEmu(t), guestOpt{}, nil)
	for cc := 0; cc < 16; cc++ {
		code := assemble(t, func(a *asm.Assembler) {
			l := a.NewLabel()
			a.Setcc(asm.Cond(cc), asm.BL)
			a.Cmovcc(asm.Cond(cc), asm.RCX, asm.RDX)
			a.Jcc(asm.Cond(cc), l)
			a.Mov(asm.ESI, asm.Imm(1))
			a.Bind(l)
			done(a)
		})
		copy(g.mem.Bytes()[codeGPA:], code)
		for bits := 0; bits < 32; bits++ {
			var f uint64
			for i, fl := range []uint64{fCF, fZF, fSF, fOF, fPF} {
				if bits>>i&1 != 0 {
					f |= fl
				}
			}
			g.setup(t, g.vcpu, codeGPA)
			g.vcpu.SetRegs(&hv.Regs{RCX: 1, RDX: 2, RIP: codeGPA, RSP: kstackTop, RFLAGS: f | hv.FlagsFixed})
			r := g.runDone(t)
			want := condHolds(cc, f)
			got := [3]bool{r.RBX == 1, r.RCX == 2, r.RSI == 0}
			if got != [3]bool{want, want, want} {
				t.Errorf("cc %v flags %#x: setcc/cmov/jcc %v, want %v", asm.Cond(cc), f, got, want)
			}
		}
		// After CMP a, b (lazy flags).
		pairs := [][2]uint64{{1, 2}, {2, 1}, {5, 5}, {1 << 63, 1}, {1, 1 << 63}, {0x7fffffffffffffff, ^uint64(0)}}
		cmpCode := assemble(t, func(a *asm.Assembler) {
			a.Cmp(asm.RAX, asm.RDI)
			a.Pushfq()
			a.Pop(asm.R8)
			a.Cmp(asm.RAX, asm.RDI)
			a.Setcc(asm.Cond(cc), asm.BL)
			done(a)
		})
		copy(g.mem.Bytes()[codeGPA:], cmpCode)
		for _, p := range pairs {
			g.setup(t, g.vcpu, codeGPA)
			g.vcpu.SetRegs(&hv.Regs{RAX: p[0], RDI: p[1], RIP: codeGPA, RSP: kstackTop, RFLAGS: hv.FlagsFixed})
			r := g.runDone(t)
			if want := condHolds(cc, r.R8); (r.RBX == 1) != want {
				t.Errorf("cc %v after cmp %#x, %#x (flags %#x): setcc %d, want %v", asm.Cond(cc), p[0], p[1], r.R8, r.RBX, want)
			}
		}
	}
}

func TestCaps(t *testing.T) {
	c := New(Options{}).Caps()
	for _, name := range c.Names() {
		s := c.Features[name]
		if !s.OK && s.Reason == "" {
			t.Errorf("%s missing without a reason", name)
		}
	}
	if c.MaxMemslots != 32764 || c.DirtyRingMaxBytes != 1<<20 || !c.Has(hv.CapCPL0Native) || !c.Has(hv.CapPMU) {
		t.Fatalf("caps %+v", c)
	}
	if want := (hv.PMUInfo{Version: 2, GPCounters: 4, FixedCounters: 3, CounterWidth: 48}); c.PMU != want {
		t.Errorf("PMU info %+v, want %+v", c.PMU, want)
	}
}
