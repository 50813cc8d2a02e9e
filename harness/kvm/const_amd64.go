package kvm

import "github.com/kvmspec/kvmspec/harness/hv"

// x86-64 ioctl numbers and constants of <linux/kvm.h> and <asm/kvm.h>:
// the ones whose encoding carries an x86 struct size, or that exist on
// x86 only. const_test.go checks archIoctlTable against the headers.
const (
	kvmGetMSRIndexList   = 0xc004ae02
	kvmGetSupportedCPUID = 0xc008ae05
	kvmGetRegs           = 0x8090ae81
	kvmSetRegs           = 0x4090ae82
	kvmGetSregs          = 0x8138ae83
	kvmSetSregs          = 0x4138ae84
	kvmInterrupt         = 0x4004ae86
	kvmGetMSRs           = 0xc008ae88
	kvmSetMSRs           = 0x4008ae89
	kvmSetCPUID2         = 0x4008ae90
	kvmGetCPUID2         = 0xc008ae91
	kvmSetGuestDebug     = 0x4048ae9b
	kvmGetDebugRegs      = 0x8080aea1
	kvmSetDebugRegs      = 0x4080aea2
	kvmX86SetMSRFilter   = 0x4188aec6
	kvmSetPMUEventFilter = 0x4020aeb2
)

// x86-only capability numbers.
const (
	capX86UserSpaceMSR = 188
	capX86MSRFilter    = 189
	capPMUCapability   = 212
	capPMUEventFilter  = 173
)

// x86 flags. The guest debug flags come from hv.DebugFlags, which carries
// KVM's x86 values; the header check proves they agree.
const (
	guestDbgUseSWBP      = uint32(hv.DebugUseSWBP)
	guestDbgUseHWBP      = uint32(hv.DebugUseHWBP)
	guestDbgInjectDB     = uint32(hv.DebugInjectDB)
	guestDbgInjectBP     = uint32(hv.DebugInjectBP)
	guestDbgBlockIRQ     = uint32(hv.DebugBlockIRQ)
	msrExitReasonInval   = 1 << 0
	msrExitReasonUnknown = 1 << 1
	msrExitReasonFilter  = 1 << 2
	cpuidFlagIndexed     = 1 << 0
)

// archIoctlTable is every x86 constant above with its header name.
var archIoctlTable = []ioctlEntry{
	{"KVM_GET_MSR_INDEX_LIST", kvmGetMSRIndexList, ""},
	{"KVM_GET_SUPPORTED_CPUID", kvmGetSupportedCPUID, ""},
	{"KVM_GET_REGS", kvmGetRegs, ""},
	{"KVM_SET_REGS", kvmSetRegs, ""},
	{"KVM_GET_SREGS", kvmGetSregs, ""},
	{"KVM_SET_SREGS", kvmSetSregs, ""},
	{"KVM_INTERRUPT", kvmInterrupt, ""},
	{"KVM_GET_MSRS", kvmGetMSRs, ""},
	{"KVM_SET_MSRS", kvmSetMSRs, ""},
	{"KVM_SET_CPUID2", kvmSetCPUID2, ""},
	{"KVM_GET_CPUID2", kvmGetCPUID2, ""},
	{"KVM_SET_GUEST_DEBUG", kvmSetGuestDebug, ""},
	{"KVM_GET_DEBUGREGS", kvmGetDebugRegs, ""},
	{"KVM_SET_DEBUGREGS", kvmSetDebugRegs, ""},
	{"KVM_X86_SET_MSR_FILTER", kvmX86SetMSRFilter, ""},
	{"KVM_CAP_X86_USER_SPACE_MSR", capX86UserSpaceMSR, ""},
	{"KVM_CAP_X86_MSR_FILTER", capX86MSRFilter, ""},
	{"KVM_CAP_PMU_CAPABILITY", capPMUCapability, ""},
	{"KVM_SET_PMU_EVENT_FILTER", kvmSetPMUEventFilter, ""},
	{"KVM_CAP_PMU_EVENT_FILTER", capPMUEventFilter, ""},
	{"KVM_PMU_EVENT_ALLOW", uint64(hv.PMUFilterAllow), ""},
	{"KVM_PMU_EVENT_DENY", uint64(hv.PMUFilterDeny), ""},
	{"KVM_PMU_EVENT_FLAG_MASKED_EVENTS", hv.PMUFilterMaskedEvents, "6.3"},
	{"KVM_GUESTDBG_USE_SW_BP", uint64(guestDbgUseSWBP), ""},
	{"KVM_GUESTDBG_USE_HW_BP", uint64(guestDbgUseHWBP), ""},
	{"KVM_GUESTDBG_INJECT_DB", uint64(guestDbgInjectDB), ""},
	{"KVM_GUESTDBG_INJECT_BP", uint64(guestDbgInjectBP), ""},
	{"KVM_GUESTDBG_BLOCKIRQ", uint64(guestDbgBlockIRQ), "5.16"},
	{"KVM_MSR_EXIT_REASON_INVAL", msrExitReasonInval, ""},
	{"KVM_MSR_EXIT_REASON_UNKNOWN", msrExitReasonUnknown, ""},
	{"KVM_MSR_EXIT_REASON_FILTER", msrExitReasonFilter, ""},
	{"KVM_CPUID_FLAG_SIGNIFCANT_INDEX", cpuidFlagIndexed, ""},
}
