package kvm

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// The vGICv3 ITS (kvm-arm-vgic-its) and the host's access to the
// redistributors (kvm-arm-vgic-v3's KVM_DEV_ARM_VGIC_GRP_REDIST_REGS).
// KVM runs ITS commands when GITS_CWRITER is written, from the guest's
// MMIO or from the host's KVM_SET_DEVICE_ATTR alike, and writes its
// tables into guest memory at KVM_DEV_ARM_ITS_SAVE_TABLES, with no vCPU
// running: the write the dirty ring's backup bitmap exists for.

var _ hv.ARM64ITSVM = (*VM)(nil)

// ITS is one ITS device of a VM.
type ITS struct {
	vm   *VM
	fd   int
	base uint64
}

var _ hv.ARM64ITS = (*ITS)(nil)

// CreateITS implements hv.ARM64ITSVM: KVM_CREATE_DEVICE, the frame's
// base (KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE) and
// KVM_DEV_ARM_VGIC_CTRL_INIT.
func (vm *VM) CreateITS(base uint64) (hv.ARM64ITS, error) {
	its, err := vm.CreateITSDevice(base)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return its, nil
}

// CreateITSDevice is CreateITS with the concrete type.
func (vm *VM) CreateITSDevice(base uint64) (*ITS, error) {
	if err := vm.h.caps.Require(hv.CapVGICITS); err != nil {
		return nil, err
	}
	if base%0x10000 != 0 {
		return nil, fmt.Errorf("vgic-its: base %#x is not 64 KiB aligned: %w", base, unix.EINVAL)
	}
	vm.arch.mu.Lock()
	defer vm.arch.mu.Unlock()
	if !vm.arch.hasVGIC {
		return nil, fmt.Errorf("vgic-its at %#x: no vGICv3 (CreateVGICv3 first): %w", base, unix.ENXIO)
	}
	fd, err := vm.createDevice(devTypeARMVGICITS)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_DEVICE vgic-its: %w", err)
	}
	if err := setDeviceAttrU64(fd, vgicGrpAddr, vgicITSAddrType, base); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-its base %#x: %w", base, err)
	}
	if err := setDeviceAttrNone(fd, vgicGrpCtrl, vgicCtrlInit); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-its CTRL_INIT: %w", err)
	}
	its := &ITS{vm: vm, fd: fd, base: base}
	vm.arch.its = append(vm.arch.its, its)
	return its, nil
}

// GetReg implements hv.ARM64ITS (KVM_DEV_ARM_VGIC_GRP_ITS_REGS).
func (its *ITS) GetReg(off uint32) (uint64, error) {
	fd, err := its.desc()
	if err != nil {
		return 0, err
	}
	v, err := getDeviceAttrU64(fd, vgicGrpITSRegs, uint64(off))
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_DEVICE_ATTR vgic-its reg %#x: %w", off, err)
	}
	return v, nil
}

// SetReg implements hv.ARM64ITS.
func (its *ITS) SetReg(off uint32, v uint64) error {
	fd, err := its.desc()
	if err != nil {
		return err
	}
	if err := setDeviceAttrU64(fd, vgicGrpITSRegs, uint64(off), v); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-its reg %#x = %#x: %w", off, v, err)
	}
	return nil
}

// Ctrl implements hv.ARM64ITS (KVM_DEV_ARM_VGIC_GRP_CTRL).
func (its *ITS) Ctrl(op hv.ARM64ITSCtrl) error {
	switch op {
	case hv.ITSSaveTables, hv.ITSRestoreTables, hv.ITSReset:
	default:
		return fmt.Errorf("vgic-its: %v: %w", op, unix.EINVAL)
	}
	fd, err := its.desc()
	if err != nil {
		return err
	}
	if err := setDeviceAttrNone(fd, vgicGrpCtrl, uint64(op)); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-its %v: %w", op, err)
	}
	return nil
}

// Close implements hv.ARM64ITS.
func (its *ITS) Close() error {
	its.vm.arch.mu.Lock()
	defer its.vm.arch.mu.Unlock()
	for i, o := range its.vm.arch.its {
		if o == its {
			its.vm.arch.its = append(its.vm.arch.its[:i], its.vm.arch.its[i+1:]...)
			if err := unix.Close(its.fd); err != nil {
				return fmt.Errorf("close vgic-its fd: %w", err)
			}
			return nil
		}
	}
	return nil // closed already, by Close or the VM's
}

// desc is the device's descriptor while it is open.
func (its *ITS) desc() (int, error) {
	its.vm.arch.mu.Lock()
	defer its.vm.arch.mu.Unlock()
	for _, o := range its.vm.arch.its {
		if o == its {
			return its.fd, nil
		}
	}
	return -1, fmt.Errorf("vgic-its at %#x: closed: %w", its.base, unix.EBADF)
}

// vgicDesc is the vGICv3's descriptor.
func (vm *VM) vgicDesc() (int, error) {
	vm.arch.mu.Lock()
	defer vm.arch.mu.Unlock()
	if !vm.arch.hasVGIC {
		return -1, fmt.Errorf("no vGICv3 (CreateVGICv3 first): %w", unix.ENXIO)
	}
	return vm.arch.vgicFD, nil
}

// redistAttr is the KVM_DEV_ARM_VGIC_GRP_REDIST_REGS attribute of
// register off of vCPU vcpu: the vCPU's affinity (Aff3.Aff2.Aff1.Aff0 of
// its MPIDR_EL1) in bits 32-63, the offset below. Offsets are from
// RD_base across both frames: the SGI_base registers (GICR_ISPENDR0 ...)
// are at 64 KiB + their offset, as KVM's redistributor table has them.
func (vm *VM) redistAttr(vcpu int, off uint32) (uint64, error) {
	if off%4 != 0 || off >= vgicV3RedistSize {
		return 0, fmt.Errorf("redistributor register offset %#x: %w", off, unix.EINVAL)
	}
	vm.mu.Lock()
	var v *VCPU
	if vcpu >= 0 && vcpu < len(vm.vcpus) {
		v = vm.vcpus[vcpu]
	}
	vm.mu.Unlock()
	if v == nil {
		return 0, fmt.Errorf("redistributor of vcpu %d: no such vCPU: %w", vcpu, unix.ENOENT)
	}
	mpidr, err := v.GetOneReg(hv.ARM64MPIDREL1)
	if err != nil {
		return 0, fmt.Errorf("redistributor of vcpu %d: MPIDR_EL1: %w", vcpu, err)
	}
	return redistAttrOf(mpidr, off), nil
}

// redistAttrOf packs an MPIDR_EL1 value's affinity fields and a register
// offset into a redistributor attribute.
func redistAttrOf(mpidr uint64, off uint32) uint64 {
	aff := (mpidr>>32&0xff)<<24 | (mpidr>>16&0xff)<<16 | (mpidr>>8&0xff)<<8 | mpidr&0xff
	return aff<<vgicV3MPIDRShift | uint64(off)
}

// GetRedistReg implements hv.ARM64ITSVM.
func (vm *VM) GetRedistReg(vcpu int, off uint32) (uint32, error) {
	fd, err := vm.vgicDesc()
	if err != nil {
		return 0, err
	}
	attr, err := vm.redistAttr(vcpu, off)
	if err != nil {
		return 0, err
	}
	v, err := getDeviceAttrU32(fd, vgicGrpRedistRegs, attr)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_DEVICE_ATTR redistributor of vcpu %d reg %#x (attr %#x): %w", vcpu, off, attr, err)
	}
	return v, nil
}

// SetRedistReg implements hv.ARM64ITSVM.
func (vm *VM) SetRedistReg(vcpu int, off uint32, v uint32) error {
	fd, err := vm.vgicDesc()
	if err != nil {
		return err
	}
	attr, err := vm.redistAttr(vcpu, off)
	if err != nil {
		return err
	}
	if err := setDeviceAttrU32(fd, vgicGrpRedistRegs, attr, v); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR redistributor of vcpu %d reg %#x (attr %#x) = %#x: %w", vcpu, off, attr, v, err)
	}
	return nil
}

// SaveVGICPendingTables implements hv.ARM64ITSVM
// (KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES on the vGICv3).
func (vm *VM) SaveVGICPendingTables() error {
	fd, err := vm.vgicDesc()
	if err != nil {
		return err
	}
	if err := setDeviceAttrNone(fd, vgicGrpCtrl, vgicSavePendingTables); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-v3 SAVE_PENDING_TABLES: %w", err)
	}
	return nil
}

// closeITSs closes every open ITS; the caller holds vm.arch.mu.
func (vm *VM) closeITSs() error {
	var first error
	for _, its := range vm.arch.its {
		if err := unix.Close(its.fd); err != nil && first == nil {
			first = fmt.Errorf("close vgic-its fd: %w", err)
		}
	}
	vm.arch.its = nil
	return first
}
