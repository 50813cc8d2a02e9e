package guest_test

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// TestMSRGate: test code at either CPL writes and reads an MSR through
// the gate, sees #GP of a missing MSR as R8 = 13 instead of a failure,
// and a later unexpected exception is not swallowed by a stale fixup.
func TestMSRGate(t *testing.T) {
	const vec = 0x50
	const gsBase = 0x12345000
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		if err := g.InstallMSRGate(vec); err != nil {
			t.Fatal(err)
		}
		p := g.Program()
		p.Mov(asm.R12, asm.Imm(7))
		p.Mov(asm.ECX, asm.Imm(hv.MSRKernelGSBase))
		p.Mov(asm.EAX, asm.Imm(gsBase))
		p.Xor(asm.EDX, asm.EDX)
		p.MSRGate(vec, guest.MSRGateWrite)
		p.Mov(asm.R9, asm.R8)
		p.Xor(asm.EAX, asm.EAX)
		p.MSRGate(vec, guest.MSRGateRead)
		p.Mov(asm.R10, asm.R8)
		p.Mov(asm.ECX, asm.Imm(0x3fff)) // no such MSR
		p.MSRGate(vec, guest.MSRGateRead)
		p.Sync(1, asm.R9, asm.R10, asm.RAX, asm.R8, asm.R12)
		p.Ud2() // must be reported, not sent to the gate's fixup
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		var args []uint64
		err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error { args = u.Args; return nil })
		if err == nil {
			t.Fatal("ud2 after the gate did not fail the run")
		}
		want := []uint64{1, ^uint64(0), ^uint64(0), gsBase, 13, 7}
		if len(args) != len(want) {
			t.Fatalf("sync %v, want %#x", args, want)
		}
		for i := range want {
			if args[i] != want[i] {
				t.Fatalf("sync %#x, want %#x", args, want)
			}
		}
	})
}
