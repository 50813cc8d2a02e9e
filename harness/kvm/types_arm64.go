package kvm

// vcpuInit mirrors struct kvm_vcpu_init (KVM_ARM_VCPU_INIT,
// KVM_ARM_PREFERRED_TARGET).
type vcpuInit struct {
	target   uint32
	features [7]uint32
}

// guestDebugArch mirrors struct kvm_guest_debug_arch of arm64.
type guestDebugArch struct {
	dbgBCR [armMaxDbgRegs]uint64
	dbgBVR [armMaxDbgRegs]uint64
	dbgWCR [armMaxDbgRegs]uint64
	dbgWVR [armMaxDbgRegs]uint64
}

// guestDebug mirrors struct kvm_guest_debug (arm64 arch part included).
type guestDebug struct {
	control uint32
	_       uint32
	arch    guestDebugArch
}

// pmuEventFilter mirrors struct kvm_pmu_event_filter of arm64
// (KVM_ARM_VCPU_PMU_V3_FILTER).
type pmuEventFilter struct {
	baseEvent uint16
	nevents   uint16
	action    uint8
	_         [3]uint8
}

// Offsets into kvm_run's exit union of struct kvm_debug_exit_arch (arm64).
const (
	runDebugHSR     = runUnion
	runDebugHSRHigh = runUnion + 4
	runDebugFAR     = runUnion + 8
)

// runSize is sizeof(struct kvm_run) on arm64 (6.1 headers); only the
// header check uses it.
const runSize = 0x930
