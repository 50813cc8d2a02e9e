//go:build amd64

package kvm

import (
	"fmt"
	"unsafe"
)

func (vm *VM) irqLine(l *irqLevel) error {
	_, err := ioctlPtr(vm.fd, kvmIRQLine, unsafe.Pointer(l))
	return err
}

// sendMSI issues KVM_SIGNAL_MSI and returns KVM's count of accepting APICs.
func (vm *VM) sendMSI(m *msi) (int, error) {
	n, err := ioctlPtr(vm.fd, kvmSignalMSI, unsafe.Pointer(m))
	return int(n), err
}

// injectInterrupt queues vector for the next entry (KVM_INTERRUPT, the
// userspace-irqchip path).
func (v *VCPU) injectInterrupt(vector uint8) error {
	i := interrupt{irq: uint32(vector)}
	if _, err := ioctlPtr(v.fd, kvmInterrupt, unsafe.Pointer(&i)); err != nil {
		return fmt.Errorf("KVM_INTERRUPT vector %d: %w", vector, err)
	}
	return nil
}
