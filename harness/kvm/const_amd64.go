package kvm

// Ioctl numbers, exit reasons and capability numbers of <linux/kvm.h> for
// x86-64. They are literal values, like gVisor's kvm_const.go; const_test.go
// compiles a C program against the system headers and compares every entry
// of ioctlTable, so a typo cannot hide.
const (
	kvmGetAPIVersion      = 0xae00
	kvmCreateVM           = 0xae01
	kvmGetMSRIndexList    = 0xc004ae02
	kvmCheckExtension     = 0xae03
	kvmGetVCPUMmapSize    = 0xae04
	kvmGetSupportedCPUID  = 0xc008ae05
	kvmCreateVCPU         = 0xae41
	kvmGetDirtyLog        = 0x4010ae42
	kvmSetUserMemRegion   = 0x4020ae46
	kvmEnableCap          = 0x4068aea3
	kvmClearDirtyLog      = 0xc018aec0
	kvmResetDirtyRings    = 0xaec7
	kvmGetStatsFD         = 0xaece
	kvmRun                = 0xae80
	kvmGetRegs            = 0x8090ae81
	kvmSetRegs            = 0x4090ae82
	kvmGetSregs           = 0x8138ae83
	kvmSetSregs           = 0x4138ae84
	kvmGetMSRs            = 0xc008ae88
	kvmSetMSRs            = 0x4008ae89
	kvmSetCPUID2          = 0x4008ae90
	kvmSetGuestDebug      = 0x4048ae9b
	kvmGetDebugRegs       = 0x8080aea1
	kvmSetDebugRegs       = 0x4080aea2
	kvmGetMPState         = 0x8004ae98
	kvmX86SetMSRFilter    = 0x4188aec6
	kvmSetSignalMask      = 0x4004ae8b
	kvmDirtyLogPageOffset = 64
)

// Capability numbers (KVM_CAP_*).
const (
	capUserMemory             = 3
	capNRVCPUs                = 9
	capNRMemslots             = 10
	capMaxVCPUs               = 66
	capSetGuestDebug          = 23
	capReadonlyMem            = 81
	capImmediateExit          = 136
	capManualDirtyLogProtect2 = 168
	capX86UserSpaceMSR        = 188
	capX86MSRFilter           = 189
	capDirtyLogRing           = 192
	capSetGuestDebug2         = 195
	capBinaryStatsFD          = 203
	capPMUCapability          = 212
	capDirtyLogRingAcqRel     = 223
)

// Exit reasons (KVM_EXIT_*).
const (
	exitUnknown       = 0
	exitHypercall     = 3
	exitIO            = 2
	exitDebug         = 4
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitIntr          = 10
	exitInternalError = 17
	exitSystemEvent   = 24
	exitX86RDMSR      = 29
	exitX86WRMSR      = 30
	exitDirtyRingFull = 31
)

// Flags and bits used with the ioctls above.
const (
	memLogDirtyPages     = 1 << 0
	memReadonly          = 1 << 1
	dirtyLogManualProt   = 1 << 0
	dirtyLogInitiallySet = 1 << 1
	guestDbgEnable       = 0x1
	guestDbgSingleStep   = 0x2
	guestDbgUseSWBP      = 0x10000
	guestDbgUseHWBP      = 0x20000
	msrExitReasonInval   = 1 << 0
	msrExitReasonUnknown = 1 << 1
	msrExitReasonFilter  = 1 << 2
	dirtyGFNDirty        = 1 << 0
	dirtyGFNReset        = 1 << 1
	exitIOIn             = 0
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
	{"KVM_GET_MSR_INDEX_LIST", kvmGetMSRIndexList, ""},
	{"KVM_CHECK_EXTENSION", kvmCheckExtension, ""},
	{"KVM_GET_VCPU_MMAP_SIZE", kvmGetVCPUMmapSize, ""},
	{"KVM_GET_SUPPORTED_CPUID", kvmGetSupportedCPUID, ""},
	{"KVM_CREATE_VCPU", kvmCreateVCPU, ""},
	{"KVM_GET_DIRTY_LOG", kvmGetDirtyLog, ""},
	{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemRegion, ""},
	{"KVM_ENABLE_CAP", kvmEnableCap, ""},
	{"KVM_CLEAR_DIRTY_LOG", kvmClearDirtyLog, ""},
	{"KVM_RESET_DIRTY_RINGS", kvmResetDirtyRings, ""},
	{"KVM_GET_STATS_FD", kvmGetStatsFD, ""},
	{"KVM_RUN", kvmRun, ""},
	{"KVM_GET_REGS", kvmGetRegs, ""},
	{"KVM_SET_REGS", kvmSetRegs, ""},
	{"KVM_GET_SREGS", kvmGetSregs, ""},
	{"KVM_SET_SREGS", kvmSetSregs, ""},
	{"KVM_GET_MSRS", kvmGetMSRs, ""},
	{"KVM_SET_MSRS", kvmSetMSRs, ""},
	{"KVM_SET_CPUID2", kvmSetCPUID2, ""},
	{"KVM_SET_GUEST_DEBUG", kvmSetGuestDebug, ""},
	{"KVM_GET_DEBUGREGS", kvmGetDebugRegs, ""},
	{"KVM_SET_DEBUGREGS", kvmSetDebugRegs, ""},
	{"KVM_GET_MP_STATE", kvmGetMPState, ""},
	{"KVM_X86_SET_MSR_FILTER", kvmX86SetMSRFilter, ""},
	{"KVM_SET_SIGNAL_MASK", kvmSetSignalMask, ""},
	{"KVM_DIRTY_LOG_PAGE_OFFSET", kvmDirtyLogPageOffset, ""},
	{"KVM_CAP_USER_MEMORY", capUserMemory, ""},
	{"KVM_CAP_NR_VCPUS", capNRVCPUs, ""},
	{"KVM_CAP_NR_MEMSLOTS", capNRMemslots, ""},
	{"KVM_CAP_MAX_VCPUS", capMaxVCPUs, ""},
	{"KVM_CAP_SET_GUEST_DEBUG", capSetGuestDebug, ""},
	{"KVM_CAP_READONLY_MEM", capReadonlyMem, ""},
	{"KVM_CAP_IMMEDIATE_EXIT", capImmediateExit, ""},
	{"KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", capManualDirtyLogProtect2, ""},
	{"KVM_CAP_X86_USER_SPACE_MSR", capX86UserSpaceMSR, ""},
	{"KVM_CAP_X86_MSR_FILTER", capX86MSRFilter, ""},
	{"KVM_CAP_DIRTY_LOG_RING", capDirtyLogRing, ""},
	{"KVM_CAP_SET_GUEST_DEBUG2", capSetGuestDebug2, ""},
	{"KVM_CAP_BINARY_STATS_FD", capBinaryStatsFD, ""},
	{"KVM_CAP_PMU_CAPABILITY", capPMUCapability, ""},
	{"KVM_CAP_DIRTY_LOG_RING_ACQ_REL", capDirtyLogRingAcqRel, "6.2"},
	{"KVM_EXIT_UNKNOWN", exitUnknown, ""},
	{"KVM_EXIT_HYPERCALL", exitHypercall, ""},
	{"KVM_EXIT_IO", exitIO, ""},
	{"KVM_EXIT_DEBUG", exitDebug, ""},
	{"KVM_EXIT_HLT", exitHLT, ""},
	{"KVM_EXIT_MMIO", exitMMIO, ""},
	{"KVM_EXIT_SHUTDOWN", exitShutdown, ""},
	{"KVM_EXIT_FAIL_ENTRY", exitFailEntry, ""},
	{"KVM_EXIT_INTR", exitIntr, ""},
	{"KVM_EXIT_INTERNAL_ERROR", exitInternalError, ""},
	{"KVM_EXIT_SYSTEM_EVENT", exitSystemEvent, ""},
	{"KVM_EXIT_X86_RDMSR", exitX86RDMSR, ""},
	{"KVM_EXIT_X86_WRMSR", exitX86WRMSR, ""},
	{"KVM_EXIT_DIRTY_RING_FULL", exitDirtyRingFull, ""},
	{"KVM_MEM_LOG_DIRTY_PAGES", memLogDirtyPages, ""},
	{"KVM_MEM_READONLY", memReadonly, ""},
	{"KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE", dirtyLogManualProt, ""},
	{"KVM_DIRTY_LOG_INITIALLY_SET", dirtyLogInitiallySet, ""},
	{"KVM_GUESTDBG_ENABLE", guestDbgEnable, ""},
	{"KVM_GUESTDBG_SINGLESTEP", guestDbgSingleStep, ""},
	{"KVM_GUESTDBG_USE_SW_BP", guestDbgUseSWBP, ""},
	{"KVM_GUESTDBG_USE_HW_BP", guestDbgUseHWBP, ""},
	{"KVM_MSR_EXIT_REASON_INVAL", msrExitReasonInval, ""},
	{"KVM_MSR_EXIT_REASON_UNKNOWN", msrExitReasonUnknown, ""},
	{"KVM_MSR_EXIT_REASON_FILTER", msrExitReasonFilter, ""},
	{"KVM_DIRTY_GFN_F_DIRTY", dirtyGFNDirty, ""},
	{"KVM_DIRTY_GFN_F_RESET", dirtyGFNReset, ""},
	{"KVM_EXIT_IO_IN", exitIOIn, ""},
}
