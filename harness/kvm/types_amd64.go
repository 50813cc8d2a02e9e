package kvm

// userspaceMemoryRegion mirrors struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	slot          uint32
	flags         uint32
	guestPhysAddr uint64
	memorySize    uint64
	userspaceAddr uint64
}

// dirtyLog mirrors struct kvm_dirty_log.
type dirtyLog struct {
	slot   uint32
	_      uint32
	bitmap uint64 // pointer
}

// clearDirtyLog mirrors struct kvm_clear_dirty_log.
type clearDirtyLog struct {
	slot      uint32
	numPages  uint32
	firstPage uint64
	bitmap    uint64 // pointer
}

// enableCap mirrors struct kvm_enable_cap.
type enableCap struct {
	cap   uint32
	flags uint32
	args  [4]uint64
	_     [64]uint8
}

// guestDebug mirrors struct kvm_guest_debug (x86 arch part included).
type guestDebug struct {
	control  uint32
	_        uint32
	debugreg [8]uint64
}

// debugRegs mirrors struct kvm_debugregs.
type debugRegs struct {
	db    [4]uint64
	dr6   uint64
	dr7   uint64
	flags uint64
	_     [9]uint64
}

// dirtyGFN mirrors struct kvm_dirty_gfn.
type dirtyGFN struct {
	flags  uint32
	slot   uint32
	offset uint64
}

// statsHeader mirrors struct kvm_stats_header.
type statsHeader struct {
	flags      uint32
	nameSize   uint32
	numDesc    uint32
	idOffset   uint32
	descOffset uint32
	dataOffset uint32
}

// statsDesc mirrors the fixed part of struct kvm_stats_desc; name[] follows.
type statsDesc struct {
	flags      uint32
	exponent   int16
	size       uint16
	offset     uint32
	bucketSize uint32
}

// cpuidEntry2 mirrors struct kvm_cpuid_entry2.
type cpuidEntry2 struct {
	function uint32
	index    uint32
	flags    uint32
	eax      uint32
	ebx      uint32
	ecx      uint32
	edx      uint32
	_        [3]uint32
}

// msrEntry mirrors struct kvm_msr_entry.
type msrEntry struct {
	index uint32
	_     uint32
	data  uint64
}

// Offsets into struct kvm_run (x86-64). The exit union starts at 32.
const (
	runImmediateExit = 1
	runExitReason    = 8
	runUnion         = 32
	runSize          = 0x930 // sizeof(struct kvm_run) in the 6.1 headers
)
