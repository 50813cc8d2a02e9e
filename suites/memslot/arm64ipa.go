package memslot

// VMs of other IPA sizes on KVM/arm64. KVM_CREATE_VM's machine type
// asks for one (KVM_VM_TYPE_ARM_IPA_SIZE(n), bits 7:0; 0 is the default
// 40), from 32 bits up to KVM_CAP_ARM_VM_IPA_SIZE. For each size of the
// table a slot ending exactly at 2^n is memory a guest reads and writes
// on its last page (stage 1 reaches it: the guest's mode is
// a64guest.ModeForIPA's, the 64K granule with FEAT_LPA above 48 bits),
// and a slot ending one page beyond is refused; KVM_CREATE_VM refuses a
// size below 32 bits, one above the maximum, and reserved type bits.

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const (
	// a64TopSlotSize is the slot at the top of the IPA space: one page
	// of every granule, so the 64K one of the 52-bit mode maps it whole.
	a64TopSlotSize = 0x10000
	a64TopSlot     = 1
	a64HostValue   = 0x1eaf_0000_0000_0001 // the host's, in the last 8 bytes
	a64GuestValue  = 0x1eaf_0000_0000_0002 // the guest's, in the 8 before
	// a64IPAMaxAbove48 stands for the host's maximum IPA size in the
	// table, an entry when it is above 48 bits.
	a64IPAMaxAbove48 = -1
)

// a64IPAType is the machine type of a table entry: an explicit size, 0
// for the default, the host's maximum for a64IPAMaxAbove48, or the
// reason the entry does not apply to this host.
func a64IPAType(b *framework.Backend, bits int) (hv.ARM64VMType, string) {
	if bits == 0 {
		return 0, ""
	}
	if err := b.Caps.Require(hv.CapARM64IPASize); err != nil {
		return 0, err.Error()
	}
	max := int(b.Caps.Value(hv.CapARM64IPASize))
	switch {
	case bits == a64IPAMaxAbove48 && max <= 48:
		return 0, fmt.Sprintf("%s: the host's largest IPA size is %d bits (KVM_CAP_ARM_VM_IPA_SIZE), not above 48: the table's other entries cover it", b.Name, max)
	case bits == a64IPAMaxAbove48:
		bits = max
	case bits > max:
		return 0, fmt.Sprintf("%s: the host's largest IPA size is %d bits (KVM_CAP_ARM_VM_IPA_SIZE), below %d", b.Name, max, bits)
	}
	return hv.ARM64IPASize(bits), ""
}

// a64IPASizes are the table's IPA sizes, one entry each, with decorators
// (a guest's spec timeout).
func a64IPASizes(decorators ...any) []TableEntry {
	sizes := []struct {
		name string
		bits int
	}{
		{"32 bits", 32},
		{"36 bits", 36},
		{"40 bits asked for", 40},
		{"the default machine type (40 bits)", 0},
		{"44 bits", 44},
		{"48 bits", 48},
		{"the host's maximum, above 48 bits", a64IPAMaxAbove48},
	}
	var out []TableEntry
	for _, s := range sizes {
		out = append(out, Entry(s.name, append([]any{s.bits}, decorators...)...))
	}
	return out
}

// a64IPATopSpec: a slot ending at 2^n is accepted, and a guest of the
// VM loads the host's value from its last 8 bytes and stores its own
// before them, which the host reads in the slot's memory.
func a64IPATopSpec(b *framework.Backend) func(ctx SpecContext, bits int) {
	return func(ctx SpecContext, bits int) {
		typ, skip := a64IPAType(b, bits)
		if skip != "" {
			Skip(skip)
		}
		top := uint64(1) << typ.IPABits()
		g := b.NewARM64Guest(a64guest.Config{VM: hv.VMConfig{ARM64Type: typ}})
		mode := g.Config().Mode
		mmfr0, err := g.Reg(0).GetOneReg(hv.ARM64SysReg(3, 0, 0, 7, 0)) // ID_AA64MMFR0_EL1
		Expect(err).NotTo(HaveOccurred(), "ID_AA64MMFR0_EL1")
		if !a64guest.SupportsGranule(mmfr0, mode.Granule) || a64guest.MMFR0PABits(mmfr0) < typ.IPABits() {
			Skip(fmt.Sprintf("%s: the vCPU's stage 1 cannot output %d-bit addresses with mode %v (ID_AA64MMFR0_EL1 %#x: PARange %d bits)",
				b.Name, typ.IPABits(), mode, mmfr0, a64guest.MMFR0PABits(mmfr0)))
		}
		mem, err := hv.NewMemory(a64TopSlotSize, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mem.Close) // after the guest's cleanup, registered earlier
		binary.LittleEndian.PutUint64(mem.Bytes()[a64TopSlotSize-8:], a64HostValue)
		By(fmt.Sprintf("slot %d at [%#x, %#x) in a VM of type %v", a64TopSlot, top-a64TopSlotSize, top, typ))
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64TopSlot, GPA: top - a64TopSlotSize, Size: a64TopSlotSize, Memory: mem})).To(Succeed())
		va, err := g.MapPhys(top-a64TopSlotSize, a64TopSlotSize, a64guest.UserData)
		Expect(err).NotTo(HaveOccurred(), "stage-1 mapping of the slot (mode %v)", mode)

		p := g.Program()
		p.Mov(a64.X10, a64.Imm(int64(va+a64TopSlotSize-8)))
		p.Ldr(a64.X4, a64.Ptr(a64.X10, 0))
		p.Mov(a64.X5, a64.Imm(a64GuestValue))
		p.Str(a64.X5, a64.Ptr(a64.X10, -8))
		p.Sync(1, a64.X4)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		if ev.Exit != nil {
			Fail(fmt.Sprintf("the guest's access to VA %#x (GPA %#x): %v", va+a64TopSlotSize-8, top-8, g.Unexpected(0, ev.Exit)))
		}
		Expect(ev.Ucall.Cmd).To(Equal(guest.UcallSync), "ucall %v", ev.Ucall)
		Expect(ev.Ucall.Args[1]).To(Equal(uint64(a64HostValue)), "what the guest read at GPA %#x", top-8)
		Expect(binary.LittleEndian.Uint64(mem.Bytes()[a64TopSlotSize-16:])).To(Equal(uint64(a64GuestValue)), "the slot's memory at GPA %#x after the guest's store", top-16)
		got, err := g.VM.Load64(top - 16)
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(Equal(uint64(a64GuestValue)), "the VM's guest-physical %#x", top-16)
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}
}

// a64IPABeyondSpec: a slot ending one page beyond 2^n is refused with
// want, and nothing is half-applied; the same slot one page lower (ending
// at 2^n) is then accepted, so the end is what was refused.
func a64IPABeyondSpec(b *framework.Backend, want syscall.Errno) func(bits int) {
	return func(bits int) {
		typ, skip := a64IPAType(b, bits)
		if skip != "" {
			Skip(skip)
		}
		top := uint64(1) << typ.IPABits()
		vm, err := b.HV.NewVM(hv.VMConfig{ARM64Type: typ})
		Expect(err).NotTo(HaveOccurred(), "KVM_CREATE_VM type %v", typ)
		DeferCleanup(vm.Close)
		mem, err := hv.NewMemory(a64TopSlotSize, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mem.Close) // after vm.Close: cleanups run in reverse
		m := hv.Memslot{Slot: a64TopSlot, GPA: top - a64TopSlotSize + hv.PageSize, Size: a64TopSlotSize, Memory: mem}
		err = vm.SetMemslot(m)
		Expect(err).To(MatchError(want), "slot [%#x, %#x) in a VM of type %v", m.GPA, m.GPA+m.Size, typ)
		Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("slot %d", a64TopSlot)), "the error names the slot")
		Expect(vm.Memslots()).To(BeEmpty(), "slots after the refused request")
		m.GPA -= hv.PageSize
		Expect(vm.SetMemslot(m)).To(Succeed(), "slot [%#x, %#x): ending at 2^%d", m.GPA, m.GPA+m.Size, typ.IPABits())
	}
}

// a64CreateRefusal is a machine type KVM_CREATE_VM refuses, and the
// errno.
type a64CreateRefusal struct {
	typ  func(b *framework.Backend) hv.ARM64VMType
	want syscall.Errno
}

func a64CreateRefusals() []TableEntry {
	fixed := func(t hv.ARM64VMType) func(*framework.Backend) hv.ARM64VMType {
		return func(*framework.Backend) hv.ARM64VMType { return t }
	}
	aboveMax := func(b *framework.Backend) hv.ARM64VMType {
		GinkgoHelper()
		b.Require(hv.CapARM64IPASize)
		return hv.ARM64IPASize(int(b.Caps.Value(hv.CapARM64IPASize)) + 1)
	}
	return []TableEntry{
		Entry("an IPA size below 32 bits (31) is EINVAL", a64CreateRefusal{fixed(hv.ARM64IPASize(hv.ARM64MinIPABits - 1)), syscall.EINVAL}),
		Entry("an IPA size one bit above the host's maximum is EINVAL", a64CreateRefusal{aboveMax, syscall.EINVAL}),
		Entry("a machine type with an unknown bit (bit 8) is EINVAL", a64CreateRefusal{fixed(hv.ARM64IPASize(40) | 1<<8), syscall.EINVAL}),
	}
}

func a64CreateRefusalSpec(b *framework.Backend) func(r a64CreateRefusal) {
	return func(r a64CreateRefusal) {
		typ := r.typ(b)
		vm, err := b.HV.NewVM(hv.VMConfig{ARM64Type: typ})
		if err == nil {
			vm.Close()
		}
		Expect(err).To(MatchError(r.want), "KVM_CREATE_VM type %v", typ)
		Expect(err.Error()).To(ContainSubstring("KVM_CREATE_VM"), "the error names the operation")
	}
}

func a64IPASpecs(b *framework.Backend) {
	DescribeTable("a slot ending at the top of the IPA space is memory the guest reads and writes on its last page",
		a64IPATopSpec(b), a64IPASizes(SpecTimeout(a64SpecTimeout)))
	DescribeTable("a slot ending one page beyond the top of the IPA space is EFAULT",
		a64IPABeyondSpec(b, syscall.EFAULT), a64IPASizes())
	DescribeTable("KVM_CREATE_VM refuses the machine type", a64CreateRefusalSpec(b), a64CreateRefusals())
}
