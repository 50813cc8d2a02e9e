package kvm

// oneReg mirrors struct kvm_one_reg (generic, used on arm64 only here) (KVM_GET_ONE_REG, KVM_SET_ONE_REG).
type oneReg struct {
	id   uint64
	addr uint64 // pointer to the value
}

// createDevice mirrors struct kvm_create_device.
type createDevice struct {
	typ   uint32
	fd    uint32
	flags uint32
}

// deviceAttr mirrors struct kvm_device_attr.
type deviceAttr struct {
	flags uint32
	group uint32
	attr  uint64
	addr  uint64 // pointer to the attribute's value
}

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
