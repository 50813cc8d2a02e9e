//go:build arm64

package kvm

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// preferredTarget is KVM_ARM_PREFERRED_TARGET on VM descriptor fd.
func preferredTarget(fd int) (vcpuInit, error) {
	var init vcpuInit
	_, err := ioctlPtr(fd, kvmARMPreferredTarget, unsafe.Pointer(&init))
	return init, err
}

// testCreateDevice asks whether a device of type typ can be created on
// VM descriptor fd, without creating it (KVM_CREATE_DEVICE_TEST).
func testCreateDevice(fd int, typ uint32) error {
	cd := createDevice{typ: typ, flags: createDeviceTest}
	_, err := ioctlPtr(fd, kvmCreateDevice, unsafe.Pointer(&cd))
	return err
}

// createDevice creates an in-kernel device and returns its descriptor.
func (vm *VM) createDevice(typ uint32) (int, error) {
	cd := createDevice{typ: typ}
	if _, err := ioctlPtr(vm.fd, kvmCreateDevice, unsafe.Pointer(&cd)); err != nil {
		return -1, err
	}
	fd := int(cd.fd)
	unix.CloseOnExec(fd)
	return fd, nil
}

// setDeviceAttr is KVM_SET_DEVICE_ATTR on a device or vCPU descriptor,
// with the attribute's value at p (nil: none).
func setDeviceAttr(fd int, group uint32, attr uint64, p unsafe.Pointer) error {
	a := deviceAttr{group: group, attr: attr, addr: uint64(uintptr(p))}
	_, err := ioctlPtr(fd, kvmSetDeviceAttr, unsafe.Pointer(&a))
	return err
}

func setDeviceAttrU64(fd int, group uint32, attr uint64, v uint64) error {
	err := setDeviceAttr(fd, group, attr, unsafe.Pointer(&v))
	runtime.KeepAlive(&v)
	return err
}

func setDeviceAttrU32(fd int, group uint32, attr uint64, v uint32) error {
	err := setDeviceAttr(fd, group, attr, unsafe.Pointer(&v))
	runtime.KeepAlive(&v)
	return err
}

func setDeviceAttrNone(fd int, group uint32, attr uint64) error {
	return setDeviceAttr(fd, group, attr, nil)
}

// irqLine is KVM_IRQ_LINE with an encoded irq field.
func (vm *VM) irqLine(irq, level uint32) error {
	l := irqLevel{irq: irq, level: level}
	_, err := ioctlPtr(vm.fd, kvmIRQLine, unsafe.Pointer(&l))
	return err
}

// getDeviceAttr is KVM_GET_DEVICE_ATTR into the value at p.
func getDeviceAttr(fd int, group uint32, attr uint64, p unsafe.Pointer) error {
	a := deviceAttr{group: group, attr: attr, addr: uint64(uintptr(p))}
	_, err := ioctlPtr(fd, kvmGetDeviceAttr, unsafe.Pointer(&a))
	return err
}

func getDeviceAttrU64(fd int, group uint32, attr uint64) (uint64, error) {
	var v uint64
	err := getDeviceAttr(fd, group, attr, unsafe.Pointer(&v))
	runtime.KeepAlive(&v)
	return v, err
}

func getDeviceAttrU32(fd int, group uint32, attr uint64) (uint32, error) {
	var v uint32
	err := getDeviceAttr(fd, group, attr, unsafe.Pointer(&v))
	runtime.KeepAlive(&v)
	return v, err
}
