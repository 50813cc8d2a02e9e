package kvm

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// rawGuest is a minimal long-mode VM built by hand, so the backend's own
// tests do not depend on the guest runtime: identity-mapped 1 GiB with 2 MiB
// pages, flat CPL0 segments, code at 0x100000.
type rawGuest struct {
	h    *Hypervisor
	vm   *VM
	mem  *hv.Memory
	vcpu *VCPU
}

const rawCodeGPA = 0x100000

// openOrSkip opens the backend for a test that runs x86 guest code (or
// whose expectations are x86 KVM's): it skips where the guests are not
// x86. Arch-neutral tests use openAnyOrSkip.
func openOrSkip(tb testing.TB) *Hypervisor {
	tb.Helper()
	h := openAnyOrSkip(tb)
	if a := h.Caps().GuestArch(); a != hv.ArchX86_64 {
		tb.Skipf("x86 guest code or x86 KVM's answers; guests here are %s (the %s tests are *_%s_test.go)", a, a, a)
	}
	return h
}

// openMemOrSkip opens the backend, whatever its guests' architecture,
// for a test that sets memslots: it skips on hosts whose pages are not
// the contract's 4 KiB (memslots there must be aligned to the host page).
func openMemOrSkip(tb testing.TB) *Hypervisor {
	tb.Helper()
	h := openAnyOrSkip(tb)
	if ps := os.Getpagesize(); ps != hv.PageSize {
		tb.Skipf("host pages of %d bytes; the contract's page is %d", ps, hv.PageSize)
	}
	return h
}

// openAnyOrSkip opens the backend whatever its guests' architecture.
func openAnyOrSkip(tb testing.TB) *Hypervisor {
	tb.Helper()
	h, err := Open(Options{})
	if err != nil {
		tb.Skipf("kvm backend unavailable: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func newRawGuest(tb testing.TB, h *Hypervisor, cfg hv.VMConfig, code []byte) *rawGuest {
	tb.Helper()
	vm, err := h.CreateVM(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	mem, err := hv.NewMemory(4<<20, hv.Anonymous)
	if err != nil {
		tb.Fatal(err)
	}
	b := mem.Bytes()
	// PML4 at 0x1000 -> PDPT at 0x2000 -> PD at 0x3000, 2 MiB pages.
	binary.LittleEndian.PutUint64(b[0x1000:], 0x2000|7)
	binary.LittleEndian.PutUint64(b[0x2000:], 0x3000|7)
	for i := uint64(0); i < 512; i++ {
		binary.LittleEndian.PutUint64(b[0x3000+8*i:], i<<21|0x87)
	}
	copy(b[rawCodeGPA:], code)
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: mem.Size(), Memory: mem}); err != nil {
		tb.Fatal(err)
	}
	v, err := vm.CreateVCPU(0)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := v.Sregs()
	if err != nil {
		tb.Fatal(err)
	}
	code64 := hv.Segment{Selector: 8, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data := hv.Segment{Selector: 16, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS, s.DS, s.ES, s.FS, s.GS, s.SS = code64, data, data, data, data, data
	s.CR3 = 0x1000
	s.CR4 = hv.CR4PAE
	s.CR0 = hv.CR0PE | hv.CR0MP | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0AM | hv.CR0PG
	s.EFER = hv.EFERLME | hv.EFERLMA
	if err := v.SetSregs(&s); err != nil {
		tb.Fatal(err)
	}
	if err := v.SetRegs(&hv.Regs{RIP: rawCodeGPA, RSP: 0x200000, RFLAGS: hv.FlagsFixed}); err != nil {
		tb.Fatal(err)
	}
	g := &rawGuest{h: h, vm: vm, mem: mem, vcpu: v}
	tb.Cleanup(func() {
		vm.Close()
		mem.Close()
	})
	return g
}
