package kvm

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// archUnavailable is empty where this backend is built for real.
const archUnavailable = ""

// archHypervisor is what the arm64 backend learns once per /dev/kvm.
type archHypervisor struct {
	// target is KVM_ARM_PREFERRED_TARGET's CPU model, what every vCPU
	// is initialized as.
	target uint32
	// psci02 says KVM_ARM_VCPU_PSCI_0_2 may be asked for.
	psci02 bool
	// vgicErr is why a GICv3 cannot be created here (nil: it can);
	// itsErr the same of its ITS.
	vgicErr, itsErr error
	// debugMask is the KVM_GUESTDBG_* flags KVM accepts.
	debugMask uint32
}

// archOpen asks a scratch VM what only a VM can answer: the preferred
// vCPU target and whether the in-kernel GICv3 exists.
func (h *Hypervisor) archOpen() error {
	fd, err := ioctl(h.fd, kvmCreateVM, 0)
	if err != nil {
		return &hv.UnavailableError{Backend: Name, Reason: "KVM_CREATE_VM failed", Err: err}
	}
	defer unix.Close(int(fd))
	init, err := preferredTarget(int(fd))
	if err != nil {
		return &hv.UnavailableError{Backend: Name, Reason: "KVM_ARM_PREFERRED_TARGET failed", Err: err}
	}
	h.arch.target = init.target
	h.arch.psci02 = h.CheckExtension(capARMPSCI02) != 0
	if err := testCreateDevice(int(fd), devTypeARMVGICV3); err != nil {
		h.arch.vgicErr = fmt.Errorf("KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_V3, TEST): %w", err)
	}
	if err := testCreateDevice(int(fd), devTypeARMVGICITS); err != nil {
		h.arch.itsErr = fmt.Errorf("KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_ITS, TEST): %w", err)
	}
	return nil
}

// archVMType is KVM_CREATE_VM's type: the machine type as given,
// reserved bits included, so KVM is the one that refuses them (and an
// IPA size outside [32, KVM_CAP_ARM_VM_IPA_SIZE]).
func (h *Hypervisor) archVMType(cfg hv.VMConfig) (uintptr, error) {
	return uintptr(cfg.ARM64Type), nil
}

// archClose closes the vGIC, which holds a reference on the VM.
func (vm *VM) archClose() error {
	vm.arch.mu.Lock()
	defer vm.arch.mu.Unlock()
	itsErr := vm.closeITSs()
	if !vm.arch.hasVGIC {
		return itsErr
	}
	vm.arch.hasVGIC = false
	if err := unix.Close(vm.arch.vgicFD); err != nil {
		return fmt.Errorf("close vgic fd: %w", err)
	}
	return itsErr
}

// archCaps records what arm64 KVM offers, and says for each x86 notion
// of the contract that it does not exist here.
func (h *Hypervisor) archCaps(c *hv.Caps) {
	c.Arch = hv.ArchARM64
	c.Set(hv.CapLongMode, false, 0, "arm64: guests are AArch64 (hv.ArchARM64); x86 long mode does not exist here")
	c.Set(hv.CapARM64, true, uint64(h.arch.target), fmt.Sprintf("KVM_ARM_PREFERRED_TARGET=%d, KVM_CAP_ARM_PSCI_0_2=%t", h.arch.target, h.arch.psci02))
	gd := h.capFromExt(c, hv.CapGuestDebug, capSetGuestDebug, "KVM_CAP_SET_GUEST_DEBUG")
	h.arch.debugMask = armDebugCaps(c, gd != 0, uint32(h.CheckExtension(capSetGuestDebug2)),
		h.CheckExtension(capGuestDebugHWBPs), h.CheckExtension(capGuestDebugHWWPs))
	if h.arch.vgicErr != nil {
		c.Set(hv.CapVGICv3, false, 0, h.arch.vgicErr.Error())
	} else {
		c.Set(hv.CapVGICv3, true, 0, "KVM_DEV_TYPE_ARM_VGIC_V3")
	}
	switch {
	case h.arch.vgicErr != nil:
		c.Set(hv.CapVGICITS, false, 0, "no vGICv3: "+h.arch.vgicErr.Error())
	case h.arch.itsErr != nil:
		c.Set(hv.CapVGICITS, false, 0, h.arch.itsErr.Error())
	default:
		c.Set(hv.CapVGICITS, true, 0, "KVM_DEV_TYPE_ARM_VGIC_ITS")
	}
	h.ipaCaps(c)
	pmu := h.CheckExtension(capARMPMUV3)
	if pmu != 0 {
		c.Set(hv.CapARM64PMU, true, 0, "KVM_CAP_ARM_PMU_V3")
		c.Set(hv.CapPMU, true, 3, "PMUv3 per vCPU (hv.ARM64VCPUFeatures.PMUv3)")
	} else {
		c.Set(hv.CapARM64PMU, false, 0, "KVM_CAP_ARM_PMU_V3=0")
		c.Set(hv.CapPMU, false, 0, "KVM_CAP_ARM_PMU_V3=0")
	}
	const gic = "x86 LAPIC + I/O APIC: arm64 interrupts go through the vGIC (hv.ARM64VM.CreateVGICv3, IRQLine)"
	c.Set(hv.CapIRQChip, false, 0, gic)
	c.Set(hv.CapIRQLine, false, 0, gic)
	c.Set(hv.CapMSI, false, 0, "x86 MSI through the LAPIC: arm64 MSIs go through a GIC ITS (hv.ARM64ITSVM), not SignalMSI")
	c.Set(hv.CapUserSpaceMSR, false, 0, "x86 MSRs do not exist on arm64")
	c.Set(hv.CapCPUID, false, 0, "x86 CPUID does not exist on arm64 (ID registers are ONE_REG system registers)")
	c.Set(hv.CapCPL0Native, true, 0, "hardware virtualization (EL1 runs natively)")
	c.Set(hv.CapInstructionSet, false, 0, "the x86 instruction subset: guests here are AArch64")
}

// armDebugCaps derives the guest debug capabilities from
// KVM_CAP_SET_GUEST_DEBUG2's mask (0 before 5.16, where ENABLE,
// SINGLESTEP, USE_SW_BP and USE_HW are assumed when
// KVM_CAP_SET_GUEST_DEBUG exists) and the breakpoint and watchpoint
// counts, and returns the mask it assumed.
func armDebugCaps(c *hv.Caps, debug bool, mask uint32, bps, wps int) uint32 {
	src := fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=%#x", mask)
	if mask == 0 && debug {
		mask = guestDbgEnable | guestDbgSingleStep | guestDbgUseSWBP | guestDbgUseHW
		src = fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=0, KVM_CAP_SET_GUEST_DEBUG=1: assumed %#x", mask)
	}
	if !debug && mask == 0 {
		src = "KVM_CAP_SET_GUEST_DEBUG=0"
	}
	has := func(f uint32) bool { return mask&guestDbgEnable != 0 && mask&f == f }
	set := func(cp hv.Cap, f uint32, n int, what string) {
		switch {
		case !has(f):
			c.Set(cp, false, uint64(mask), fmt.Sprintf("%s lacks %s", src, hv.DebugFlags(f|guestDbgEnable&^mask)))
		case what == "":
			c.Set(cp, true, uint64(mask), src)
		case n <= 0:
			c.Set(cp, false, 0, fmt.Sprintf("%s=%d", what, n))
		default:
			c.Set(cp, true, uint64(n), fmt.Sprintf("%s; %s=%d", src, what, n))
		}
	}
	set(hv.CapSingleStep, guestDbgSingleStep, 0, "")
	set(hv.CapSoftwareBP, guestDbgUseSWBP, 0, "")
	set(hv.CapHWBreakpoint, guestDbgUseHW, bps, "KVM_CAP_GUEST_DEBUG_HW_BPS")
	set(hv.CapWatchpoint, guestDbgUseHW, wps, "KVM_CAP_GUEST_DEBUG_HW_WPS")
	c.Set(hv.CapBlockIRQ, false, 0, "KVM_GUESTDBG_BLOCKIRQ is x86 only")
	c.Set(hv.CapDebugInject, false, 0, "KVM_GUESTDBG_INJECT_DB/BP are x86 only")
	return mask
}

// ipaCaps records KVM_CAP_ARM_VM_IPA_SIZE: the largest IPA size a
// machine type may ask for (0 on kernels before 4.20, where only the
// default 40 bits exist).
func (h *Hypervisor) ipaCaps(c *hv.Caps) {
	ipaCap(c, h.CheckExtension(capARMVMIPASize))
}

func ipaCap(c *hv.Caps, max int) {
	if max <= 0 {
		c.Set(hv.CapARM64IPASize, false, 0, fmt.Sprintf("KVM_CAP_ARM_VM_IPA_SIZE=%d: only the default %d-bit IPA space", max, hv.ARM64DefaultIPABits))
		return
	}
	c.Set(hv.CapARM64IPASize, true, uint64(max), fmt.Sprintf("KVM_CAP_ARM_VM_IPA_SIZE=%d", max))
}
