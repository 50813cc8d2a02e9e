package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Test mappings (all in the test guest's page tables):
//
//	0x40000000  1 GiB page onto GPA 0 (PDPT entry 1)
//	0x00400000  2 MiB region split into 4 KiB pages (PD entry 2 -> ptGPA)
const (
	va1G     = 0x40000000
	va4K     = 0x400000
	pte4KGPA = ptGPA
)

func split4K(b []byte, flags func(i uint64) uint64) {
	put64(b, pdGPA+8*2, pte4KGPA|7)
	for i := uint64(0); i < 512; i++ {
		put64(b, pte4KGPA+8*i, (va4K+i<<12)|flags(i))
	}
}

func TestPageSizesAndAccessedDirty(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RAX, asm.Imm(va1G+dataGPA))
		a.Mov(asm.RBX, asm.Q(asm.RAX, 0)) // through the 1 GiB page
		a.Mov(asm.RCX, asm.Imm(va4K+0x3000))
		a.Mov(asm.RDX, asm.Q(asm.RCX, 0)) // read a 4 KiB page
		a.Mov(asm.Q(asm.RCX, 0x1000), asm.Imm(7))
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	b := g.mem.Bytes()
	put64(b, pdptGPA+8, 0|0x87) // 1 GiB page at VA 1 GiB -> GPA 0
	split4K(b, func(uint64) uint64 { return 7 })
	put64(b, dataGPA, 0x1122)
	put64(b, va4K+0x3000, 0x3344)
	r := g.runDone(t)
	if r.RBX != 0x1122 || r.RDX != 0x3344 || get64(b, va4K+0x4000) != 7 {
		t.Fatalf("rbx %#x rdx %#x mem %#x", r.RBX, r.RDX, get64(b, va4K+0x4000))
	}
	pte := func(i uint64) uint64 { return get64(b, pte4KGPA+8*i) }
	cases := []struct {
		name string
		got  uint64
		want uint64 // A and D bits
	}{
		{"read 4K page", pte(3) & 0x60, pteA},
		{"written 4K page", pte(4) & 0x60, pteA | pteD},
		{"untouched 4K page", pte(5) & 0x60, 0},
		{"PD entry of 4K table", get64(b, pdGPA+16) & 0x20, pteA},
		{"1G page read", get64(b, pdptGPA+8) & 0x60, pteA},
		{"PML4 entry", get64(b, pml4GPA) & 0x20, pteA},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: A/D %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// TestPageFaultErrorCodes checks every #PF error-code bit and CR2.
func TestPageFaultErrorCodes(t *testing.T) {
	type pcase struct {
		name  string
		user  bool
		pte   uint64 // flags of the 4 KiB page at va4K+0x1000
		wp    bool
		nxe   bool
		build func(a *asm.Assembler)
		code  uint64
	}
	read := func(a *asm.Assembler) { a.Mov(asm.RBX, asm.Imm(va4K+0x1008)); a.Mov(asm.RAX, asm.Q(asm.RBX, 0)) }
	write := func(a *asm.Assembler) { a.Mov(asm.RBX, asm.Imm(va4K+0x1008)); a.Mov(asm.Q(asm.RBX, 0), asm.RAX) }
	exec := func(a *asm.Assembler) { a.Mov(asm.RBX, asm.Imm(va4K+0x1008)); a.JmpInd(asm.RBX) }
	cases := []pcase{
		{"not present read", false, 0, true, true, read, 0},
		{"not present write user", true, 0, true, true, write, pfW | pfU},
		{"user read of supervisor page", true, pteP | pteRW, true, true, read, pfP | pfU},
		{"user write of read-only page", true, pteP | pteUS, true, true, write, pfP | pfW | pfU},
		{"supervisor write read-only WP=1", false, pteP, true, true, write, pfP | pfW},
		{"reserved bit", false, pteP | pteRW | 1<<50, true, true, read, pfP | pfRSVD},
		{"NX fetch", false, pteP | pteRW | pteNX, true, true, exec, pfP | pfID},
		{"not present fetch", true, 0, true, true, exec, pfU | pfID},
		{"NX bit reserved without NXE", false, pteP | pteRW | pteNX, true, false, read, pfP | pfRSVD},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := assemble(t, func(a *asm.Assembler) { c.build(a); done(a) })
			g := newTestGuest(t, newEmu(t), guestOpt{user: c.user}, code)
			split4K(g.mem.Bytes(), func(i uint64) uint64 {
				if i == 1 {
					return c.pte
				}
				return 7
			})
			s, _ := g.vcpu.Sregs()
			if !c.wp {
				s.CR0 &^= hv.CR0WP
			}
			if !c.nxe {
				s.EFER &^= hv.EFERNXE
			}
			g.vcpu.SetSregs(&s)
			f := g.runException(t)
			s, _ = g.vcpu.Sregs()
			if f.vec != vecPF || f.code != c.code || s.CR2 != va4K+0x1008 {
				t.Fatalf("vector %d code %#x cr2 %#x, want #PF code %#x cr2 %#x", f.vec, f.code, s.CR2, c.code, va4K+0x1008)
			}
			st, _ := g.vcpu.Stats()
			if n, _ := st.Get("pf_taken"); n != 1 {
				t.Errorf("pf_taken = %d", n)
			}
		})
	}
	// WP=0: supervisor writes to read-only pages succeed.
	code := assemble(t, func(a *asm.Assembler) { write(a); done(a) })
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	split4K(g.mem.Bytes(), func(i uint64) uint64 { return pteP | pteUS })
	s, _ := g.vcpu.Sregs()
	s.CR0 &^= hv.CR0WP
	g.vcpu.SetSregs(&s)
	g.runDone(t)
}

// TestInvlpgAndStaleTLB: a PTE edit is seen after INVLPG.
func TestInvlpg(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RBX, asm.Imm(va4K+0x1000))
		a.Mov(asm.RAX, asm.Q(asm.RBX, 0))
		// Point the PTE at the next physical page, then INVLPG.
		a.Mov(asm.RCX, asm.Imm(pte4KGPA+8))
		a.Mov(asm.Q(asm.RCX, 0), asm.Imm(va4K+0x2000|7))
		a.Invlpg(asm.Q(asm.RBX, 0))
		a.Mov(asm.RDX, asm.Q(asm.RBX, 0))
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	b := g.mem.Bytes()
	split4K(b, func(uint64) uint64 { return 7 })
	put64(b, va4K+0x1000, 1)
	put64(b, va4K+0x2000, 2)
	if r := g.runDone(t); r.RAX != 1 || r.RDX != 2 {
		t.Fatalf("rax %#x rdx %#x", r.RAX, r.RDX)
	}
}

// TestUserToKernelAndBack: INT from CPL3 switches to TSS.RSP0, the handler
// sees the user frame, and IRETQ returns to ring 3.
func TestUserToKernelAndBack(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RBX, asm.Imm(0x1234))
		a.Int(0x30)
		a.Mov(asm.RDX, asm.RAX) // RAX set by the handler
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{user: true}, code)
	// Handler for 0x30: record RSP and CS, iretq.
	h := asm.New(stubGPA + 16*0x30)
	h.Mov(asm.RAX, asm.RSP)
	h.Iretq()
	hc, err := h.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	copy(g.mem.Bytes()[stubGPA+16*0x30:], hc)
	r := g.runDone(t)
	if r.RDX != kstackTop-40 {
		t.Fatalf("handler rsp %#x, want TSS.RSP0 - 40", r.RDX)
	}
	if r.RSP != ustackTop || r.RBX != 0x1234 {
		t.Fatalf("after iretq rsp %#x", r.RSP)
	}
	s, _ := g.vcpu.Sregs()
	if s.CS.Selector != selCode3 || s.CS.DPL != 3 || s.SS.Selector != selData3 {
		t.Fatalf("back in cs %#x ss %#x", s.CS.Selector, s.SS.Selector)
	}
	b := g.mem.Bytes()
	frame := uint64(kstackTop - 40)
	if get64(b, frame+8) != selCode3 || get64(b, frame+24) != ustackTop || get64(b, frame+32) != selData3 {
		t.Fatalf("frame cs %#x rsp %#x ss %#x", get64(b, frame+8), get64(b, frame+24), get64(b, frame+32))
	}
}

func TestExceptionsThroughIDT(t *testing.T) {
	cases := []struct {
		name  string
		user  bool
		build func(a *asm.Assembler)
		vec   uint8
		code  uint64
		trap  bool // RIP after the instruction
	}{
		{"#DE", false, func(a *asm.Assembler) { a.Xor(asm.ECX, asm.ECX); a.Div(asm.ECX) }, vecDE, 0, false},
		{"#DE overflow", false, func(a *asm.Assembler) { a.Mov(asm.EDX, asm.Imm(5)); a.Mov(asm.ECX, asm.Imm(2)); a.Div(asm.ECX) }, vecDE, 0, false},
		{"#BP", true, func(a *asm.Assembler) { a.Int3() }, vecBP, 0, true},
		{"#UD", false, func(a *asm.Assembler) { a.Ud2() }, vecUD, 0, false},
		{"#GP hlt at CPL3", true, func(a *asm.Assembler) { a.Hlt() }, vecGP, 0, false},
		{"#GP gate DPL", true, func(a *asm.Assembler) { a.Int(0x31) }, vecGP, 0x31*8 + 2, false},
		{"#DB int1", true, func(a *asm.Assembler) { a.Int1() }, vecDB, 0, true},
		{"#GP rdpmc of a missing counter", false, func(a *asm.Assembler) { a.Mov(asm.ECX, asm.Imm(8)); a.Rdpmc() }, vecGP, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var end uint64
			code := assemble(t, func(a *asm.Assembler) { c.build(a); end = a.PC(); done(a) })
			g := newTestGuest(t, newEmu(t), guestOpt{user: c.user}, code)
			g.mem.Bytes()[idtGPA+16*0x31+5] = 0x8e // DPL 0 gate
			f := g.runException(t)
			if f.vec != c.vec || f.code != c.code {
				t.Fatalf("frame %+v, want vector %d code %#x", f, c.vec, c.code)
			}
			if c.trap && f.rip != end {
				t.Fatalf("trap rip %#x, want %#x", f.rip, end)
			}
		})
	}
}

func TestSingleStepAndBreakpoint(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Nop()
		a.Nop()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	r, _ := g.vcpu.Regs()
	r.RFLAGS |= hv.FlagTF
	g.vcpu.SetRegs(&r)
	f := g.runException(t)
	d, _ := g.vcpu.DebugRegs()
	if f.vec != vecDB || f.rip != codeGPA+1 || d.DR6&dr6BS == 0 {
		t.Fatalf("frame %+v dr6 %#x, want #DB after the first nop", f, d.DR6)
	}
	g = newTestGuest(t, newEmu(t), guestOpt{}, code)
	g.vcpu.SetDebugRegs(&hv.DebugRegs{DB: [4]uint64{0, codeGPA + 1}, DR7: 1 << 2})
	f = g.runException(t)
	d, _ = g.vcpu.DebugRegs()
	if f.vec != vecDB || f.rip != codeGPA+1 || d.DR6&2 == 0 {
		t.Fatalf("frame %+v dr6 %#x, want #DB fault at the second nop", f, d.DR6)
	}
}
