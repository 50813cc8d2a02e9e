package kvm

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// archUnavailable is empty where this backend is built for real.
const archUnavailable = ""

// archHypervisor is what the x86 backend learns once per /dev/kvm.
type archHypervisor struct {
	// cpuid is KVM_GET_SUPPORTED_CPUID: every new vCPU's default table.
	cpuid []cpuidEntry2
	// irq is the interrupt path VMConfig.IRQChip gets here.
	irq irqMode
	// debugMask is the KVM_GUESTDBG_* flags KVM accepts.
	debugMask uint32
}

// archVMType is KVM_CREATE_VM's type: 0 (KVM_X86_DEFAULT_VM); an arm64
// machine type has no meaning here.
func (h *Hypervisor) archVMType(cfg hv.VMConfig) (uintptr, error) {
	if cfg.ARM64Type != 0 {
		return 0, hv.Unsupported(Name, hv.CapARM64IPASize, "VMConfig.ARM64Type %v: guests here are x86-64", cfg.ARM64Type)
	}
	return 0, nil
}

// archClose: the x86 VM holds no in-kernel device descriptors.
func (vm *VM) archClose() error { return nil }

func (h *Hypervisor) archOpen() error {
	var err error
	if h.arch.cpuid, err = h.supportedCPUID(); err != nil {
		return &hv.UnavailableError{Backend: Name, Reason: "KVM_GET_SUPPORTED_CPUID failed", Err: err}
	}
	return nil
}

// archCaps adds the x86 capabilities: debug flags, MSR exits, PMU,
// interrupt controllers, CPUID, and what PVM cannot do.
func (h *Hypervisor) archCaps(c *hv.Caps) {
	gd := h.capFromExt(c, hv.CapGuestDebug, capSetGuestDebug, "KVM_CAP_SET_GUEST_DEBUG")
	h.arch.debugMask = debugCaps(c, gd != 0, uint32(h.CheckExtension(capSetGuestDebug2)))
	h.capFromExt(c, hv.CapUserSpaceMSR, capX86UserSpaceMSR, "KVM_CAP_X86_USER_SPACE_MSR")
	h.irqCaps(c)
	c.Set(hv.CapCPUID, true, uint64(len(h.arch.cpuid)), fmt.Sprintf("KVM_GET_CPUID2/KVM_SET_CPUID2, default: KVM_GET_SUPPORTED_CPUID (%d entries)", len(h.arch.cpuid)))

	// PMU: the module parameter is the usual reason; CPUID leaf 0xA says
	// what the guest would see.
	pmuVersion := 0
	for _, e := range h.arch.cpuid {
		if e.function == hv.CPUIDLeafPMU {
			p := hv.DecodePMULeaf(fromKVMCPUID(e))
			pmuVersion = p.Version
			c.PMU = hv.PMUInfo{Version: p.Version, GPCounters: p.GPCounters, CounterWidth: p.GPWidth, FixedCounters: int(e.edx & 0x1f)}
		}
	}
	switch p, ok := h.ModuleParam("kvm", "enable_pmu"); {
	case ok && p == "N":
		c.Set(hv.CapPMU, false, 0, "PMU disabled (kvm.enable_pmu=N)")
	case pmuVersion == 0:
		c.Set(hv.CapPMU, false, 0, "no architectural PMU in KVM_GET_SUPPORTED_CPUID leaf 0xA")
	default:
		c.Set(hv.CapPMU, true, uint64(pmuVersion), fmt.Sprintf("architectural PMU v%d, %d counters", pmuVersion, c.PMU.GPCounters))
	}
	if h.IsPVM() {
		c.Set(hv.CapCPL0Native, false, 0, "kvm_pvm: guest CPL0 code runs in KVM's instruction emulator (~1 µs/instruction)")
		c.Set(hv.CapInstructionSet, false, 0, "kvm_pvm: int3, int n and vmcall at CPL0 fail in KVM's emulator")
	} else {
		c.Set(hv.CapCPL0Native, true, 0, "hardware virtualization")
		c.Set(hv.CapInstructionSet, true, 0, "hardware virtualization")
	}
}

// debugCaps derives the guest debug capabilities from
// KVM_CAP_SET_GUEST_DEBUG2, the mask of KVM_GUESTDBG_* flags KVM accepts
// (0 on kernels before 5.16, where the pre-BLOCKIRQ set is assumed when
// KVM_CAP_SET_GUEST_DEBUG exists), and returns the mask it assumed.
func debugCaps(c *hv.Caps, debug bool, mask uint32) uint32 {
	src := fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=%#x", mask)
	if mask == 0 && debug {
		mask = guestDbgEnable | guestDbgSingleStep | guestDbgUseSWBP | guestDbgUseHWBP | guestDbgInjectDB | guestDbgInjectBP
		src = fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=0, KVM_CAP_SET_GUEST_DEBUG=1: assumed %#x (pre-5.16 set)", mask)
	}
	if !debug && mask == 0 {
		src = "KVM_CAP_SET_GUEST_DEBUG=0"
	}
	for _, d := range debugFlagCaps {
		ok := mask&guestDbgEnable != 0 && mask&d.need == d.need
		reason := src
		if !ok {
			reason = fmt.Sprintf("%s lacks %s", src, hv.DebugFlags(d.need&^mask|guestDbgEnable&^mask))
		}
		c.Set(d.cp, ok, uint64(mask), reason)
	}
	return mask
}

// debugFlagCaps says which capability each KVM_GUESTDBG_* flag stands for.
var debugFlagCaps = []struct {
	cp   hv.Cap
	need uint32
}{
	{hv.CapSoftwareBP, guestDbgUseSWBP},
	{hv.CapHWBreakpoint, guestDbgUseHWBP},
	{hv.CapWatchpoint, guestDbgUseHWBP},
	{hv.CapSingleStep, guestDbgSingleStep},
	{hv.CapBlockIRQ, guestDbgBlockIRQ},
	{hv.CapDebugInject, guestDbgInjectDB | guestDbgInjectBP},
}
