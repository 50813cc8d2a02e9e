package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// TestFlagsLoadMask: POPF and IRET change the same RFLAGS bits at every
// CPL and IOPL (flagsLoadMask), IRET also RF: IOPL only at CPL 0, IF only
// at CPL <= IOPL.
func TestFlagsLoadMask(t *testing.T) {
	// Every bit a load could set, except TF (a trap would follow) and
	// the fixed bit 1.
	const image = ^uint64(0) &^ (hv.FlagTF | hv.FlagsFixed) & 0x3fffff
	popf := func(a *asm.Assembler) {
		a.MovAbs(asm.RAX, image)
		a.Push(asm.RAX)
		a.Popfq()
		done(a)
	}
	iret := func(user bool) func(a *asm.Assembler) {
		return func(a *asm.Assembler) {
			cs, ss := int64(selCode0), int64(selData0)
			if user {
				cs, ss = selCode3, selData3
			}
			target := a.NewLabel()
			a.Mov(asm.RBX, asm.RSP)
			a.Push(asm.Imm(ss))
			a.Push(asm.RBX)
			a.MovAbs(asm.RAX, image)
			a.Push(asm.RAX)
			a.Push(asm.Imm(cs))
			a.MovLabel(asm.RAX, target)
			a.Push(asm.RAX)
			a.Iretq()
			a.Bind(target)
			done(a)
		}
	}
	for _, tc := range []struct {
		user   bool
		iopl   uint64
		change uint64 // of IOPL and IF, the bits that change
	}{
		{false, 0, hv.FlagIOPL | hv.FlagIF},
		{true, 0, 0},
		{true, 3, hv.FlagIF},
	} {
		start := hv.FlagsFixed | tc.iopl<<12
		var got [2]uint64
		for i, build := range []func(*asm.Assembler){popf, iret(tc.user)} {
			g := newTestGuest(t, New(Options{}), guestOpt{user: tc.user}, assemble(t, build))
			r, _ := g.vcpu.Regs()
			r.RFLAGS = start
			if err := g.vcpu.SetRegs(&r); err != nil {
				t.Fatal(err)
			}
			got[i] = g.runDone(t).RFLAGS
		}
		want := start&^tc.change | image&(flagsWritable|tc.change) | hv.FlagsFixed
		if got[0] != want || got[1]&^hv.FlagRF != want {
			t.Errorf("cpl3 %v iopl %d: POPF gives %#x, IRET %#x; want %#x (IRET may add RF)", tc.user, tc.iopl, got[0], got[1], want)
		}
	}
}
