//go:build !amd64 && !arm64

package kvm

// The kvm backend on architectures it is not built for yet: Open reports
// the backend unavailable with the reason, so the binary (and its emu
// backend) still works there. Everything below is unreachable without a
// *Hypervisor and exists so the neutral files compile.

import (
	"context"

	"github.com/kvmspec/kvmspec/harness/hv"
)

const archUnavailable = "x86-64 and arm64 only so far"

type archHypervisor struct{}

type archVM struct{}

type archVCPU struct{}

// archIoctlTable: no arch-specific constants to check here.
var archIoctlTable []ioctlEntry

func errArch(c hv.Cap) error { return hv.Unsupported(Name, c, archUnavailable) }

func (h *Hypervisor) archOpen() error {
	return &hv.UnavailableError{Backend: Name, Reason: archUnavailable}
}
func (h *Hypervisor) archCaps(c *hv.Caps)                       {}
func (h *Hypervisor) archVMType(hv.VMConfig) (uintptr, error)   { return 0, errArch(hv.CapLongMode) }
func (vm *VM) archConfig() error                                { return errArch(hv.CapLongMode) }
func (vm *VM) archClose() error                                 { return nil }
func (v *VCPU) archCreate() error                               { return errArch(hv.CapLongMode) }
func (v *VCPU) decodeDebug()                                    {}
func (v *VCPU) wake()                                           {}
func (v *VCPU) afterExit()                                      {}
func (v *VCPU) beforeEntry() error                              { return errArch(hv.CapLongMode) }
func (v *VCPU) archExit(context.Context, hv.Exit) (bool, error) { return false, nil }

// Regs implements hv.VCPU.
func (v *VCPU) Regs() (hv.Regs, error) { return hv.Regs{}, errArch(hv.CapLongMode) }

// SetRegs implements hv.VCPU.
func (v *VCPU) SetRegs(*hv.Regs) error { return errArch(hv.CapLongMode) }

// Sregs implements hv.VCPU.
func (v *VCPU) Sregs() (hv.Sregs, error) { return hv.Sregs{}, errArch(hv.CapLongMode) }

// SetSregs implements hv.VCPU.
func (v *VCPU) SetSregs(*hv.Sregs) error { return errArch(hv.CapLongMode) }

// GetMSR implements hv.VCPU.
func (v *VCPU) GetMSR(uint32) (uint64, error) { return 0, errArch(hv.CapLongMode) }

// SetMSR implements hv.VCPU.
func (v *VCPU) SetMSR(uint32, uint64) error { return errArch(hv.CapLongMode) }

// DebugRegs implements hv.VCPU.
func (v *VCPU) DebugRegs() (hv.DebugRegs, error) { return hv.DebugRegs{}, errArch(hv.CapGuestDebug) }

// SetDebugRegs implements hv.VCPU.
func (v *VCPU) SetDebugRegs(*hv.DebugRegs) error { return errArch(hv.CapGuestDebug) }

// SetGuestDebug implements hv.VCPU.
func (v *VCPU) SetGuestDebug(*hv.GuestDebug) error { return errArch(hv.CapGuestDebug) }

// CPUID implements hv.VCPU.
func (v *VCPU) CPUID() (hv.CPUID, error) { return nil, errArch(hv.CapCPUID) }

// SetCPUID implements hv.VCPU.
func (v *VCPU) SetCPUID(hv.CPUID) error { return errArch(hv.CapCPUID) }

// Interrupt implements hv.Interrupts.
func (vm *VM) Interrupt(int, uint8) error { return errArch(hv.CapIRQChip) }

// SignalMSI implements hv.Interrupts.
func (vm *VM) SignalMSI(uint64, uint32) error { return errArch(hv.CapMSI) }

// SetIRQLine implements hv.Interrupts.
func (vm *VM) SetIRQLine(uint32, bool) error { return errArch(hv.CapIRQLine) }
