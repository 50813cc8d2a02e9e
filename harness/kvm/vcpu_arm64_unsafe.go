//go:build arm64

package kvm

import (
	"fmt"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

func (v *VCPU) vcpuInit(init *vcpuInit) error {
	_, err := ioctlPtr(v.fd, kvmARMVCPUInit, unsafe.Pointer(init))
	return err
}

// getOneReg reads a register of at most 8 bytes on the vCPU's thread;
// a narrower register fills the low bytes (little-endian).
func (v *VCPU) getOneReg(id uint64) (uint64, error) {
	if err := checkOneRegSize(id); err != nil {
		return 0, fmt.Errorf("KVM_GET_ONE_REG vcpu %d: %w", v.id, err)
	}
	var val uint64
	r := oneReg{id: id, addr: uint64(uintptr(unsafe.Pointer(&val)))}
	_, err := ioctlPtr(v.fd, kvmGetOneReg, unsafe.Pointer(&r))
	keepAlive(&val)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_ONE_REG %s vcpu %d: %w", hv.ARM64RegName(id), v.id, err)
	}
	return val, nil
}

func (v *VCPU) setOneReg(id uint64, val uint64) error {
	if err := checkOneRegSize(id); err != nil {
		return fmt.Errorf("KVM_SET_ONE_REG vcpu %d: %w", v.id, err)
	}
	r := oneReg{id: id, addr: uint64(uintptr(unsafe.Pointer(&val)))}
	_, err := ioctlPtr(v.fd, kvmSetOneReg, unsafe.Pointer(&r))
	keepAlive(&val)
	if err != nil {
		return fmt.Errorf("KVM_SET_ONE_REG %s = %#x vcpu %d: %w", hv.ARM64RegName(id), val, v.id, err)
	}
	return nil
}

// regList asks for the count first (KVM answers E2BIG with n set), then
// for the ids; a count that grew in between is asked again.
func (v *VCPU) regList() ([]uint64, error) {
	n := uint64(0)
	for range 4 {
		buf := make([]uint64, 1+n)
		buf[0] = n
		_, err := ioctlPtr(v.fd, kvmGetRegList, unsafe.Pointer(&buf[0]))
		keepAlive(buf)
		switch {
		case err == nil:
			if buf[0] > n {
				return nil, fmt.Errorf("KVM_GET_REG_LIST vcpu %d: %d ids in a %d-id buffer", v.id, buf[0], n)
			}
			return buf[1 : 1+buf[0]], nil
		case err == unix.E2BIG && buf[0] > n:
			n = buf[0]
		default:
			return nil, fmt.Errorf("KVM_GET_REG_LIST vcpu %d (%d ids): %w", v.id, n, err)
		}
	}
	return nil, fmt.Errorf("KVM_GET_REG_LIST vcpu %d: the count keeps growing: %w", v.id, unix.E2BIG)
}

func (v *VCPU) setGuestDebug(gd *guestDebug) error {
	return v.ioctlBuf(kvmSetGuestDebug, "KVM_SET_GUEST_DEBUG", unsafe.Pointer(gd))
}

func (v *VCPU) setPMUIRQ(intid uint32) error {
	irq := int32(intid)
	err := setDeviceAttr(v.fd, armVCPUPMUV3Ctrl, armVCPUPMUV3IRQ, unsafe.Pointer(&irq))
	keepAlive(&irq)
	return err
}

func (v *VCPU) setPMUFilter(f hv.ARM64PMUFilter) error {
	pf := pmuEventFilter{baseEvent: f.BaseEvent, nevents: f.NEvents, action: uint8(f.Action)}
	err := setDeviceAttr(v.fd, armVCPUPMUV3Ctrl, armVCPUPMUV3Filter, unsafe.Pointer(&pf))
	keepAlive(&pf)
	return err
}
