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

// CapVGICITS is the vGICv3's Interrupt Translation Service
// (ARM64ITSVM): an ITS device, its registers, the commands it reads from
// guest memory and the saving and restoring of its tables there.
const CapVGICITS Cap = "arm64-vgic-its"

// ARM64ITSVM is an ARM64VM whose vGICv3 can have an ITS and whose
// redistributors the host can program (KVM: the kvm-arm-vgic-v3 and
// kvm-arm-vgic-its devices' attributes). Create the vGIC first.
type ARM64ITSVM interface {
	ARM64VM
	// CreateITS creates an ITS whose 128 KiB register frame is at base
	// (64 KiB aligned).
	CreateITS(base uint64) (ARM64ITS, error)
	// GetRedistReg reads the 32-bit redistributor register at offset off
	// (GICR_*; a 64-bit register is two, at off and off+4) of vCPU vcpu.
	// Offsets are from RD_base: the SGI_base frame's registers
	// (GICR_ISPENDR0, ...) are at 0x10000 + theirs.
	GetRedistReg(vcpu int, off uint32) (uint32, error)
	// SetRedistReg writes one.
	SetRedistReg(vcpu int, off uint32, v uint32) error
	// SaveVGICPendingTables writes the pending state of every LPI into
	// its redistributor's pending table in guest memory.
	SaveVGICPendingTables() error
}

// ARM64ITS is one ITS of a VM.
type ARM64ITS interface {
	// GetReg reads the ITS register at offset off (GITS_*); every
	// register is read and written as 64 bits, GITS_CTLR's upper half
	// being zero.
	GetReg(off uint32) (uint64, error)
	// SetReg writes one; writing GITS_CWRITER makes an enabled ITS run
	// the commands queued in guest memory up to it.
	SetReg(off uint32, v uint64) error
	// Ctrl saves the ITS's tables into guest memory, restores them from
	// it, or resets the ITS.
	Ctrl(op ARM64ITSCtrl) error
	// Close releases the device; the VM's Close releases it too.
	Close() error
}

// ARM64ITSCtrl is an ITS control operation, with KVM's attribute value
// (group KVM_DEV_ARM_VGIC_GRP_CTRL).
type ARM64ITSCtrl uint64

// ITS control operations.
const (
	ITSSaveTables    ARM64ITSCtrl = 1 // KVM_DEV_ARM_ITS_SAVE_TABLES
	ITSRestoreTables ARM64ITSCtrl = 2 // KVM_DEV_ARM_ITS_RESTORE_TABLES
	ITSReset         ARM64ITSCtrl = 4 // KVM_DEV_ARM_ITS_CTRL_RESET
)

func (op ARM64ITSCtrl) String() string {
	switch op {
	case ITSSaveTables:
		return "SAVE_TABLES"
	case ITSRestoreTables:
		return "RESTORE_TABLES"
	case ITSReset:
		return "CTRL_RESET"
	}
	return fmt.Sprintf("its-ctrl(%d)", uint64(op))
}

// GICv3 register offsets (the GICv3 architecture's): ITS registers from
// the ITS frame, redistributor registers from the RD_base frame.
const (
	GITSCtlr    = 0x0000
	GITSIIDR    = 0x0004
	GITSTyper   = 0x0008
	GITSCBaser  = 0x0080
	GITSCWriter = 0x0088
	GITSCReadr  = 0x0090
	GITSBaser0  = 0x0100 // GITS_BASER<n> is at GITSBaser0 + 8n

	GICRCtlr      = 0x0000
	GICRTyper     = 0x0008
	GICRPropBaser = 0x0070
	GICRPendBaser = 0x0078

	ARM64ITSFrameSize = 0x20000 // the ITS frame and its translation frame
)

// ITSCommand is one 32-byte ITS command as it sits in the command queue
// (four little-endian doublewords, GICv3 architecture encoding).
type ITSCommand [4]uint64

// ITS command numbers.
const (
	ITSCmdInt   = 0x03
	ITSCmdSync  = 0x05
	ITSCmdMapD  = 0x08
	ITSCmdMapC  = 0x09
	ITSCmdMapTI = 0x0a
)

// ITSMapD maps device dev to an interrupt translation table at itt (256
// bytes aligned) of 2^eventBits entries (eventBits 1..32), or unmaps it
// (valid false).
func ITSMapD(dev uint32, itt uint64, eventBits int, valid bool) ITSCommand {
	c := ITSCommand{ITSCmdMapD | uint64(dev)<<32, uint64(eventBits-1) & 0x1f, itt & 0x000f_ffff_ffff_ff00, 0}
	if valid {
		c[2] |= 1 << 63
	}
	return c
}

// ITSMapC maps collection icid to redistributor rd: with GITS_TYPER.PTA
// 0 (KVM's), the number of the target vCPU.
func ITSMapC(icid uint16, rd uint64, valid bool) ITSCommand {
	c := ITSCommand{ITSCmdMapC, 0, uint64(icid) | (rd&0xf_ffff_ffff)<<16, 0}
	if valid {
		c[2] |= 1 << 63
	}
	return c
}

// ITSMapTI maps event ev of device dev to LPI intid in collection icid.
func ITSMapTI(dev, ev, intid uint32, icid uint16) ITSCommand {
	return ITSCommand{ITSCmdMapTI | uint64(dev)<<32, uint64(ev) | uint64(intid)<<32, uint64(icid), 0}
}

// ITSInt makes the LPI of event ev of device dev pending, as a write of
// ev to GITS_TRANSLATER by dev would.
func ITSInt(dev, ev uint32) ITSCommand {
	return ITSCommand{ITSCmdInt | uint64(dev)<<32, uint64(ev), 0, 0}
}

// ITSSync waits for the effects of earlier commands on redistributor rd.
func ITSSync(rd uint64) ITSCommand {
	return ITSCommand{ITSCmdSync, 0, (rd & 0xf_ffff_ffff) << 16, 0}
}

// Bytes is the command as it is written to the queue.
func (c ITSCommand) Bytes() []byte {
	b := make([]byte, 32)
	for i, d := range c {
		for k := 0; k < 8; k++ {
			b[8*i+k] = byte(d >> (8 * k))
		}
	}
	return b
}

// Register values of the ITS and redistributor tables (GICv3
// architecture layouts; cacheability and shareability left 0, which KVM
// sanitises).
const (
	gitsBaserValid  = 1 << 63
	gitsBaserPage64 = 2 << 8 // Page_Size 64 KiB, the only one KVM's ITS has
)

// ITSBaserValue is a GITS_BASER<n> value for a flat table of pages 64 KiB
// pages (1..256) at addr (64 KiB aligned, below 2^48).
func ITSBaserValue(addr uint64, pages int) uint64 {
	return gitsBaserValid | addr&0x0000_ffff_ffff_0000 | gitsBaserPage64 | uint64(pages-1)&0xff
}

// ITSCBaserValue is a GITS_CBASER value for a command queue of pages 4 KiB
// pages (1..256) at addr (4 KiB aligned for the architecture; KVM clears
// address bits 15:12, so give it a 64 KiB aligned queue).
func ITSCBaserValue(addr uint64, pages int) uint64 {
	return gitsBaserValid | addr&0x000f_ffff_ffff_f000 | uint64(pages-1)&0xff
}

// GICRPropBaserValue is a GICR_PROPBASER value: the LPI property table at addr
// (4 KiB aligned) for interrupt IDs of idBits bits (14..16 under KVM).
func GICRPropBaserValue(addr uint64, idBits int) uint64 {
	return addr&0x000f_ffff_ffff_f000 | uint64(idBits-1)&0x1f
}

// GICRPendBaserValue is a GICR_PENDBASER value: the LPI pending table at addr
// (64 KiB aligned), one bit per interrupt ID.
func GICRPendBaserValue(addr uint64) uint64 { return addr & 0x000f_ffff_ffff_0000 }

// GICRCtlrEnableLPIs is GICR_CTLR.EnableLPIs.
const GICRCtlrEnableLPIs = 1

// GITSCtlrEnabled is GITS_CTLR.Enabled.
const GITSCtlrEnabled = 1

// CapARM64IPASize says VMConfig.ARM64Type may ask for an IPA size other
// than the default; its value is the largest (KVM_CAP_ARM_VM_IPA_SIZE).
const CapARM64IPASize Cap = "arm64-ipa-size"

// IPA sizes of arm64 VMs, in bits.
const (
	// ARM64DefaultIPABits is the IPA size of machine type 0 (KVM_PHYS_SHIFT).
	ARM64DefaultIPABits = 40
	// ARM64MinIPABits is the smallest size a type may ask for (the
	// smallest ID_AA64MMFR0_EL1.PARange, which KVM takes as its floor).
	ARM64MinIPABits = 32
)

// ARM64VMType is an arm64 VM's machine type, KVM_CREATE_VM's argument:
// bits 7:0 are the IPA size in bits (0: ARM64DefaultIPABits), the other
// bits are reserved. A backend passes every bit on, so the hypervisor
// is the one that refuses what it does not know.
type ARM64VMType uint64

// ARM64IPASizeMask is the IPA size field of a machine type
// (KVM_VM_TYPE_ARM_IPA_SIZE_MASK).
const ARM64IPASizeMask ARM64VMType = 0xff

// ARM64IPASize is the machine type of a VM whose guest-physical
// addresses have bits bits (KVM_VM_TYPE_ARM_IPA_SIZE).
func ARM64IPASize(bits int) ARM64VMType { return ARM64VMType(bits) & ARM64IPASizeMask }

// IPABits is the IPA size the type asks for: its size field, or
// ARM64DefaultIPABits where the field is 0.
func (t ARM64VMType) IPABits() int {
	if n := int(t & ARM64IPASizeMask); n != 0 {
		return n
	}
	return ARM64DefaultIPABits
}

func (t ARM64VMType) String() string {
	s := fmt.Sprintf("ipa-%d", t.IPABits())
	if t&ARM64IPASizeMask == 0 {
		s += "(default)"
	}
	if r := t &^ ARM64IPASizeMask; r != 0 {
		s += fmt.Sprintf("|%#x", uint64(r))
	}
	return s
}
