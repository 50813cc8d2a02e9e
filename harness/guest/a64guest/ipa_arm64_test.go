//go:build arm64

package a64guest_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// TestVMTopOfIPA builds a guest in VMs of the smallest and the largest
// IPA size the host has, with a slot at the top of the IPA space that the
// guest's stage 1 reaches (MapPhys: identity up to 48 bits, through the
// VA range's top with FEAT_LPA above), and checks a load and a store of
// its last page from the host side.
func TestVMTopOfIPA(t *testing.T) {
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		t.Skipf("no backend runs arm64 guests here: %v", err)
	}
	max := int(h.Caps().Value(hv.CapARM64IPASize))
	h.Close()
	if max == 0 {
		t.Skipf("KVM_CAP_ARM_VM_IPA_SIZE: %v", h.Caps().Require(hv.CapARM64IPASize))
	}
	const size, hostVal, guestVal = 0x10000, 0x7e57_0000_0000_00aa, 0x7e57_0000_0000_00bb
	for _, bits := range []int{hv.ARM64MinIPABits, max} {
		g := arm64Guest(t, a64guest.Config{VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(bits)}})
		mmfr0, _ := a64.Sys("ID_AA64MMFR0_EL1")
		v, err := g.Reg(0).GetOneReg(a64guest.RegSys(mmfr0))
		if err != nil {
			t.Fatal(err)
		}
		mode := g.Config().Mode
		if !a64guest.SupportsGranule(v, mode.Granule) || a64guest.MMFR0PABits(v) < bits {
			t.Logf("%d bits: mode %v is beyond this CPU (ID_AA64MMFR0_EL1 %#x)", bits, mode, v)
			continue
		}
		mem, err := hv.NewMemory(size, hv.Anonymous)
		if err != nil {
			t.Fatal(err)
		}
		defer mem.Close()
		binary.LittleEndian.PutUint64(mem.Bytes()[size-8:], hostVal)
		top := uint64(1) << bits
		if err := g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: top - size, Size: size, Memory: mem}); err != nil {
			t.Fatalf("%d bits: %v", bits, err)
		}
		va, err := g.MapPhys(top-size, size, a64guest.UserData)
		if err != nil {
			t.Fatalf("%d bits: %v", bits, err)
		}
		p := g.Program()
		p.Mov(a64.X10, a64.Imm(int64(va+size-8)))
		p.Ldr(a64.X4, a64.Ptr(a64.X10, 0))
		p.Mov(a64.X5, a64.Imm(guestVal))
		p.Str(a64.X5, a64.Ptr(a64.X10, -8))
		p.Sync(1, a64.X4)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		u := expectSync(t, g, ctx, 1)
		cancel()
		if u.Args[1] != hostVal {
			t.Errorf("%d bits (mode %v, VA %#x): the guest read %#x at GPA %#x, want %#x", bits, mode, va, u.Args[1], top-8, uint64(hostVal))
		}
		if got := binary.LittleEndian.Uint64(mem.Bytes()[size-16:]); got != guestVal {
			t.Errorf("%d bits (mode %v): GPA %#x holds %#x after the guest's store, want %#x", bits, mode, top-16, got, uint64(guestVal))
		}
	}
}
