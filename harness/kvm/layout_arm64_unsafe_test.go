//go:build arm64

package kvm

import (
	"unsafe"
)

// arm64LayoutTable is the arm64 struct mirrors and offsets, checked
// against testdata/arm64-uapi.golden.
var arm64LayoutTable = []layoutEntry{
	{"sizeof kvm_vcpu_init", uint64(unsafe.Sizeof(vcpuInit{})), "sizeof(struct kvm_vcpu_init)"},
	{"sizeof kvm_guest_debug", uint64(unsafe.Sizeof(guestDebug{})), "sizeof(struct kvm_guest_debug)"},
	{"offsetof kvm_guest_debug.arch", uint64(unsafe.Offsetof(guestDebug{}.arch)), "offsetof(struct kvm_guest_debug, arch)"},
	{"offsetof kvm_guest_debug_arch.dbg_wvr", uint64(unsafe.Offsetof(guestDebugArch{}.dbgWVR)), "offsetof(struct kvm_guest_debug_arch, dbg_wvr)"},
	{"sizeof kvm_pmu_event_filter", uint64(unsafe.Sizeof(pmuEventFilter{})), "sizeof(struct kvm_pmu_event_filter)"},
	{"offsetof kvm_pmu_event_filter.action", uint64(unsafe.Offsetof(pmuEventFilter{}.action)), "offsetof(struct kvm_pmu_event_filter, action)"},
	{"offsetof kvm_run.debug.arch.hsr", runDebugHSR, "offsetof(struct kvm_run, debug.arch.hsr)"},
	{"offsetof kvm_run.debug.arch.hsr_high", runDebugHSRHigh, "offsetof(struct kvm_run, debug.arch.hsr_high)"},
	{"offsetof kvm_run.debug.arch.far", runDebugFAR, "offsetof(struct kvm_run, debug.arch.far)"},
	{"sizeof kvm_run", runSize, "sizeof(struct kvm_run)"},
	{"sizeof kvm_one_reg", uint64(unsafe.Sizeof(oneReg{})), "sizeof(struct kvm_one_reg)"},
	{"sizeof kvm_create_device", uint64(unsafe.Sizeof(createDevice{})), "sizeof(struct kvm_create_device)"},
	{"sizeof kvm_device_attr", uint64(unsafe.Sizeof(deviceAttr{})), "sizeof(struct kvm_device_attr)"},
	{"offsetof kvm_device_attr.addr", uint64(unsafe.Offsetof(deviceAttr{}.addr)), "offsetof(struct kvm_device_attr, addr)"},
}

// archLayoutTable is empty on arm64 for the reason archIoctlTable is.
var archLayoutTable []layoutEntry
