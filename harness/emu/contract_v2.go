package emu

// Contract v2 parts not built yet in this backend: each says so through
// hv.ErrUnsupported. They are replaced as the emu implements them.

import (
	"github.com/kvmspec/kvmspec/harness/hv"
)

func (vm *VM) unsupported(c hv.Cap) error {
	return hv.Unsupported("emu", c, "not built yet in the emu backend")
}

// ReadGPA implements hv.GuestMemory.
func (vm *VM) ReadGPA(gpa uint64, b []byte) error { return vm.unsupported(hv.CapGuestMemoryTrack) }

// WriteGPA implements hv.GuestMemory.
func (vm *VM) WriteGPA(gpa uint64, b []byte) error { return vm.unsupported(hv.CapGuestMemoryTrack) }

// Load32 implements hv.GuestMemory.
func (vm *VM) Load32(gpa uint64) (uint32, error) { return 0, vm.unsupported(hv.CapGuestMemoryTrack) }

// Load64 implements hv.GuestMemory.
func (vm *VM) Load64(gpa uint64) (uint64, error) { return 0, vm.unsupported(hv.CapGuestMemoryTrack) }

// Store32 implements hv.GuestMemory.
func (vm *VM) Store32(gpa uint64, v uint32) error { return vm.unsupported(hv.CapGuestMemoryTrack) }

// Store64 implements hv.GuestMemory.
func (vm *VM) Store64(gpa uint64, v uint64) error { return vm.unsupported(hv.CapGuestMemoryTrack) }

// CAS32 implements hv.GuestMemory.
func (vm *VM) CAS32(gpa uint64, old, new uint32) (bool, error) {
	return false, vm.unsupported(hv.CapGuestMemoryTrack)
}

// CAS64 implements hv.GuestMemory.
func (vm *VM) CAS64(gpa uint64, old, new uint64) (bool, error) {
	return false, vm.unsupported(hv.CapGuestMemoryTrack)
}

// Interrupt implements hv.Interrupts.
func (vm *VM) Interrupt(vcpu int, vector uint8) error { return vm.unsupported(hv.CapIRQChip) }

// SignalMSI implements hv.Interrupts.
func (vm *VM) SignalMSI(addr uint64, data uint32) error { return vm.unsupported(hv.CapMSI) }

// SetIRQLine implements hv.Interrupts.
func (vm *VM) SetIRQLine(gsi uint32, high bool) error { return vm.unsupported(hv.CapIRQLine) }

// CPUID implements hv.VCPU.
func (v *VCPU) CPUID() (hv.CPUID, error) { return nil, v.vm.unsupported(hv.CapCPUID) }

// SetCPUID implements hv.VCPU.
func (v *VCPU) SetCPUID(t hv.CPUID) error { return v.vm.unsupported(hv.CapCPUID) }
