package hv

// The Intel architectural PMU as guests program it (SDM vol. 3B, ch. 20
// "Performance Monitoring", and vol. 4 for the MSR numbers). Defined once
// here for the emu's model, the suites and the kvm backend.

// PMU MSRs. A GP counter i is at MSRPMC0+i (legacy writes, sign-extended
// from bit 31) and MSRAPMC0+i (full-width writes, with
// PerfCapFullWidthWrite); its event select at MSRPerfEvtSel0+i; fixed
// counter j at MSRFixedCtr0+j.
const (
	MSRPMC0                = 0xc1  // IA32_PMC0
	MSRPerfEvtSel0         = 0x186 // IA32_PERFEVTSEL0
	MSRPerfCapabilities    = 0x345 // IA32_PERF_CAPABILITIES (CPUID.1:ECX.PDCM)
	MSRFixedCtr0           = 0x309 // IA32_FIXED_CTR0
	MSRFixedCtrCtrl        = 0x38d // IA32_FIXED_CTR_CTRL (version 2+)
	MSRPerfGlobalStatus    = 0x38e // IA32_PERF_GLOBAL_STATUS (version 2+)
	MSRPerfGlobalCtrl      = 0x38f // IA32_PERF_GLOBAL_CTRL (version 2+)
	MSRPerfGlobalOvfCtrl   = 0x390 // IA32_PERF_GLOBAL_OVF_CTRL, STATUS_RESET from version 4
	MSRPerfGlobalStatusSet = 0x391 // IA32_PERF_GLOBAL_STATUS_SET (version 4+)
	MSRAPMC0               = 0x4c1 // IA32_A_PMC0 (full-width alias)
)

// IA32_PERFEVTSELx fields.
const (
	EvtSelEvent     = 0xff       // event select
	EvtSelUmask     = 0xff << 8  // unit mask
	EvtSelUSR       = 1 << 16    // count at CPL > 0
	EvtSelOS        = 1 << 17    // count at CPL 0
	EvtSelEdge      = 1 << 18    // edge detect
	EvtSelPC        = 1 << 19    // pin control
	EvtSelINT       = 1 << 20    // APIC interrupt (PMI) on overflow
	EvtSelAnyThread = 1 << 21    // reserved under KVM (and here)
	EvtSelEN        = 1 << 22    // enable
	EvtSelINV       = 1 << 23    // invert the counter-mask comparison
	EvtSelCMask     = 0xff << 24 // counter mask
	// EvtSelReserved are the bits whose write #GPs: bits 63:32 and
	// AnyThread (KVM's reserved_bits for a PMU without TSX).
	EvtSelReserved = 0xffffffff_00200000
)

// Architectural events as event select | unit mask << 8 (the encoding of
// IA32_PERFEVTSELx bits 15:0 and of KVM's event filter entries).
const (
	EventCoreCycles   = 0x003c
	EventInstructions = 0x00c0
	EventRefCycles    = 0x013c
	EventLLCRefs      = 0x4f2e
	EventLLCMisses    = 0x412e
	EventBranches     = 0x00c4
	EventBranchMisses = 0x00c5
)

// IA32_FIXED_CTR_CTRL: four bits per fixed counter j, at 4*j.
const (
	FixedCtrOS        = 1 << 0
	FixedCtrUSR       = 1 << 1
	FixedCtrAnyThread = 1 << 2 // reserved under KVM (and here)
	FixedCtrPMI       = 1 << 3
	FixedCtrBits      = 4
)

// PERF_GLOBAL_* bit of fixed counter j is PerfGlobalFixed0 << j; GP
// counter i is bit i.
const PerfGlobalFixed0 = 1 << 32

// IA32_PERF_CAPABILITIES bits.
const PerfCapFullWidthWrite = 1 << 13 // IA32_A_PMCx exist

// RDPMC's ECX: bit 30 selects the fixed counters, bit 31 asks for a
// "fast" read (32 bits), which KVM refuses with #GP.
const (
	RDPMCFixed = 1 << 30
	RDPMCFast  = 1 << 31
)

// PMUFilterAction is what a PMU event filter does with its events.
type PMUFilterAction uint32

// Filter actions (KVM_PMU_EVENT_ALLOW, KVM_PMU_EVENT_DENY).
const (
	PMUFilterAllow PMUFilterAction = 0
	PMUFilterDeny  PMUFilterAction = 1
)

// PMUFilterMaxEvents is KVM_PMU_EVENT_FILTER_MAX_EVENTS.
const PMUFilterMaxEvents = 300

// PMUFilterMaskedEvents is KVM_PMU_EVENT_FLAG_MASKED_EVENTS.
const PMUFilterMaskedEvents = 1 << 0

// PMUEventFilter mirrors struct kvm_pmu_event_filter: which events the
// guest's counters may count, for the whole VM.
//
// Semantics (KVM's check_pmu_event_filter): a GP counter counts only when
// its event select and unit mask (EvtSelEvent|EvtSelUmask of its
// IA32_PERFEVTSELx) are in Events under PMUFilterAllow, or not in Events
// under PMUFilterDeny; entries with bits beyond those 16 never match. A
// fixed counter j is decided by FixedCounterBitmap bit j alone: counted
// under Allow when set, under Deny when clear. A filtered counter reads
// back and can be written; it just does not count. The filter takes
// effect at the vCPUs' next entry.
type PMUEventFilter struct {
	Action             PMUFilterAction
	FixedCounterBitmap uint32
	Flags              uint32
	Events             []uint64
}

// PMUFilterer is implemented by VMs that take a PMU event filter
// (KVM_SET_PMU_EVENT_FILTER). Errors as KVM's: an unknown action or flag
// is EINVAL, more than PMUFilterMaxEvents events E2BIG; a backend that
// does not model masked events refuses that flag with ErrUnsupported.
type PMUFilterer interface {
	SetPMUEventFilter(f PMUEventFilter) error
}
