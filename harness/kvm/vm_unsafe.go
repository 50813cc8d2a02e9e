package kvm

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

func hostAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// setRegion issues KVM_SET_USER_MEMORY_REGION, as a raw syscall where
// that is safe (rawRegionIoctl).
func (vm *VM) setRegion(r *userspaceMemoryRegion) error {
	var err error
	if vm.rawRegionIoctl() {
		_, err = rawIoctlPtr(vm.fd, kvmSetUserMemRegion, unsafe.Pointer(r))
	} else {
		_, err = ioctlPtr(vm.fd, kvmSetUserMemRegion, unsafe.Pointer(r))
	}
	return err
}

func (vm *VM) enableCap(c int, arg0 uint64) error {
	ec := enableCap{cap: uint32(c)}
	ec.args[0] = arg0
	_, err := ioctlPtr(vm.fd, kvmEnableCap, unsafe.Pointer(&ec))
	return err
}

func (vm *VM) getDirtyLog(slot uint32, bitmap []uint64, pages uint64) error {
	need := (pages + 63) / 64
	if uint64(len(bitmap)) < need || len(bitmap) == 0 {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: bitmap of %d words is short for %d pages: %w", slot, len(bitmap), pages, unix.EINVAL)
	}
	d := dirtyLog{slot: slot, bitmap: uint64(uintptr(unsafe.Pointer(&bitmap[0])))}
	_, err := ioctlPtr(vm.fd, kvmGetDirtyLog, unsafe.Pointer(&d))
	// d holds the bitmap address as an integer: keep the slice alive.
	keepAlive(bitmap)
	if err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: %w", slot, err)
	}
	return nil
}

func (vm *VM) clearDirtyLog(slot uint32, first, num uint64, bitmap []uint64) error {
	var p uint64
	if len(bitmap) > 0 {
		p = uint64(uintptr(unsafe.Pointer(&bitmap[0])))
	}
	c := clearDirtyLog{slot: slot, numPages: uint32(num), firstPage: first, bitmap: p}
	_, err := ioctlPtr(vm.fd, kvmClearDirtyLog, unsafe.Pointer(&c))
	keepAlive(bitmap)
	if err != nil {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d first %d num %d: %w", slot, first, num, err)
	}
	return nil
}
