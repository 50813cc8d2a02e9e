package hv

import (
	"context"
	"errors"
	"fmt"
)

// Hypervisor is one backend: real KVM or the bundled emulator.
type Hypervisor interface {
	// Name is the backend's stable name ("kvm", "emu").
	Name() string
	// Caps is what this backend supports on this host, and why not.
	Caps() Caps
	// NewVM creates an empty VM: no memory, no vCPUs.
	NewVM(cfg VMConfig) (VM, error)
	// Close releases the backend (for KVM, the /dev/kvm descriptor).
	Close() error
}

// VMConfig is what must be decided when a VM is created.
type VMConfig struct {
	// DirtyRingBytes enables per-vCPU dirty rings of this many bytes
	// (0: off). It must be set before any vCPU exists, as in KVM.
	DirtyRingBytes int
	// ManualProtect makes GetDirtyLog leave pages write-protected state alone;
	// the host re-arms logging with ClearDirtyLog (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2).
	ManualProtect bool
	// InitiallySet makes a newly logged slot start with every bit set
	// (KVM_DIRTY_LOG_INITIALLY_SET); needs ManualProtect.
	InitiallySet bool
	// UserSpaceMSR makes unknown or filtered MSR accesses exit to the host.
	UserSpaceMSR bool
	// DirtyRingWithBitmap adds the backup bitmap to a dirty-ring VM
	// (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP): vCPU writes go to the rings,
	// pages dirtied by anything else (device models, host code) to each
	// slot's bitmap, collected with GetDirtyLog. Needs DirtyRingBytes.
	DirtyRingWithBitmap bool
	// IRQChip gives the VM interrupt controllers: a local APIC per vCPU
	// and an I/O APIC (KVM: the in-kernel irqchip where offered, else a
	// userspace model with KVM_INTERRUPT). With it, HLT waits inside Run
	// until an interrupt wakes the vCPU (or the context ends) instead of
	// returning a HaltExit; without it the APIC pages are plain MMIO and
	// the Interrupts methods fail with ErrUnsupported.
	IRQChip bool
	// ARM64Type is an arm64 VM's machine type (ARM64IPASize: the size of
	// its guest-physical address space); 0 is the hypervisor's default.
	// Backends without arm64 guests refuse anything else.
	ARM64Type ARM64VMType
}

// MemFlags are memslot flags.
type MemFlags uint32

// Memslot flags, with KVM's values.
const (
	MemLogDirty MemFlags = 1 << 0
	MemReadOnly MemFlags = 1 << 1
)

func (f MemFlags) String() string {
	s := ""
	if f&MemLogDirty != 0 {
		s += "|log-dirty"
	}
	if f&MemReadOnly != 0 {
		s += "|readonly"
	}
	if f&^(MemLogDirty|MemReadOnly) != 0 {
		s += fmt.Sprintf("|%#x", uint32(f&^(MemLogDirty|MemReadOnly)))
	}
	if s == "" {
		return "none"
	}
	return s[1:]
}

// Memslot maps guest-physical [GPA, GPA+Size) onto Memory[Offset:Offset+Size].
type Memslot struct {
	Slot   uint32
	GPA    uint64
	Size   uint64
	Flags  MemFlags
	Memory *Memory
	Offset uint64
}

// Bytes is the host view of the slot's guest memory.
func (m Memslot) Bytes() []byte {
	if m.Memory == nil {
		return nil
	}
	return m.Memory.Bytes()[m.Offset : m.Offset+m.Size]
}

// Pages is the slot's size in base pages.
func (m Memslot) Pages() uint64 { return m.Size / PageSize }

// Contains reports whether gpa lies in the slot.
func (m Memslot) Contains(gpa uint64) bool { return gpa >= m.GPA && gpa-m.GPA < m.Size }

func (m Memslot) String() string {
	return fmt.Sprintf("slot %d gpa [%#x, %#x) flags %s", m.Slot, m.GPA, m.GPA+m.Size, m.Flags)
}

// VM is one guest: memory, vCPUs and attached devices.
type VM interface {
	// SetMemslot creates slot m.Slot, or changes an existing one: a new GPA
	// moves it, new Flags change logging; size and backing cannot change
	// (delete and re-create instead), as in KVM. Size 0 deletes the slot,
	// as KVM_SET_USER_MEMORY_REGION does (EINVAL when there is none).
	SetMemslot(m Memslot) error
	// DeleteMemslot removes a slot. Its memory stays the caller's.
	DeleteMemslot(slot uint32) error
	// Memslots lists the current slots by slot id.
	Memslots() []Memslot

	// GetDirtyLog copies the slot's dirty bitmap (bit i = page i) into
	// bitmap, which must hold at least ceil(pages/64) words. Without manual
	// protect it also clears the log and re-arms write tracking.
	GetDirtyLog(slot uint32, bitmap []uint64) error
	// ClearDirtyLog re-arms logging for the set bits of bitmap, which covers
	// pages [first, first+num) of the slot (manual protect only). first must
	// be a multiple of 64; num a multiple of 64 unless it reaches the slot end.
	ClearDirtyLog(slot uint32, first, num uint64, bitmap []uint64) error
	// ResetDirtyRings re-protects all harvested dirty-ring entries of every
	// vCPU and returns how many entries it reset.
	ResetDirtyRings() (int, error)

	// SetMissingPageHandler serves first touches of the slot's pages that
	// are not yet populated (userfaultfd MISSING on KVM). A nil h removes
	// the slot's handler and returns the first error it returned; setting
	// a second handler on a slot is an error. A handler error fails the
	// access: the faulting vCPU's Run returns an error wrapping it.
	SetMissingPageHandler(slot uint32, h MissingPageHandler) error

	// NewVCPU creates vCPU id.
	NewVCPU(id int) (VCPU, error)

	// GuestMemory is host and device access to guest-physical memory.
	GuestMemory
	// Interrupts raises interrupts in the guest (VMConfig.IRQChip).
	Interrupts

	// Attach routes guest accesses to the device's regions (MMIO ranges
	// no slot backs, I/O ports) to it, inside Run, exactly once each.
	Attach(d Device, regions ...Region) error
	// Detach removes a device; it is closed when no access is in flight.
	Detach(d Device) error
	// ResetDevices resets every attached device.
	ResetDevices() error

	// Stats reads the VM-wide statistics.
	Stats() (Stats, error)
	// Close stops running vCPUs promptly (their Run returns an error
	// wrapping ErrVMClosed), closes attached devices and frees the VM and
	// its vCPUs (not the Memory objects).
	Close() error
}

// ErrVMClosed is wrapped by the error of a Run that VM.Close stopped, and
// of calls on a closed VM or vCPU.
var ErrVMClosed = errors.New("vm closed")

// VCPU is one virtual CPU. Its methods must not be called concurrently with
// each other (HarvestDirtyRing excepted); Run is cancelled through its
// context from any goroutine.
type VCPU interface {
	ID() int
	Regs() (Regs, error)
	SetRegs(r *Regs) error
	Sregs() (Sregs, error)
	SetSregs(s *Sregs) error
	GetMSR(index uint32) (uint64, error)
	SetMSR(index uint32, value uint64) error
	DebugRegs() (DebugRegs, error)
	SetDebugRegs(d *DebugRegs) error
	// SetGuestDebug sets host-side debugging (see DebugFlags for how
	// events are routed between host and guest).
	SetGuestDebug(d *GuestDebug) error
	// CPUID is the vCPU's CPUID table; SetCPUID replaces it (before the
	// first Run, as KVM requires from 5.16 on).
	CPUID() (CPUID, error)
	SetCPUID(t CPUID) error

	// Run enters the guest until an exit the caller must see. Exits to
	// attached devices are handled inside. When ctx ends, a running guest
	// is stopped and Run returns an error wrapping ctx.Err().
	Run(ctx context.Context) (Exit, error)

	// Do runs fn where the vCPU's calls are cheapest: on KVM, the vCPU's
	// own OS thread (KVM wants every vCPU ioctl from the thread that made
	// the vCPU, and a thread hand-off per exit costs as much as the exit),
	// so a whole run loop inside Do pays no hand-off; elsewhere it just
	// calls fn. Calls of the vCPU's methods inside fn are allowed.
	Do(fn func() error) error

	// HarvestDirtyRing calls fn for each dirty entry published since the
	// last harvest, marks them for reset, and returns their count. Unlike
	// the other methods it may be called from any goroutine, also while
	// the vCPU runs: the ring is memory shared with the hypervisor.
	HarvestDirtyRing(fn func(slot uint32, offset uint64)) (int, error)

	// Stats reads this vCPU's statistics.
	Stats() (Stats, error)
	Close() error
}

// MissingPageHandler fills a not-yet-populated guest page on first touch.
// It writes the page's contents into page (PageSize bytes, zeroed) and
// returns nil, or an error that fails the access.
type MissingPageHandler func(f Fault, page []byte) error

// Fault describes a first touch of a missing page.
type Fault struct {
	Slot  uint32
	GPA   uint64 // page aligned
	Write bool
}

// Stat is one statistic of a VM or vCPU.
type Stat struct {
	Name   string
	Kind   string // "cumulative", "instant", "peak", "linear-hist", "log-hist"
	Unit   string // "", "bytes", "seconds", "cycles", "boolean"
	Values []uint64
}

// Stats is a set of statistics.
type Stats []Stat

// Get returns the first value of the named statistic.
func (s Stats) Get(name string) (uint64, bool) {
	for _, st := range s {
		if st.Name == name && len(st.Values) > 0 {
			return st.Values[0], true
		}
	}
	return 0, false
}
