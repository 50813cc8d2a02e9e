package kvm

import (
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// layoutEntry pairs a Go struct size or offset with the C expression for it.
type layoutEntry struct {
	name    string
	goValue uint64
	cexpr   string
}

var layoutTable = []layoutEntry{
	{"sizeof kvm_regs", uint64(unsafe.Sizeof(hv.Regs{})), "sizeof(struct kvm_regs)"},
	{"sizeof kvm_sregs", uint64(unsafe.Sizeof(hv.Sregs{})), "sizeof(struct kvm_sregs)"},
	{"sizeof kvm_segment", uint64(unsafe.Sizeof(hv.Segment{})), "sizeof(struct kvm_segment)"},
	{"sizeof kvm_dtable", uint64(unsafe.Sizeof(hv.DTable{})), "sizeof(struct kvm_dtable)"},
	{"offsetof kvm_sregs.cr0", uint64(unsafe.Offsetof(hv.Sregs{}.CR0)), "offsetof(struct kvm_sregs, cr0)"},
	{"offsetof kvm_sregs.efer", uint64(unsafe.Offsetof(hv.Sregs{}.EFER)), "offsetof(struct kvm_sregs, efer)"},
	{"offsetof kvm_sregs.interrupt_bitmap", uint64(unsafe.Offsetof(hv.Sregs{}.InterruptBitmap)), "offsetof(struct kvm_sregs, interrupt_bitmap)"},
	{"offsetof kvm_regs.rip", uint64(unsafe.Offsetof(hv.Regs{}.RIP)), "offsetof(struct kvm_regs, rip)"},
	{"sizeof kvm_userspace_memory_region", uint64(unsafe.Sizeof(userspaceMemoryRegion{})), "sizeof(struct kvm_userspace_memory_region)"},
	{"sizeof kvm_dirty_log", uint64(unsafe.Sizeof(dirtyLog{})), "sizeof(struct kvm_dirty_log)"},
	{"sizeof kvm_clear_dirty_log", uint64(unsafe.Sizeof(clearDirtyLog{})), "sizeof(struct kvm_clear_dirty_log)"},
	{"offsetof kvm_clear_dirty_log.first_page", uint64(unsafe.Offsetof(clearDirtyLog{}.firstPage)), "offsetof(struct kvm_clear_dirty_log, first_page)"},
	{"sizeof kvm_enable_cap", uint64(unsafe.Sizeof(enableCap{})), "sizeof(struct kvm_enable_cap)"},
	{"sizeof kvm_guest_debug", uint64(unsafe.Sizeof(guestDebug{})), "sizeof(struct kvm_guest_debug)"},
	{"sizeof kvm_debugregs", uint64(unsafe.Sizeof(debugRegs{})), "sizeof(struct kvm_debugregs)"},
	{"sizeof kvm_dirty_gfn", uint64(unsafe.Sizeof(dirtyGFN{})), "sizeof(struct kvm_dirty_gfn)"},
	{"sizeof kvm_stats_header", uint64(unsafe.Sizeof(statsHeader{})), "sizeof(struct kvm_stats_header)"},
	{"sizeof kvm_stats_desc", uint64(unsafe.Sizeof(statsDesc{})), "sizeof(struct kvm_stats_desc)"},
	{"sizeof kvm_cpuid_entry2", uint64(unsafe.Sizeof(cpuidEntry2{})), "sizeof(struct kvm_cpuid_entry2)"},
	{"sizeof kvm_msr_entry", uint64(unsafe.Sizeof(msrEntry{})), "sizeof(struct kvm_msr_entry)"},
	{"offsetof kvm_run.immediate_exit", runImmediateExit, "offsetof(struct kvm_run, immediate_exit)"},
	{"offsetof kvm_run.exit_reason", runExitReason, "offsetof(struct kvm_run, exit_reason)"},
	{"offsetof kvm_run.io", runUnion, "offsetof(struct kvm_run, io)"},
	{"offsetof kvm_run.io.port", runUnion + 2, "offsetof(struct kvm_run, io.port)"},
	{"offsetof kvm_run.io.count", runUnion + 4, "offsetof(struct kvm_run, io.count)"},
	{"offsetof kvm_run.io.data_offset", runUnion + 8, "offsetof(struct kvm_run, io.data_offset)"},
	{"offsetof kvm_run.mmio.data", runUnion + 8, "offsetof(struct kvm_run, mmio.data)"},
	{"offsetof kvm_run.mmio.len", runUnion + 16, "offsetof(struct kvm_run, mmio.len)"},
	{"offsetof kvm_run.mmio.is_write", runUnion + 20, "offsetof(struct kvm_run, mmio.is_write)"},
	{"offsetof kvm_run.debug.arch.pc", runUnion + 8, "offsetof(struct kvm_run, debug.arch.pc)"},
	{"offsetof kvm_run.debug.arch.dr6", runUnion + 16, "offsetof(struct kvm_run, debug.arch.dr6)"},
	{"offsetof kvm_run.internal.data", runUnion + 8, "offsetof(struct kvm_run, internal.data)"},
	{"offsetof kvm_run.msr.reason", runUnion + 8, "offsetof(struct kvm_run, msr.reason)"},
	{"offsetof kvm_run.msr.index", runUnion + 12, "offsetof(struct kvm_run, msr.index)"},
	{"offsetof kvm_run.msr.data", runUnion + 16, "offsetof(struct kvm_run, msr.data)"},
	{"offsetof kvm_run.fail_entry.cpu", runUnion + 8, "offsetof(struct kvm_run, fail_entry.cpu)"},
	{"sizeof kvm_run", runSize, "sizeof(struct kvm_run)"},
}
