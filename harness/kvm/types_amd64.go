package kvm

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

// msi mirrors struct kvm_msi (KVM_SIGNAL_MSI).
type msi struct {
	addressLo uint32
	addressHi uint32
	data      uint32
	flags     uint32
	devid     uint32
	_         [12]uint8
}

// interrupt mirrors struct kvm_interrupt (KVM_INTERRUPT).
type interrupt struct {
	irq uint32
}

// runSize is sizeof(struct kvm_run) on x86-64 (6.1 headers); the kvm_run
// mmap is KVM_GET_VCPU_MMAP_SIZE bytes, so only the header check uses it.
const runSize = 0x930
