package kvm

import "github.com/kvmspec/kvmspec/harness/hv"

// arm64 ioctl numbers and constants of <linux/kvm.h> and <asm/kvm.h>:
// the ones whose encoding carries an arm64 struct size, or that exist on
// arm64 only. The host's C compiler targets x86 here, so they are checked
// against testdata/arm64-uapi.golden (printed by a probe built with
// aarch64-linux-gnu-gcc against the arm64 uapi headers; see
// arm64uapi_test.go) instead of the native header check.
const (
	kvmARMVCPUInit        = 0x4020aeae
	kvmARMPreferredTarget = 0x8020aeaf
	kvmSetGuestDebug      = 0x4208ae9b
)

// arm64 capability numbers.
const (
	capARMPSCI02         = 102
	capARMPMUV3          = 126
	capGuestDebugHWBPs   = 119
	capGuestDebugHWWPs   = 120
	capARMVMIPASize      = 165
	capARMIRQLineLayout2 = 174
)

// KVM_ARM_VCPU_INIT feature bits.
const (
	armVCPUPowerOff = 0
	armVCPUPSCI02   = 2
	armVCPUPMUV3    = 3
)

// The vGIC (KVM_DEV_TYPE_ARM_VGIC_V3) and its attribute groups.
const (
	devTypeARMVGICV3     = 7
	vgicV3AddrTypeDist   = 2
	vgicV3AddrTypeRedist = 3
	vgicV3DistSize       = 0x10000
	vgicV3RedistSize     = 0x20000
	vgicGrpAddr          = 0
	vgicGrpNrIRQs        = 3
	vgicGrpCtrl          = 4
	vgicCtrlInit         = 0
)

// The ITS (KVM_DEV_TYPE_ARM_VGIC_ITS) and the attributes that reach the
// redistributors and the tables in guest memory.
const (
	devTypeARMVGICITS     = 8
	vgicITSAddrType       = 4
	vgicV3ITSSize         = 0x20000
	vgicGrpRedistRegs     = 5
	vgicGrpITSRegs        = 8
	vgicV3MPIDRShift      = 32
	itsCtrlSaveTables     = 1
	itsCtrlRestoreTables  = 2
	vgicSavePendingTables = 3
	itsCtrlReset          = 4
)

// vCPU device attributes of the PMU (KVM_ARM_VCPU_PMU_V3_CTRL).
const (
	armVCPUPMUV3Ctrl   = 0
	armVCPUPMUV3IRQ    = 0
	armVCPUPMUV3Init   = 1
	armVCPUPMUV3Filter = 2
)

// KVM_IRQ_LINE's irq field on arm64: vcpu2 | type | vcpu | number.
const (
	armIRQVCPU2Shift = 28
	armIRQTypeShift  = 24
	armIRQVCPUShift  = 16
	armIRQNumMask    = 0xffff
)

// Guest debug flags: hv.DebugFlags carry KVM's values, and the arm64
// bits are x86's (KVM_GUESTDBG_USE_HW is x86's USE_HW_BP); deriving them
// from hv and checking them against the arm64 header proves both.
const (
	guestDbgUseSWBP = uint32(hv.DebugUseSWBP)
	guestDbgUseHW   = uint32(hv.DebugUseHWBP)
	armMaxDbgRegs   = hv.ARM64MaxDebugRegs
)

// arm64IoctlTable is every arm64 constant above (and the hv values that
// carry KVM's arm64 encodings) with its header expression; the names are
// the lines of testdata/arm64-uapi.golden.
var arm64IoctlTable = []ioctlEntry{
	{"KVM_ARM_VCPU_INIT", kvmARMVCPUInit, ""},
	{"KVM_ARM_PREFERRED_TARGET", kvmARMPreferredTarget, ""},
	{"KVM_SET_GUEST_DEBUG", kvmSetGuestDebug, ""},
	{"KVM_CAP_ARM_PSCI_0_2", capARMPSCI02, ""},
	{"KVM_CAP_ARM_PMU_V3", capARMPMUV3, ""},
	{"KVM_CAP_GUEST_DEBUG_HW_BPS", capGuestDebugHWBPs, ""},
	{"KVM_CAP_GUEST_DEBUG_HW_WPS", capGuestDebugHWWPs, ""},
	{"KVM_CAP_ARM_VM_IPA_SIZE", capARMVMIPASize, ""},
	{"KVM_CAP_ARM_IRQ_LINE_LAYOUT_2", capARMIRQLineLayout2, ""},
	{"KVM_VM_TYPE_ARM_IPA_SIZE_MASK", uint64(hv.ARM64IPASizeMask), ""},
	{"KVM_VM_TYPE_ARM_IPA_SIZE(32)", uint64(hv.ARM64IPASize(32)), ""},
	{"KVM_VM_TYPE_ARM_IPA_SIZE(52)", uint64(hv.ARM64IPASize(52)), ""},
	{"KVM_VM_TYPE_ARM_IPA_SIZE(0x134)", uint64(hv.ARM64IPASize(0x134)), ""},
	{"KVM_ARM_VCPU_POWER_OFF", armVCPUPowerOff, ""},
	{"KVM_ARM_VCPU_PSCI_0_2", armVCPUPSCI02, ""},
	{"KVM_ARM_VCPU_PMU_V3", armVCPUPMUV3, ""},
	{"KVM_DEV_TYPE_ARM_VGIC_V3", devTypeARMVGICV3, ""},
	{"KVM_VGIC_V3_ADDR_TYPE_DIST", vgicV3AddrTypeDist, ""},
	{"KVM_VGIC_V3_ADDR_TYPE_REDIST", vgicV3AddrTypeRedist, ""},
	{"KVM_VGIC_V3_DIST_SIZE", vgicV3DistSize, ""},
	{"KVM_VGIC_V3_REDIST_SIZE", vgicV3RedistSize, ""},
	{"KVM_DEV_ARM_VGIC_GRP_ADDR", vgicGrpAddr, ""},
	{"KVM_DEV_ARM_VGIC_GRP_NR_IRQS", vgicGrpNrIRQs, ""},
	{"KVM_DEV_ARM_VGIC_GRP_CTRL", vgicGrpCtrl, ""},
	{"KVM_DEV_ARM_VGIC_CTRL_INIT", vgicCtrlInit, ""},
	{"KVM_DEV_TYPE_ARM_VGIC_ITS", devTypeARMVGICITS, ""},
	{"KVM_VGIC_ITS_ADDR_TYPE", vgicITSAddrType, ""},
	{"KVM_VGIC_V3_ITS_SIZE", vgicV3ITSSize, ""},
	{"KVM_DEV_ARM_VGIC_GRP_REDIST_REGS", vgicGrpRedistRegs, ""},
	{"KVM_DEV_ARM_VGIC_GRP_ITS_REGS", vgicGrpITSRegs, ""},
	{"KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT", vgicV3MPIDRShift, ""},
	{"KVM_DEV_ARM_ITS_SAVE_TABLES", itsCtrlSaveTables, ""},
	{"KVM_DEV_ARM_ITS_RESTORE_TABLES", itsCtrlRestoreTables, ""},
	{"KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES", vgicSavePendingTables, ""},
	{"KVM_DEV_ARM_ITS_CTRL_RESET", itsCtrlReset, ""},
	{"hv.ITSSaveTables", uint64(hv.ITSSaveTables), ""},
	{"hv.ITSRestoreTables", uint64(hv.ITSRestoreTables), ""},
	{"hv.ITSReset", uint64(hv.ITSReset), ""},
	{"hv.ARM64ITSFrameSize", hv.ARM64ITSFrameSize, ""},
	{"KVM_ARM_VCPU_PMU_V3_CTRL", armVCPUPMUV3Ctrl, ""},
	{"KVM_ARM_VCPU_PMU_V3_IRQ", armVCPUPMUV3IRQ, ""},
	{"KVM_ARM_VCPU_PMU_V3_INIT", armVCPUPMUV3Init, ""},
	{"KVM_ARM_VCPU_PMU_V3_FILTER", armVCPUPMUV3Filter, ""},
	{"KVM_ARM_IRQ_VCPU2_SHIFT", armIRQVCPU2Shift, ""},
	{"KVM_ARM_IRQ_TYPE_SHIFT", armIRQTypeShift, ""},
	{"KVM_ARM_IRQ_VCPU_SHIFT", armIRQVCPUShift, ""},
	{"KVM_ARM_IRQ_NUM_MASK", armIRQNumMask, ""},
	{"KVM_ARM_IRQ_TYPE_CPU", uint64(hv.ARM64IRQCPU), ""},
	{"KVM_ARM_IRQ_TYPE_SPI", uint64(hv.ARM64IRQSPI), ""},
	{"KVM_ARM_IRQ_TYPE_PPI", uint64(hv.ARM64IRQPPI), ""},
	{"KVM_GUESTDBG_USE_SW_BP", uint64(guestDbgUseSWBP), ""},
	{"KVM_GUESTDBG_USE_HW", uint64(guestDbgUseHW), ""},
	{"KVM_ARM_MAX_DBG_REGS", armMaxDbgRegs, ""},
	{"KVM_PMU_EVENT_ALLOW", uint64(hv.PMUFilterAllow), ""},
	{"KVM_PMU_EVENT_DENY", uint64(hv.PMUFilterDeny), ""},
	{"ONE_REG X0", hv.ARM64X(0), ""},
	{"ONE_REG X30", hv.ARM64X(30), ""},
	{"ONE_REG SP", hv.ARM64RegSP, ""},
	{"ONE_REG PC", hv.ARM64RegPC, ""},
	{"ONE_REG PSTATE", hv.ARM64RegPSTATE, ""},
	{"ONE_REG SP_EL1", hv.ARM64RegSPEL1, ""},
	{"ONE_REG ELR_EL1", hv.ARM64RegELREL1, ""},
	{"ONE_REG SPSR[0]", hv.ARM64SPSR(0), ""},
	{"ONE_REG SPSR[4]", hv.ARM64SPSR(4), ""},
	{"ONE_REG SCTLR_EL1", hv.ARM64SCTLREL1, ""},
	{"ONE_REG TIMER_CTL", hv.ARM64SysReg(3, 3, 14, 3, 1), ""},
	{"ONE_REG PSCI_VERSION", hv.ARM64FWReg(0), ""},
}

// archIoctlTable is empty on arm64: the native header check compiles
// with the host's (x86) C compiler when cross-testing, so the arm64
// values are checked against the golden file (arm64IoctlTable) instead.
var archIoctlTable []ioctlEntry
