package kvm

import "github.com/kvmspec/kvmspec/harness/hv"

// Ioctl numbers, exit reasons and capability numbers of <linux/kvm.h> that
// are the same on every architecture (the generic _IOC encoding over
// structs without arch-specific parts). They are literal values, like
// gVisor's kvm_const.go; const_test.go compiles a C program against the
// system headers and compares every entry of ioctlTable and
// archIoctlTable, so a typo cannot hide. x86-only numbers are in
// const_amd64.go.
const (
	kvmGetAPIVersion      = 0xae00
	kvmCreateVM           = 0xae01
	kvmCheckExtension     = 0xae03
	kvmGetVCPUMmapSize    = 0xae04
	kvmCreateVCPU         = 0xae41
	kvmGetDirtyLog        = 0x4010ae42
	kvmSetUserMemRegion   = 0x4020ae46
	kvmEnableCap          = 0x4068aea3
	kvmClearDirtyLog      = 0xc018aec0
	kvmResetDirtyRings    = 0xaec7
	kvmGetStatsFD         = 0xaece
	kvmRun                = 0xae80
	kvmGetMPState         = 0x8004ae98
	kvmSetSignalMask      = 0x4004ae8b
	kvmCreateIRQChip      = 0xae60
	kvmIRQLine            = 0x4008ae61
	kvmSignalMSI          = 0x4020aea5
	kvmDirtyLogPageOffset = 64
	// Generic ioctls the arm64 backend uses (ONE_REG, device control).
	kvmGetOneReg     = 0x4010aeab
	kvmSetOneReg     = 0x4010aeac
	kvmGetRegList    = 0xc008aeb0
	kvmCreateDevice  = 0xc00caee0
	kvmSetDeviceAttr = 0x4018aee1
	kvmGetDeviceAttr = 0x4018aee2
	kvmHasDeviceAttr = 0x4018aee3
)

// Capability numbers (KVM_CAP_*).
const (
	capIRQChip                = 0
	capUserMemory             = 3
	capNRVCPUs                = 9
	capNRMemslots             = 10
	capSetGuestDebug          = 23
	capIRQRouting             = 25
	capMaxVCPUs               = 66
	capSignalMSI              = 77
	capReadonlyMem            = 81
	capImmediateExit          = 136
	capManualDirtyLogProtect2 = 168
	capDirtyLogRing           = 192
	capSetGuestDebug2         = 195
	capBinaryStatsFD          = 203
	capDirtyLogRingAcqRel     = 223
	capDirtyLogRingWithBitmap = 225
	capOneReg                 = 70
	capDeviceCtrl             = 89
)

// Exit reasons (KVM_EXIT_*).
const (
	exitUnknown       = 0
	exitHypercall     = 3
	exitIO            = 2
	exitDebug         = 4
	exitHLT           = 5
	exitMMIO          = 6
	exitIRQWindowOpen = 7
	exitShutdown      = 8
	exitFailEntry     = 9
	exitIntr          = 10
	exitSetTPR        = 11
	exitInternalError = 17
	exitSystemEvent   = 24
	exitX86RDMSR      = 29
	exitX86WRMSR      = 30
	exitDirtyRingFull = 31
)

// Internal error suberrors (KVM_INTERNAL_ERROR_*) and the emulation
// failure flag that says instruction bytes follow.
const (
	internalErrorEmulation       = 1
	internalErrorSimulEx         = 2
	internalErrorDeliveryEv      = 3
	internalErrorUnexpectedExit  = 4
	emulationFlagInstructionByte = 1 << 0
)

// Flags and bits used with the ioctls above. The guest debug flags are
// hv.DebugFlags' values (the contract carries KVM's KVM_GUESTDBG_*):
// deriving them here and checking them against the header proves both.
const (
	memLogDirtyPages     = 1 << 0
	memReadonly          = 1 << 1
	dirtyLogManualProt   = 1 << 0
	dirtyLogInitiallySet = 1 << 1
	guestDbgEnable       = uint32(hv.DebugEnable)
	guestDbgSingleStep   = uint32(hv.DebugSingleStep)
	dirtyGFNDirty        = 1 << 0
	dirtyGFNReset        = 1 << 1
	exitIOIn             = 0
	createDeviceTest     = 1 << 0
)

// ioctlEntry names one constant for the header check.
type ioctlEntry struct {
	name  string
	value uint64
	// since is the kernel version that added it; headers older than that
	// cannot check it and the test says so instead of failing.
	since string
}

// ioctlTable is every constant above with its <linux/kvm.h> name.
var ioctlTable = []ioctlEntry{
	{"KVM_GET_API_VERSION", kvmGetAPIVersion, ""},
	{"KVM_CREATE_VM", kvmCreateVM, ""},
	{"KVM_CHECK_EXTENSION", kvmCheckExtension, ""},
	{"KVM_GET_VCPU_MMAP_SIZE", kvmGetVCPUMmapSize, ""},
	{"KVM_CREATE_VCPU", kvmCreateVCPU, ""},
	{"KVM_GET_DIRTY_LOG", kvmGetDirtyLog, ""},
	{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemRegion, ""},
	{"KVM_ENABLE_CAP", kvmEnableCap, ""},
	{"KVM_CLEAR_DIRTY_LOG", kvmClearDirtyLog, ""},
	{"KVM_RESET_DIRTY_RINGS", kvmResetDirtyRings, ""},
	{"KVM_GET_STATS_FD", kvmGetStatsFD, ""},
	{"KVM_RUN", kvmRun, ""},
	{"KVM_GET_MP_STATE", kvmGetMPState, ""},
	{"KVM_SET_SIGNAL_MASK", kvmSetSignalMask, ""},
	{"KVM_CREATE_IRQCHIP", kvmCreateIRQChip, ""},
	{"KVM_IRQ_LINE", kvmIRQLine, ""},
	{"KVM_SIGNAL_MSI", kvmSignalMSI, ""},
	{"KVM_DIRTY_LOG_PAGE_OFFSET", kvmDirtyLogPageOffset, ""},
	{"KVM_CAP_IRQCHIP", capIRQChip, ""},
	{"KVM_CAP_USER_MEMORY", capUserMemory, ""},
	{"KVM_CAP_NR_VCPUS", capNRVCPUs, ""},
	{"KVM_CAP_NR_MEMSLOTS", capNRMemslots, ""},
	{"KVM_CAP_SET_GUEST_DEBUG", capSetGuestDebug, ""},
	{"KVM_CAP_IRQ_ROUTING", capIRQRouting, ""},
	{"KVM_CAP_MAX_VCPUS", capMaxVCPUs, ""},
	{"KVM_CAP_SIGNAL_MSI", capSignalMSI, ""},
	{"KVM_CAP_READONLY_MEM", capReadonlyMem, ""},
	{"KVM_CAP_IMMEDIATE_EXIT", capImmediateExit, ""},
	{"KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", capManualDirtyLogProtect2, ""},
	{"KVM_CAP_DIRTY_LOG_RING", capDirtyLogRing, ""},
	{"KVM_CAP_SET_GUEST_DEBUG2", capSetGuestDebug2, ""},
	{"KVM_CAP_BINARY_STATS_FD", capBinaryStatsFD, ""},
	{"KVM_CAP_DIRTY_LOG_RING_ACQ_REL", capDirtyLogRingAcqRel, "6.2"},
	{"KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP", capDirtyLogRingWithBitmap, "6.2"},
	{"KVM_EXIT_UNKNOWN", exitUnknown, ""},
	{"KVM_EXIT_HYPERCALL", exitHypercall, ""},
	{"KVM_EXIT_IO", exitIO, ""},
	{"KVM_EXIT_DEBUG", exitDebug, ""},
	{"KVM_EXIT_HLT", exitHLT, ""},
	{"KVM_EXIT_MMIO", exitMMIO, ""},
	{"KVM_EXIT_IRQ_WINDOW_OPEN", exitIRQWindowOpen, ""},
	{"KVM_EXIT_SHUTDOWN", exitShutdown, ""},
	{"KVM_EXIT_FAIL_ENTRY", exitFailEntry, ""},
	{"KVM_EXIT_INTR", exitIntr, ""},
	{"KVM_EXIT_SET_TPR", exitSetTPR, ""},
	{"KVM_EXIT_INTERNAL_ERROR", exitInternalError, ""},
	{"KVM_EXIT_SYSTEM_EVENT", exitSystemEvent, ""},
	{"KVM_EXIT_X86_RDMSR", exitX86RDMSR, ""},
	{"KVM_EXIT_X86_WRMSR", exitX86WRMSR, ""},
	{"KVM_EXIT_DIRTY_RING_FULL", exitDirtyRingFull, ""},
	{"KVM_INTERNAL_ERROR_EMULATION", internalErrorEmulation, ""},
	{"KVM_INTERNAL_ERROR_SIMUL_EX", internalErrorSimulEx, ""},
	{"KVM_INTERNAL_ERROR_DELIVERY_EV", internalErrorDeliveryEv, ""},
	{"KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON", internalErrorUnexpectedExit, ""},
	{"KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES", emulationFlagInstructionByte, ""},
	{"KVM_MEM_LOG_DIRTY_PAGES", memLogDirtyPages, ""},
	{"KVM_MEM_READONLY", memReadonly, ""},
	{"KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE", dirtyLogManualProt, ""},
	{"KVM_DIRTY_LOG_INITIALLY_SET", dirtyLogInitiallySet, ""},
	{"KVM_GUESTDBG_ENABLE", uint64(guestDbgEnable), ""},
	{"KVM_GUESTDBG_SINGLESTEP", uint64(guestDbgSingleStep), ""},
	{"KVM_DIRTY_GFN_F_DIRTY", dirtyGFNDirty, ""},
	{"KVM_DIRTY_GFN_F_RESET", dirtyGFNReset, ""},
	{"KVM_EXIT_IO_IN", exitIOIn, ""},
	{"KVM_GET_ONE_REG", kvmGetOneReg, ""},
	{"KVM_SET_ONE_REG", kvmSetOneReg, ""},
	{"KVM_GET_REG_LIST", kvmGetRegList, ""},
	{"KVM_CREATE_DEVICE", kvmCreateDevice, ""},
	{"KVM_SET_DEVICE_ATTR", kvmSetDeviceAttr, ""},
	{"KVM_GET_DEVICE_ATTR", kvmGetDeviceAttr, ""},
	{"KVM_HAS_DEVICE_ATTR", kvmHasDeviceAttr, ""},
	{"KVM_CAP_ONE_REG", capOneReg, ""},
	{"KVM_CAP_DEVICE_CTRL", capDeviceCtrl, ""},
	{"KVM_CREATE_DEVICE_TEST", createDeviceTest, ""},
	{"KVM_SYSTEM_EVENT_SHUTDOWN", hv.SystemEventShutdown, ""},
	{"KVM_SYSTEM_EVENT_RESET", hv.SystemEventReset, ""},
	{"KVM_SYSTEM_EVENT_CRASH", hv.SystemEventCrash, ""},
}
