package kvm

import (
	"unsafe"
)

// layoutEntry pairs a Go struct size or offset with the C expression for it.
type layoutEntry struct {
	name    string
	goValue uint64
	cexpr   string
}

var layoutTable = []layoutEntry{
	{"sizeof kvm_userspace_memory_region", uint64(unsafe.Sizeof(userspaceMemoryRegion{})), "sizeof(struct kvm_userspace_memory_region)"},
	{"sizeof kvm_dirty_log", uint64(unsafe.Sizeof(dirtyLog{})), "sizeof(struct kvm_dirty_log)"},
	{"sizeof kvm_clear_dirty_log", uint64(unsafe.Sizeof(clearDirtyLog{})), "sizeof(struct kvm_clear_dirty_log)"},
	{"offsetof kvm_clear_dirty_log.first_page", uint64(unsafe.Offsetof(clearDirtyLog{}.firstPage)), "offsetof(struct kvm_clear_dirty_log, first_page)"},
	{"sizeof kvm_enable_cap", uint64(unsafe.Sizeof(enableCap{})), "sizeof(struct kvm_enable_cap)"},
	{"sizeof kvm_dirty_gfn", uint64(unsafe.Sizeof(dirtyGFN{})), "sizeof(struct kvm_dirty_gfn)"},
	{"sizeof kvm_stats_header", uint64(unsafe.Sizeof(statsHeader{})), "sizeof(struct kvm_stats_header)"},
	{"sizeof kvm_stats_desc", uint64(unsafe.Sizeof(statsDesc{})), "sizeof(struct kvm_stats_desc)"},
	{"offsetof kvm_run.immediate_exit", runImmediateExit, "offsetof(struct kvm_run, immediate_exit)"},
	{"offsetof kvm_run.exit_reason", runExitReason, "offsetof(struct kvm_run, exit_reason)"},
	{"offsetof kvm_run.io", runUnion, "offsetof(struct kvm_run, io)"},
	{"offsetof kvm_run.io.port", runUnion + 2, "offsetof(struct kvm_run, io.port)"},
	{"offsetof kvm_run.io.count", runUnion + 4, "offsetof(struct kvm_run, io.count)"},
	{"offsetof kvm_run.io.data_offset", runUnion + 8, "offsetof(struct kvm_run, io.data_offset)"},
	{"offsetof kvm_run.mmio.data", runUnion + 8, "offsetof(struct kvm_run, mmio.data)"},
	{"offsetof kvm_run.mmio.len", runUnion + 16, "offsetof(struct kvm_run, mmio.len)"},
	{"offsetof kvm_run.mmio.is_write", runUnion + 20, "offsetof(struct kvm_run, mmio.is_write)"},
	{"offsetof kvm_run.internal.data", runUnion + 8, "offsetof(struct kvm_run, internal.data)"},
	{"offsetof kvm_run.msr.reason", runUnion + 8, "offsetof(struct kvm_run, msr.reason)"},
	{"offsetof kvm_run.msr.index", runUnion + 12, "offsetof(struct kvm_run, msr.index)"},
	{"offsetof kvm_run.msr.data", runUnion + 16, "offsetof(struct kvm_run, msr.data)"},
	{"offsetof kvm_run.fail_entry.cpu", runUnion + 8, "offsetof(struct kvm_run, fail_entry.cpu)"},
	{"offsetof kvm_run.request_interrupt_window", runRequestIRQWindow, "offsetof(struct kvm_run, request_interrupt_window)"},
	{"offsetof kvm_run.ready_for_interrupt_injection", runReadyForIRQ, "offsetof(struct kvm_run, ready_for_interrupt_injection)"},
	{"offsetof kvm_run.if_flag", runIFFlag, "offsetof(struct kvm_run, if_flag)"},
	{"offsetof kvm_run.cr8", runCR8, "offsetof(struct kvm_run, cr8)"},
	{"offsetof kvm_run.internal.suberror", runUnion, "offsetof(struct kvm_run, internal.suberror)"},
	{"offsetof kvm_run.internal.ndata", runUnion + 4, "offsetof(struct kvm_run, internal.ndata)"},
	{"offsetof kvm_run.emulation_failure.flags", runUnion + 8, "offsetof(struct kvm_run, emulation_failure.flags)"},
	{"offsetof kvm_run.emulation_failure.insn_size", runUnion + 16, "offsetof(struct kvm_run, emulation_failure.insn_size)"},
	{"offsetof kvm_run.emulation_failure.insn_bytes", runUnion + 17, "offsetof(struct kvm_run, emulation_failure.insn_bytes)"},
	{"sizeof kvm_irq_level", uint64(unsafe.Sizeof(irqLevel{})), "sizeof(struct kvm_irq_level)"},
	{"offsetof kvm_reg_list.reg", 8, "offsetof(struct kvm_reg_list, reg)"},
	{"offsetof kvm_run.system_event.type", runUnion, "offsetof(struct kvm_run, system_event.type)"},
	{"offsetof kvm_run.system_event.ndata", runUnion + 4, "offsetof(struct kvm_run, system_event.ndata)"},
	{"offsetof kvm_run.system_event.data", runUnion + 8, "offsetof(struct kvm_run, system_event.data)"},
}
