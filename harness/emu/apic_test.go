package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
)

func TestLocalAPIC(t *testing.T) {
	const apicVA = apicDefault
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RDI, asm.Imm(apicVA))
		a.Mov(asm.EAX, asm.D(asm.RDI, 0x30)) // version
		a.Mov(asm.EBX, asm.D(asm.RDI, 0x20)) // id
		a.Mov(asm.D(asm.RDI, 0x80), asm.Imm(0x20))
		a.Mov(asm.ECX, asm.D(asm.RDI, 0x80)) // TPR back
		a.Mov(asm.D(asm.RDI, 0xf0), asm.Imm(0x1ff))
		a.Mov(asm.D(asm.RDI, 0x340), asm.Imm(0x40)) // LVT perf: vector 0x40, unmasked
		a.Mov(asm.D(asm.RDI, 0x80), asm.Imm(0))
		done(a)
		a.Sti()
		a.Nop()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{IRQChip: true}}, code)
	put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87) // 1 GiB page over the APIC
	r := g.runDone(t)
	if r.RAX != lapic.Version || r.RBX != 0 || r.RCX != 0x20 {
		t.Fatalf("version %#x id %#x tpr %#x", r.RAX, r.RBX, r.RCX)
	}
	v := g.vcpu.(*VCPU)
	v.c.raiseLVT(lapic.LVTPerf) // what a PMU overflow will do
	f := g.runException(t)
	if f.vec != 0x40 {
		t.Fatalf("delivered vector %#x, want 0x40", f.vec)
	}
	if v.c.apic.LVT(lapic.LVTPerf)&lapic.LVTMasked == 0 {
		t.Error("LVT perf not masked after delivery")
	}
	if f.rflags&hv.FlagIF == 0 {
		t.Error("pushed RFLAGS lacks IF")
	}
}
