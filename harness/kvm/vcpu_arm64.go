package kvm

import (
	"context"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// archVCPU is a vCPU's arm64 state: the features it was created with.
type archVCPU struct {
	features hv.ARM64VCPUFeatures
}

var _ hv.ARM64VCPU = (*VCPU)(nil)

// archCreate initializes the vCPU (KVM_ARM_VCPU_INIT) as the preferred
// target with PSCI 0.2 (where KVM has it) and the asked-for features;
// KVM refuses every other vCPU ioctl before it.
func (v *VCPU) archCreate() error {
	init := vcpuInit{target: v.vm.h.arch.target}
	init.features[0] = v.arch.featureBits(v.vm.h.arch.psci02)
	if err := v.vcpuInit(&init); err != nil {
		return fmt.Errorf("KVM_ARM_VCPU_INIT target %d features %#x: %w", init.target, init.features[0], err)
	}
	return nil
}

// featureBits is the first word of kvm_vcpu_init.features.
func (a archVCPU) featureBits(psci02 bool) uint32 {
	var f uint32
	if psci02 {
		f |= 1 << armVCPUPSCI02
	}
	if a.features.PMUv3 {
		f |= 1 << armVCPUPMUV3
	}
	if a.features.PowerOff {
		f |= 1 << armVCPUPowerOff
	}
	return f
}

// decodeDebug reads struct kvm_debug_exit_arch (arm64) into v.debugExit:
// the syndrome, its exception class, the watchpoint address, and the PC
// (not in the exit: read with KVM_GET_ONE_REG on this, the vCPU's thread).
func (v *VCPU) decodeDebug() {
	esr := uint64(v.u32(runDebugHSR)) | uint64(v.u32(runDebugHSRHigh))<<32
	var pc uint64
	if v.fd > 0 { // decoding tests build a VCPU without a descriptor
		pc, _ = v.getOneReg(hv.ARM64RegPC)
	}
	v.debugExit = hv.DebugExit{Exception: uint32(esr >> 26 & 0x3f), PC: pc, ESR: esr, FAR: v.u64(runDebugFAR)}
}

// The in-kernel GIC and KVM's WFI handling need nothing of the run loop.
func (v *VCPU) wake()                                           {}
func (v *VCPU) afterExit()                                      {}
func (v *VCPU) beforeEntry() error                              { return nil }
func (v *VCPU) archExit(context.Context, hv.Exit) (bool, error) { return false, nil }

// GetOneReg implements hv.ARM64VCPU (KVM_GET_ONE_REG).
func (v *VCPU) GetOneReg(id uint64) (uint64, error) {
	var val uint64
	err := v.exec(func() error {
		var e error
		val, e = v.getOneReg(id)
		return e
	})
	return val, err
}

// SetOneReg implements hv.ARM64VCPU (KVM_SET_ONE_REG).
func (v *VCPU) SetOneReg(id uint64, val uint64) error {
	return v.exec(func() error { return v.setOneReg(id, val) })
}

// checkOneRegSize refuses registers wider than the uint64 the methods
// carry (the SIMD and SVE registers).
func checkOneRegSize(id uint64) error {
	if n := hv.ARM64RegBytes(id); n > 8 {
		return fmt.Errorf("register %s is %d bytes, wider than 8: %w", hv.ARM64RegName(id), n, unix.EINVAL)
	}
	return nil
}

// RegList implements hv.ARM64VCPU (KVM_GET_REG_LIST).
func (v *VCPU) RegList() ([]uint64, error) {
	var ids []uint64
	err := v.exec(func() error {
		var e error
		ids, e = v.regList()
		return e
	})
	return ids, err
}

// SetGuestDebug implements hv.VCPU. The x86 debug registers of
// GuestDebug.DebugReg do not exist here: with DebugUseHWBP use
// SetARM64GuestDebug; the flags alone (enable, single-step, software
// breakpoints) pass through.
func (v *VCPU) SetGuestDebug(g *hv.GuestDebug) error {
	if g.Flags&hv.DebugUseHWBP != 0 && g.DebugReg != [8]uint64{} {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG vcpu %d: %w", v.id,
			hv.Unsupported(Name, hv.CapHWBreakpoint, "x86 debug registers: arm64 breakpoints and watchpoints are set with SetARM64GuestDebug"))
	}
	return v.SetARM64GuestDebug(&hv.ARM64GuestDebug{Flags: g.Flags})
}

// SetARM64GuestDebug implements hv.ARM64VCPU. Flags KVM does not accept
// here are refused with the capability they need instead of KVM's bare
// EINVAL.
func (v *VCPU) SetARM64GuestDebug(d *hv.ARM64GuestDebug) error {
	if err := checkARMDebugFlags(v.vm.h.caps, v.vm.h.arch.debugMask, d.Flags); err != nil {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG vcpu %d: %w", v.id, err)
	}
	gd := guestDebug{control: uint32(d.Flags), arch: guestDebugArch{dbgBCR: d.BCR, dbgBVR: d.BVR, dbgWCR: d.WCR, dbgWVR: d.WVR}}
	return v.exec(func() error { return v.setGuestDebug(&gd) })
}

// checkARMDebugFlags refuses flags the contract does not know (EINVAL),
// x86-only flags and flags outside KVM's mask (errors wrapping
// hv.ErrUnsupported that name the capability).
func checkARMDebugFlags(c hv.Caps, mask uint32, f hv.DebugFlags) error {
	if rest := f &^ hv.DebugFlagsKnown; rest != 0 {
		return fmt.Errorf("unknown flags %#x: %w", uint32(rest), unix.EINVAL)
	}
	if f == 0 {
		return nil
	}
	if f&hv.DebugBlockIRQ != 0 {
		return c.Require(hv.CapBlockIRQ)
	}
	if f&(hv.DebugInjectDB|hv.DebugInjectBP) != 0 {
		return c.Require(hv.CapDebugInject)
	}
	if err := c.Require(hv.CapGuestDebug); err != nil {
		return err
	}
	missing := uint32(f) &^ mask
	switch {
	case missing == 0:
		return nil
	case missing&guestDbgSingleStep != 0:
		return hv.Unsupported(Name, hv.CapSingleStep, "flags %s not in KVM's mask %#x", hv.DebugFlags(missing), mask)
	case missing&guestDbgUseSWBP != 0:
		return hv.Unsupported(Name, hv.CapSoftwareBP, "flags %s not in KVM's mask %#x", hv.DebugFlags(missing), mask)
	case missing&guestDbgUseHW != 0:
		return hv.Unsupported(Name, hv.CapHWBreakpoint, "flags %s not in KVM's mask %#x", hv.DebugFlags(missing), mask)
	}
	return hv.Unsupported(Name, hv.CapGuestDebug, "flags %s not in KVM's mask %#x", hv.DebugFlags(missing), mask)
}

// SetPMUIRQ implements hv.ARM64VCPU (KVM_ARM_VCPU_PMU_V3_IRQ).
func (v *VCPU) SetPMUIRQ(intid uint32) error {
	if err := v.needPMU(); err != nil {
		return err
	}
	return v.exec(func() error {
		if err := v.setPMUIRQ(intid); err != nil {
			return fmt.Errorf("KVM_SET_DEVICE_ATTR PMU_V3_IRQ %d vcpu %d: %w", intid, v.id, err)
		}
		return nil
	})
}

// InitPMU implements hv.ARM64VCPU (KVM_ARM_VCPU_PMU_V3_INIT).
func (v *VCPU) InitPMU() error {
	if err := v.needPMU(); err != nil {
		return err
	}
	return v.exec(func() error {
		if err := setDeviceAttrNone(v.fd, armVCPUPMUV3Ctrl, armVCPUPMUV3Init); err != nil {
			return fmt.Errorf("KVM_SET_DEVICE_ATTR PMU_V3_INIT vcpu %d: %w", v.id, err)
		}
		return nil
	})
}

// SetPMUFilter implements hv.ARM64VCPU (KVM_ARM_VCPU_PMU_V3_FILTER).
func (v *VCPU) SetPMUFilter(f hv.ARM64PMUFilter) error {
	if err := v.needPMU(); err != nil {
		return err
	}
	return v.exec(func() error {
		if err := v.setPMUFilter(f); err != nil {
			return fmt.Errorf("KVM_SET_DEVICE_ATTR PMU_V3_FILTER events [%d, +%d) action %d vcpu %d: %w", f.BaseEvent, f.NEvents, f.Action, v.id, err)
		}
		return nil
	})
}

func (v *VCPU) needPMU() error {
	if err := v.vm.h.caps.Require(hv.CapARM64PMU); err != nil {
		return err
	}
	if !v.arch.features.PMUv3 {
		return fmt.Errorf("vcpu %d: created without PMUv3 (hv.ARM64VCPUFeatures.PMUv3): %w", v.id, unix.ENXIO)
	}
	return nil
}

// The x86 register, MSR and CPUID methods of hv.VCPU: the capability
// that would offer them says why they do not exist here.

// Regs implements hv.VCPU.
func (v *VCPU) Regs() (hv.Regs, error) { return hv.Regs{}, v.vm.h.caps.Require(hv.CapLongMode) }

// SetRegs implements hv.VCPU.
func (v *VCPU) SetRegs(*hv.Regs) error { return v.vm.h.caps.Require(hv.CapLongMode) }

// Sregs implements hv.VCPU.
func (v *VCPU) Sregs() (hv.Sregs, error) { return hv.Sregs{}, v.vm.h.caps.Require(hv.CapLongMode) }

// SetSregs implements hv.VCPU.
func (v *VCPU) SetSregs(*hv.Sregs) error { return v.vm.h.caps.Require(hv.CapLongMode) }

// GetMSR implements hv.VCPU.
func (v *VCPU) GetMSR(uint32) (uint64, error) { return 0, v.vm.h.caps.Require(hv.CapUserSpaceMSR) }

// SetMSR implements hv.VCPU.
func (v *VCPU) SetMSR(uint32, uint64) error { return v.vm.h.caps.Require(hv.CapUserSpaceMSR) }

// DebugRegs implements hv.VCPU: x86's DR0-DR7.
func (v *VCPU) DebugRegs() (hv.DebugRegs, error) {
	return hv.DebugRegs{}, v.vm.h.caps.Require(hv.CapLongMode)
}

// SetDebugRegs implements hv.VCPU: x86's DR0-DR7.
func (v *VCPU) SetDebugRegs(*hv.DebugRegs) error { return v.vm.h.caps.Require(hv.CapLongMode) }

// CPUID implements hv.VCPU.
func (v *VCPU) CPUID() (hv.CPUID, error) { return nil, v.vm.h.caps.Require(hv.CapCPUID) }

// SetCPUID implements hv.VCPU.
func (v *VCPU) SetCPUID(hv.CPUID) error { return v.vm.h.caps.Require(hv.CapCPUID) }
