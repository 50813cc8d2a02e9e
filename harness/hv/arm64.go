package hv

import "fmt"

// The contract on arm64 guests. The VCPU and VM interfaces were written
// for x86 (Regs, Sregs, MSRs, CPUID); a backend whose guests are AArch64
// answers those with ErrUnsupported and offers the optional interfaces
// below, which callers reach with a type assertion after checking
// Caps.Arch.

// Arch is the architecture of a backend's guests.
type Arch string

// Guest architectures.
const (
	// ArchX86_64 is the contract's original architecture; Caps.Arch ""
	// means it too, for backends written before Arch existed.
	ArchX86_64 Arch = "x86-64"
	// ArchARM64 is AArch64 (KVM on arm64).
	ArchARM64 Arch = "arm64"
)

// GuestArch is the architecture of the guests: Arch, or ArchX86_64 when
// the backend leaves it empty.
func (cs Caps) GuestArch() Arch {
	if cs.Arch == "" {
		return ArchX86_64
	}
	return cs.Arch
}

// Capabilities of arm64 backends.
const (
	CapARM64    Cap = "arm64"         // AArch64 guests: ARM64VM / ARM64VCPU
	CapVGICv3   Cap = "arm64-vgic-v3" // ARM64VM.CreateVGICv3 and IRQLine
	CapARM64PMU Cap = "arm64-pmuv3"   // ARM64VCPUFeatures.PMUv3 and the ARM64VCPU PMU controls
)

// ARM64VCPUFeatures are the features a vCPU is created with (KVM:
// KVM_ARM_VCPU_INIT's feature bits). PSCI 0.2 is on wherever the
// hypervisor offers it.
type ARM64VCPUFeatures struct {
	// PMUv3 gives the vCPU a PMUv3; it needs SetPMUIRQ and InitPMU
	// (after the vGIC is initialized) before the first Run.
	PMUv3 bool
	// PowerOff creates the vCPU powered off: it waits for a PSCI CPU_ON
	// from another vCPU.
	PowerOff bool
}

// ARM64VM is a VM of AArch64 guests.
type ARM64VM interface {
	VM
	// NewARM64VCPU creates vCPU id with features f (NewVCPU(id) is
	// NewARM64VCPU(id, ARM64VCPUFeatures{})). Recent KVM wants every
	// vCPU of a VM created with the same features (PowerOff aside).
	NewARM64VCPU(id int, f ARM64VCPUFeatures) (ARM64VCPU, error)
	// CreateVGICv3 creates the GICv3 with its distributor (64 KiB) and
	// redistributor region (128 KiB per vCPU) at these guest-physical
	// addresses and nrIRQs interrupt IDs (0: KVM's default, 256; else a
	// multiple of 32 in [64, 992]) and initializes it: create every vCPU
	// first.
	CreateVGICv3(distBase, redistBase uint64, nrIRQs int) error
	// IRQLine raises (level true) or lowers an interrupt at the vGIC:
	// an SPI (intid 32..1019, any vCPU) or a PPI (intid 16..31) of vCPU
	// vcpu.
	IRQLine(kind ARM64IRQKind, vcpu int, intid uint32, level bool) error
}

// ARM64IRQKind is the kind of an interrupt line (KVM_ARM_IRQ_TYPE_*).
type ARM64IRQKind uint8

// Interrupt line kinds, with KVM's values.
const (
	ARM64IRQCPU ARM64IRQKind = 0 // the vCPU's IRQ/FIQ pin itself (no vGIC)
	ARM64IRQSPI ARM64IRQKind = 1 // shared peripheral interrupt
	ARM64IRQPPI ARM64IRQKind = 2 // private peripheral interrupt
)

// ARM64VCPU is a vCPU of an AArch64 guest. Register ids are KVM's
// ONE_REG ids (see ARM64CoreReg and ARM64SysReg).
type ARM64VCPU interface {
	VCPU
	// GetOneReg reads a 64-bit (or narrower) register.
	GetOneReg(id uint64) (uint64, error)
	// SetOneReg writes a 64-bit (or narrower) register.
	SetOneReg(id uint64, v uint64) error
	// RegList is every register id the vCPU exposes.
	RegList() ([]uint64, error)
	// SetARM64GuestDebug sets host-side debugging with the arm64
	// breakpoint and watchpoint registers.
	SetARM64GuestDebug(d *ARM64GuestDebug) error
	// SetPMUIRQ sets the PPI of the vCPU's PMU overflow interrupt.
	SetPMUIRQ(intid uint32) error
	// SetPMUFilter allows or denies a range of PMU events.
	SetPMUFilter(f ARM64PMUFilter) error
	// InitPMU finishes the vCPU's PMU setup.
	InitPMU() error
}

// ARM64MaxDebugRegs is the size of each breakpoint/watchpoint array
// (KVM_ARM_MAX_DBG_REGS); the host offers Caps.Value(CapHWBreakpoint)
// breakpoints and Caps.Value(CapWatchpoint) watchpoints of them.
const ARM64MaxDebugRegs = 16

// ARM64GuestDebug is host-side debugging on arm64. Flags uses the
// DebugEnable, DebugSingleStep, DebugUseSWBP (BRK exits to the host) and
// DebugUseHWBP (the registers below replace the guest's) bits.
type ARM64GuestDebug struct {
	Flags    DebugFlags
	BCR, BVR [ARM64MaxDebugRegs]uint64 // breakpoint control and value
	WCR, WVR [ARM64MaxDebugRegs]uint64 // watchpoint control and value
}

// ARM64PMUFilter is one PMU event filter range (struct
// kvm_pmu_event_filter of arm64).
type ARM64PMUFilter struct {
	BaseEvent uint16
	NEvents   uint16
	Action    PMUFilterAction
}

// ONE_REG register ids (KVM's encoding, shared by every arm64
// hypervisor interface that names registers by id).
const (
	arm64RegArch   = 0x6000000000000000 // KVM_REG_ARM64
	arm64RegSize64 = 0x0030000000000000 // KVM_REG_SIZE_U64
	arm64RegSize32 = 0x0020000000000000 // KVM_REG_SIZE_U32
	arm64RegCore   = 0x0010 << 16       // KVM_REG_ARM_CORE
	arm64RegSys    = 0x0013 << 16       // KVM_REG_ARM64_SYSREG
	arm64RegFW     = 0x0014 << 16       // KVM_REG_ARM_FW
	arm64CoprocMsk = 0x0fff << 16
	arm64SizeMask  = 0x00f0000000000000
	arm64SizeShift = 52
)

// Offsets in struct kvm_regs of the core registers, in bytes: x0..x30,
// sp (SP_EL0), pc, pstate, then sp_el1, elr_el1 and the five SPSRs.
const (
	arm64OffSP     = 31 * 8
	arm64OffPC     = 32 * 8
	arm64OffPSTATE = 33 * 8
	arm64OffSPEL1  = 34 * 8
	arm64OffELREL1 = 35 * 8
	arm64OffSPSR   = 36 * 8
)

// ARM64CoreReg is the id of the core register at byte offset off of
// struct kvm_regs, width bytes wide: 8, or 4 for fpsr and fpcr (ids
// count 32-bit words).
func ARM64CoreReg(off int, width int) uint64 {
	size := uint64(arm64RegSize64)
	if width == 4 {
		size = arm64RegSize32
	}
	return arm64RegArch | size | arm64RegCore | uint64(off/4)
}

// ARM64X is the id of general-purpose register Xn (0..30).
func ARM64X(n int) uint64 { return ARM64CoreReg(8*n, 8) }

// Core register ids.
var (
	ARM64RegSP     = ARM64CoreReg(arm64OffSP, 8) // SP_EL0
	ARM64RegPC     = ARM64CoreReg(arm64OffPC, 8)
	ARM64RegPSTATE = ARM64CoreReg(arm64OffPSTATE, 8)
	ARM64RegSPEL1  = ARM64CoreReg(arm64OffSPEL1, 8)
	ARM64RegELREL1 = ARM64CoreReg(arm64OffELREL1, 8)
)

// ARM64SPSR is the id of SPSR number i (0 = SPSR_EL1, then the AArch32
// abt, und, irq, fiq banks).
func ARM64SPSR(i int) uint64 { return ARM64CoreReg(arm64OffSPSR+8*i, 8) }

// ARM64SysReg is the id of the 64-bit system register with this
// encoding (the operands of MRS/MSR).
func ARM64SysReg(op0, op1, crn, crm, op2 uint8) uint64 {
	return arm64RegArch | arm64RegSize64 | arm64RegSys |
		uint64(op0&3)<<14 | uint64(op1&7)<<11 | uint64(crn&15)<<7 | uint64(crm&15)<<3 | uint64(op2&7)
}

// ARM64FWReg is the id of KVM's firmware pseudo-register r (0: the PSCI
// version).
func ARM64FWReg(r uint16) uint64 { return arm64RegArch | arm64RegSize64 | arm64RegFW | uint64(r) }

// ARM64SysRegFields decodes a system register id; ok is false for ids of
// other kinds.
func ARM64SysRegFields(id uint64) (op0, op1, crn, crm, op2 uint8, ok bool) {
	if id&^(arm64SizeMask|0xffff|arm64CoprocMsk) != arm64RegArch || id&arm64CoprocMsk != arm64RegSys {
		return 0, 0, 0, 0, 0, false
	}
	return uint8(id >> 14 & 3), uint8(id >> 11 & 7), uint8(id >> 7 & 15), uint8(id >> 3 & 15), uint8(id & 7), true
}

// ARM64RegBytes is the size of the register id names, in bytes.
func ARM64RegBytes(id uint64) int { return 1 << (id & arm64SizeMask >> arm64SizeShift) }

// Well-known system registers, by encoding.
var (
	ARM64SCTLREL1   = ARM64SysReg(3, 0, 1, 0, 0)
	ARM64TTBR0EL1   = ARM64SysReg(3, 0, 2, 0, 0)
	ARM64TCREL1     = ARM64SysReg(3, 0, 2, 0, 2)
	ARM64ESREL1     = ARM64SysReg(3, 0, 5, 2, 0)
	ARM64FAREL1     = ARM64SysReg(3, 0, 6, 0, 0)
	ARM64MAIREL1    = ARM64SysReg(3, 0, 10, 2, 0)
	ARM64VBAREL1    = ARM64SysReg(3, 0, 12, 0, 0)
	ARM64MPIDREL1   = ARM64SysReg(3, 0, 0, 0, 5)
	ARM64MIDREL1    = ARM64SysReg(3, 0, 0, 0, 0)
	ARM64CPACREL1   = ARM64SysReg(3, 0, 1, 0, 2)
	ARM64TPIDREL1   = ARM64SysReg(3, 0, 13, 0, 4)
	ARM64PMCREL0    = ARM64SysReg(3, 3, 9, 12, 0)
	ARM64IDAA64DFR0 = ARM64SysReg(3, 0, 0, 5, 0)
)

// ARM64RegName names a register id for messages: "x3", "pc",
// "sysreg(3,0,1,0,0)" or the id in hex.
func ARM64RegName(id uint64) string {
	switch id {
	case ARM64RegSP:
		return "sp_el0"
	case ARM64RegPC:
		return "pc"
	case ARM64RegPSTATE:
		return "pstate"
	case ARM64RegSPEL1:
		return "sp_el1"
	case ARM64RegELREL1:
		return "elr_el1"
	}
	for n := 0; n < 31; n++ {
		if id == ARM64X(n) {
			return fmt.Sprintf("x%d", n)
		}
	}
	for i := 0; i < 5; i++ {
		if id == ARM64SPSR(i) {
			return fmt.Sprintf("spsr[%d]", i)
		}
	}
	if op0, op1, crn, crm, op2, ok := ARM64SysRegFields(id); ok {
		return fmt.Sprintf("sysreg(%d,%d,%d,%d,%d)", op0, op1, crn, crm, op2)
	}
	return fmt.Sprintf("reg %#x", id)
}

// PSTATE bits and modes used to start a guest.
const (
	ARM64PStateModeEL1h = 0x5    // EL1 with SP_EL1
	ARM64PStateModeEL0t = 0x0    // EL0
	ARM64PStateF        = 1 << 6 // FIQ masked
	ARM64PStateI        = 1 << 7 // IRQ masked
	ARM64PStateA        = 1 << 8 // SError masked
	ARM64PStateD        = 1 << 9 // debug exceptions masked
	ARM64PStateDAIF     = ARM64PStateD | ARM64PStateA | ARM64PStateI | ARM64PStateF
)

// PSCI 0.2 function ids (SMC32 calling convention) a guest passes in x0
// to HVC #0.
const (
	PSCIVersion     = 0x84000000
	PSCICPUOff      = 0x84000002
	PSCISystemOff   = 0x84000008
	PSCISystemReset = 0x84000009
)
