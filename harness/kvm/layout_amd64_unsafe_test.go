//go:build amd64

package kvm

import (
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// archLayoutTable is the x86-64 struct mirrors and offsets.
var archLayoutTable = []layoutEntry{
	{"sizeof kvm_regs", uint64(unsafe.Sizeof(hv.Regs{})), "sizeof(struct kvm_regs)"},
	{"sizeof kvm_sregs", uint64(unsafe.Sizeof(hv.Sregs{})), "sizeof(struct kvm_sregs)"},
	{"sizeof kvm_segment", uint64(unsafe.Sizeof(hv.Segment{})), "sizeof(struct kvm_segment)"},
	{"sizeof kvm_dtable", uint64(unsafe.Sizeof(hv.DTable{})), "sizeof(struct kvm_dtable)"},
	{"offsetof kvm_sregs.cr0", uint64(unsafe.Offsetof(hv.Sregs{}.CR0)), "offsetof(struct kvm_sregs, cr0)"},
	{"offsetof kvm_sregs.efer", uint64(unsafe.Offsetof(hv.Sregs{}.EFER)), "offsetof(struct kvm_sregs, efer)"},
	{"offsetof kvm_sregs.interrupt_bitmap", uint64(unsafe.Offsetof(hv.Sregs{}.InterruptBitmap)), "offsetof(struct kvm_sregs, interrupt_bitmap)"},
	{"offsetof kvm_regs.rip", uint64(unsafe.Offsetof(hv.Regs{}.RIP)), "offsetof(struct kvm_regs, rip)"},
	{"sizeof kvm_guest_debug", uint64(unsafe.Sizeof(guestDebug{})), "sizeof(struct kvm_guest_debug)"},
	{"sizeof kvm_debugregs", uint64(unsafe.Sizeof(debugRegs{})), "sizeof(struct kvm_debugregs)"},
	{"sizeof kvm_cpuid_entry2", uint64(unsafe.Sizeof(cpuidEntry2{})), "sizeof(struct kvm_cpuid_entry2)"},
	{"sizeof kvm_msr_entry", uint64(unsafe.Sizeof(msrEntry{})), "sizeof(struct kvm_msr_entry)"},
	{"offsetof kvm_run.debug.arch.pc", runUnion + 8, "offsetof(struct kvm_run, debug.arch.pc)"},
	{"offsetof kvm_run.debug.arch.dr6", runUnion + 16, "offsetof(struct kvm_run, debug.arch.dr6)"},
	{"sizeof kvm_run", runSize, "sizeof(struct kvm_run)"},
	{"sizeof kvm_msi", uint64(unsafe.Sizeof(msi{})), "sizeof(struct kvm_msi)"},
	{"offsetof kvm_msi.data", uint64(unsafe.Offsetof(msi{}.data)), "offsetof(struct kvm_msi, data)"},
	{"sizeof kvm_interrupt", uint64(unsafe.Sizeof(interrupt{})), "sizeof(struct kvm_interrupt)"},
	{"sizeof kvm_pmu_event_filter", uint64(unsafe.Sizeof(pmuEventFilter{})), "sizeof(struct kvm_pmu_event_filter)"},
	{"offsetof kvm_cpuid_entry2.flags", uint64(unsafe.Offsetof(cpuidEntry2{}.flags)), "offsetof(struct kvm_cpuid_entry2, flags)"},
	{"offsetof kvm_cpuid_entry2.edx", uint64(unsafe.Offsetof(cpuidEntry2{}.edx)), "offsetof(struct kvm_cpuid_entry2, edx)"},
}
