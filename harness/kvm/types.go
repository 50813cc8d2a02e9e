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

// irqLevel mirrors struct kvm_irq_level (KVM_IRQ_LINE).
type irqLevel struct {
	irq   uint32
	level uint32
}

// Offsets into struct kvm_run, the same on every architecture. The exit
// union starts at 32.
const (
	runRequestIRQWindow = 0
	runImmediateExit    = 1
	runExitReason       = 8
	runReadyForIRQ      = 12
	runIFFlag           = 13
	runCR8              = 16
	runUnion            = 32
)
