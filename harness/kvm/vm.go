package kvm

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// DefaultWatchdog bounds a Run whose context has no deadline: this host
// class has guest instructions that make KVM_RUN never return.
const DefaultWatchdog = 60 * time.Second

// VM is one KVM virtual machine.
type VM struct {
	h      *Hypervisor
	fd     int
	cfg    hv.VMConfig
	bus    hv.Bus
	closed bool

	// Missing-page handlers (uffd.go): ufMu guards uf; ufPending counts
	// handler errors waiting for a Run, so the run loop's check is one
	// atomic load while no handler has failed.
	ufMu      sync.Mutex
	uf        *userfaults
	ufPending atomic.Int32

	mu    sync.Mutex
	slots map[uint32]hv.Memslot
	vcpus []*VCPU
	stats *statsFile
	// hostDirty records host writes per dirty-logged slot (hostdirty.go);
	// byGPA is the slots sorted by GPA for guest memory access, an
	// immutable snapshot: a change drops it (nil) and the next access
	// rebuilds it, so an access reads one snapshot and a memslot update
	// costs no O(n log n) copy and sort (that was 15.6 ms per update at
	// 32766 slots on x86, BenchmarkSlotBookkeeping; 50 ns now).
	hostDirty map[uint32]*hostDirty
	byGPA     atomic.Pointer[[]hv.Memslot]
	access    hv.GuestAccess

	arch archVM
}

var _ hv.VM = (*VM)(nil)

// NewVM implements hv.Hypervisor.
func (h *Hypervisor) NewVM(cfg hv.VMConfig) (hv.VM, error) {
	vm, err := h.CreateVM(cfg)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return vm, nil
}

// CreateVM is NewVM with the concrete type, for tests that need KVM specifics.
func (h *Hypervisor) CreateVM(cfg hv.VMConfig) (*VM, error) {
	typ, err := h.archVMType(cfg)
	if err != nil {
		return nil, err
	}
	fd, err := ioctl(h.fd, kvmCreateVM, typ)
	if err != nil {
		if typ != 0 {
			return nil, fmt.Errorf("KVM_CREATE_VM type %#x (%v): %w", typ, cfg.ARM64Type, err)
		}
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm := newVMState(h, int(fd), cfg)
	unix.CloseOnExec(vm.fd)
	if err := vm.applyConfig(); err != nil {
		unix.Close(vm.fd)
		return nil, err
	}
	h.mu.Lock()
	h.vms++
	h.mu.Unlock()
	return vm, nil
}

// newVMState builds the VM's host-side state around a KVM VM descriptor.
func newVMState(h *Hypervisor, fd int, cfg hv.VMConfig) *VM {
	vm := &VM{h: h, fd: fd, cfg: cfg, slots: map[uint32]hv.Memslot{}, hostDirty: map[uint32]*hostDirty{}}
	vm.access = hv.GuestAccess{Slots: vm.slotsByGPA, Written: vm.hostWritten, Writable: vm.hostWritable}
	return vm
}

func (vm *VM) applyConfig() error {
	cfg := vm.cfg
	if cfg.InitiallySet && !cfg.ManualProtect {
		return fmt.Errorf("VM config: InitiallySet needs ManualProtect")
	}
	if cfg.ManualProtect {
		if err := vm.h.caps.Require(hv.CapManualProtect); err != nil {
			return err
		}
		arg := uint64(dirtyLogManualProt)
		if cfg.InitiallySet {
			if err := vm.h.caps.Require(hv.CapInitiallySet); err != nil {
				return err
			}
			arg |= dirtyLogInitiallySet
		}
		if err := vm.enableCap(capManualDirtyLogProtect2, arg); err != nil {
			return fmt.Errorf("KVM_ENABLE_CAP MANUAL_DIRTY_LOG_PROTECT2 %#x: %w", arg, err)
		}
	}
	if cfg.DirtyRingWithBitmap {
		if cfg.DirtyRingBytes == 0 {
			return fmt.Errorf("VM config: DirtyRingWithBitmap needs DirtyRingBytes")
		}
		// Asked first, so a host without rings names the bitmap, the
		// capability the caller asked for.
		if err := vm.h.caps.Require(hv.CapDirtyRingBitmap); err != nil {
			return fmt.Errorf("VM config DirtyRingWithBitmap: %w", err)
		}
	}
	if cfg.DirtyRingBytes != 0 {
		if err := vm.h.caps.Require(hv.CapDirtyRing); err != nil {
			return err
		}
		c := capDirtyLogRingAcqRel
		if vm.h.CheckExtension(c) == 0 {
			c = capDirtyLogRing
		}
		if err := vm.enableCap(c, uint64(cfg.DirtyRingBytes)); err != nil {
			return fmt.Errorf("KVM_ENABLE_CAP DIRTY_LOG_RING %d bytes: %w", cfg.DirtyRingBytes, err)
		}
	}
	// The backup bitmap must follow the ring and precede every memslot
	// (KVM refuses it otherwise): VM creation is the only such moment.
	if cfg.DirtyRingWithBitmap {
		if err := vm.enableCap(capDirtyLogRingWithBitmap, 0); err != nil {
			return fmt.Errorf("KVM_ENABLE_CAP DIRTY_LOG_RING_WITH_BITMAP: %w", err)
		}
	}
	return vm.archConfig()
}

// Fd is the VM file descriptor (for KVM-specific tests).
func (vm *VM) Fd() int { return vm.fd }

// SetMemslot implements hv.VM.
func (vm *VM) SetMemslot(m hv.Memslot) error {
	if m.Size == 0 { // KVM's meaning of size 0: delete
		if err := vm.DeleteMemslot(m.Slot); err != nil {
			return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d size 0: %w", m.Slot, err)
		}
		return nil
	}
	if m.Memory == nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: no memory: %w", m.Slot, unix.EINVAL)
	}
	// The kernel would accept any host address range; make sure it is ours,
	// so a bad request cannot map unrelated Go memory into a guest.
	if m.Size == 0 || m.Offset%hv.PageSize != 0 || m.Offset > m.Memory.Size() || m.Size > m.Memory.Size()-m.Offset {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: [%#x, +%#x) outside its %#x-byte memory: %w",
			m.Slot, m.Offset, m.Size, m.Memory.Size(), unix.EINVAL)
	}
	flags := uint32(0)
	if m.Flags&hv.MemLogDirty != 0 {
		flags |= memLogDirtyPages
	}
	if m.Flags&hv.MemReadOnly != 0 {
		flags |= memReadonly
	}
	if m.Flags&^(hv.MemLogDirty|hv.MemReadOnly) != 0 {
		flags |= uint32(m.Flags &^ (hv.MemLogDirty | hv.MemReadOnly)) // let the kernel reject unknown flags
	}
	r := userspaceMemoryRegion{slot: m.Slot, flags: flags, guestPhysAddr: m.GPA, memorySize: m.Size,
		userspaceAddr: hostAddr(m.Memory.Bytes()) + m.Offset}
	if vm.isClosed() {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: %w", m.Slot, hv.ErrVMClosed)
	}
	if err := vm.setRegion(&r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x flags %s: %w", m.Slot, m.GPA, m.Size, m.Flags, err)
	}
	vm.slotSet(m)
	return nil
}

// rawRegionIoctl says whether KVM_SET_USER_MEMORY_REGION may go out as a
// raw syscall. A Syscall that outlasts sysmon's 20 µs loses its P, and
// winning one back on return (futex wake-ups, the scheduler lock) was
// most of the Go harness's cost over C per memslot update on KVM/arm64:
// 1.4-3.2x C as a Syscall, 0.8-1.1x raw, same boot (make bench-arm64).
// The update waits for the VM's SRCU readers, and a vCPU holds that lock
// while it waits on a missing page in a userfaultfd slot, whose reader is
// a goroutine of this process and needs a P: with a handler installed the
// P is given up as usual, so the reader can run even at GOMAXPROCS=1.
func (vm *VM) rawRegionIoctl() bool { return userfaultsOf(vm) == nil }

// slotSet records a slot KVM accepted. KVM keeps a slot's dirty bitmap
// while logging stays on (also across a move) and drops it when logging
// is turned off: so does the record of host writes.
func (vm *VM) slotSet(m hv.Memslot) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	old, had := vm.slots[m.Slot]
	vm.slots[m.Slot] = m
	switch {
	case m.Flags&hv.MemLogDirty == 0:
		delete(vm.hostDirty, m.Slot)
	case !had || old.Flags&hv.MemLogDirty == 0:
		vm.hostDirty[m.Slot] = newHostDirty(m.Pages())
	}
	vm.byGPA.Store(nil)
}

// DeleteMemslot implements hv.VM.
func (vm *VM) DeleteMemslot(slot uint32) error {
	vm.mu.Lock()
	_, ok := vm.slots[slot]
	vm.mu.Unlock()
	if !ok {
		return fmt.Errorf("delete memslot %d: no such slot: %w", slot, unix.EINVAL)
	}
	r := userspaceMemoryRegion{slot: slot}
	if err := vm.setRegion(&r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION delete slot %d: %w", slot, err)
	}
	vm.slotDeleted(slot)
	return nil
}

// slotDeleted forgets a slot KVM deleted.
func (vm *VM) slotDeleted(slot uint32) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	delete(vm.slots, slot)
	delete(vm.hostDirty, slot)
	vm.byGPA.Store(nil)
}

// slotsByGPA is hv.GuestAccess's view of the slots: the GPA-sorted
// snapshot, rebuilt under vm.mu by the first access after a change.
func (vm *VM) slotsByGPA() []hv.Memslot {
	if p := vm.byGPA.Load(); p != nil {
		return *p
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if p := vm.byGPA.Load(); p != nil {
		return *p
	}
	out := make([]hv.Memslot, 0, len(vm.slots))
	for _, s := range vm.slots {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GPA < out[j].GPA })
	vm.byGPA.Store(&out)
	return out
}

// hostWritten records a host write to a dirty-logged slot.
func (vm *VM) hostWritten(m hv.Memslot, first, last uint64) {
	if m.Flags&hv.MemLogDirty == 0 {
		return
	}
	vm.mu.Lock()
	d := vm.hostDirty[m.Slot]
	vm.mu.Unlock()
	d.mark(first, last)
}

// hostWritable refuses host writes that no harvest would report: a
// dirty-ring VM collects only vCPU writes, unless it has the backup bitmap.
func (vm *VM) hostWritable(m hv.Memslot) error {
	if m.Flags&hv.MemLogDirty != 0 && vm.cfg.DirtyRingBytes != 0 && !vm.cfg.DirtyRingWithBitmap {
		return hv.ErrDirtyUntracked
	}
	return nil
}

// dirtyRecord returns the host-write record of a slot (nil: none).
func (vm *VM) dirtyRecord(slot uint32) *hostDirty {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.hostDirty[slot]
}

// Memslots implements hv.VM.
func (vm *VM) Memslots() []hv.Memslot {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]hv.Memslot, 0, len(vm.slots))
	for _, s := range vm.slots {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

func (vm *VM) slot(id uint32) (hv.Memslot, bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s, ok := vm.slots[id]
	return s, ok
}

// GetDirtyLog implements hv.VM: KVM's bitmap (in a dirty-ring VM, its
// backup bitmap) merged with the pages host code wrote. Without manual
// protect the host record is taken with the get, as KVM's is; with it,
// the host's bits stay until ClearDirtyLog clears them.
func (vm *VM) GetDirtyLog(slot uint32, bitmap []uint64) error {
	s, ok := vm.slot(slot)
	if !ok {
		// Ask the kernel anyway so the error is the kernel's own.
		return vm.getDirtyLog(slot, bitmap, 0)
	}
	if err := vm.getDirtyLog(slot, bitmap, s.Pages()); err != nil {
		return err
	}
	vm.mergeHostWrites(slot, bitmap)
	return nil
}

// mergeHostWrites ORs the host writes of a slot into the bitmap KVM just
// filled: taken with it in bitmap mode, left for ClearDirtyLog with
// manual protect.
func (vm *VM) mergeHostWrites(slot uint32, bitmap []uint64) {
	vm.dirtyRecord(slot).collect(bitmap, !vm.cfg.ManualProtect)
}

// ClearDirtyLog implements hv.VM.
func (vm *VM) ClearDirtyLog(slot uint32, first, num uint64, bitmap []uint64) error {
	if uint64(len(bitmap))*64 < num {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d: bitmap of %d words is short for %d pages: %w", slot, len(bitmap), num, unix.EINVAL)
	}
	if num > 1<<32-1 {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d: %d pages: %w", slot, num, unix.EINVAL)
	}
	if err := vm.clearDirtyLog(slot, first, num, bitmap); err != nil {
		return err
	}
	vm.dirtyRecord(slot).clear(first, num, bitmap)
	return nil
}

// ResetDirtyRings implements hv.VM.
func (vm *VM) ResetDirtyRings() (int, error) {
	n, err := ioctl(vm.fd, kvmResetDirtyRings, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_RESET_DIRTY_RINGS: %w", err)
	}
	return int(n), nil
}

// SetMissingPageHandler implements hv.VM with userfaultfd: the slot's
// host range is registered in MISSING mode, and each first touch of a page
// that is not populated (never written, or punched) calls h on a reader
// thread and installs its page with UFFDIO_COPY; populated pages never
// fault. A handler error cannot fail the access itself: the page is served
// as zeroes and the error is returned by the faulting vCPU's next Run, by
// MissingPageErr and by the removal. A nil h removes the slot's handler,
// closes its descriptors and thread, and returns the first error its
// handler returned. See uffd.go.
func (vm *VM) SetMissingPageHandler(slot uint32, h hv.MissingPageHandler) error {
	return vm.setMissingPageHandler(slot, h)
}

// Attach implements hv.VM.
func (vm *VM) Attach(d hv.Device, regions ...hv.Region) error { return vm.bus.Attach(d, regions...) }

// Detach implements hv.VM.
func (vm *VM) Detach(d hv.Device) error { return vm.bus.Detach(d) }

// ResetDevices implements hv.VM.
func (vm *VM) ResetDevices() error { return vm.bus.Reset() }

// Stats implements hv.VM.
func (vm *VM) Stats() (hv.Stats, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.stats == nil {
		sf, err := openStats(vm.fd)
		if err != nil {
			return nil, fmt.Errorf("vm stats: %w", err)
		}
		vm.stats = sf
	}
	st, err := vm.stats.read()
	if err != nil {
		return nil, err
	}
	return append(st, vm.userfaultStats()...), nil
}

// Close implements hv.VM. Running vCPUs are stopped at once (kicked out
// of KVM_RUN with immediate_exit and a signal; their Run returns an error
// wrapping hv.ErrVMClosed) rather than left to their context or the
// watchdog; then the devices are closed (no access is in flight any
// more), then the descriptors.
func (vm *VM) Close() error {
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return nil
	}
	vm.closed = true
	vcpus := vm.vcpus
	vm.vcpus = nil
	st := vm.stats
	vm.mu.Unlock()
	for _, v := range vcpus {
		v.startClose()
	}
	for _, v := range vcpus {
		<-v.done
	}
	var errs []error
	if err := vm.bus.Close(); err != nil {
		errs = append(errs, err)
	}
	// No vCPU can fault any more: stop the missing-page readers.
	vm.closeUserfaults()
	// In-kernel devices hold the VM: close them before its descriptor.
	if err := vm.archClose(); err != nil {
		errs = append(errs, err)
	}
	if st != nil {
		st.close()
	}
	if err := unix.Close(vm.fd); err != nil {
		errs = append(errs, fmt.Errorf("close vm fd: %w", err))
	}
	vm.h.mu.Lock()
	vm.h.vms--
	vm.h.mu.Unlock()
	return errors.Join(errs...)
}
