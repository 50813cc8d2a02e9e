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
	fd, err := ioctl(h.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm := &VM{h: h, fd: int(fd), cfg: cfg, slots: map[uint32]hv.Memslot{}}
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
	if cfg.UserSpaceMSR {
		if err := vm.h.caps.Require(hv.CapUserSpaceMSR); err != nil {
			return err
		}
		if err := vm.enableCap(capX86UserSpaceMSR, msrExitReasonInval|msrExitReasonUnknown|msrExitReasonFilter); err != nil {
			return fmt.Errorf("KVM_ENABLE_CAP X86_USER_SPACE_MSR: %w", err)
		}
	}
	return nil
}

// Fd is the VM file descriptor (for KVM-specific tests).
func (vm *VM) Fd() int { return vm.fd }

// SetMemslot implements hv.VM.
func (vm *VM) SetMemslot(m hv.Memslot) error {
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
	if err := vm.setRegion(&r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x flags %s: %w", m.Slot, m.GPA, m.Size, m.Flags, err)
	}
	vm.mu.Lock()
	vm.slots[m.Slot] = m
	vm.mu.Unlock()
	return nil
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
	vm.mu.Lock()
	delete(vm.slots, slot)
	vm.mu.Unlock()
	return nil
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

// GetDirtyLog implements hv.VM.
func (vm *VM) GetDirtyLog(slot uint32, bitmap []uint64) error {
	s, ok := vm.slot(slot)
	if !ok {
		// Ask the kernel anyway so the error is the kernel's own.
		return vm.getDirtyLog(slot, bitmap, 0)
	}
	return vm.getDirtyLog(slot, bitmap, s.Pages())
}

// ClearDirtyLog implements hv.VM.
func (vm *VM) ClearDirtyLog(slot uint32, first, num uint64, bitmap []uint64) error {
	if uint64(len(bitmap))*64 < num {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d: bitmap of %d words is short for %d pages: %w", slot, len(bitmap), num, unix.EINVAL)
	}
	if num > 1<<32-1 {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d: %d pages: %w", slot, num, unix.EINVAL)
	}
	return vm.clearDirtyLog(slot, first, num, bitmap)
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

// Close implements hv.VM: vCPUs first, then the VM descriptor.
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
	var errs []error
	for _, v := range vcpus {
		if err := v.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	// No vCPU can fault any more: stop the missing-page readers.
	vm.closeUserfaults()
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
