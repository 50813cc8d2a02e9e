package kvm

import (
	"fmt"
	"sync"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// archVM is a VM's arm64 state: its in-kernel GICv3 and ITSs.
type archVM struct {
	mu      sync.Mutex
	hasVGIC bool
	vgicFD  int
	its     []*ITS
}

var _ hv.ARM64VM = (*VM)(nil)

// archConfig refuses the x86 parts of VMConfig with the capability that
// says why.
func (vm *VM) archConfig() error {
	if vm.cfg.IRQChip {
		return vm.h.caps.Require(hv.CapIRQChip)
	}
	if vm.cfg.UserSpaceMSR {
		return vm.h.caps.Require(hv.CapUserSpaceMSR)
	}
	return nil
}

// NewARM64VCPU implements hv.ARM64VM.
func (vm *VM) NewARM64VCPU(id int, f hv.ARM64VCPUFeatures) (hv.ARM64VCPU, error) {
	v, err := vm.CreateARM64VCPU(id, f)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return v, nil
}

// CreateARM64VCPU is NewARM64VCPU with the concrete type.
func (vm *VM) CreateARM64VCPU(id int, f hv.ARM64VCPUFeatures) (*VCPU, error) {
	if f.PMUv3 {
		if err := vm.h.caps.Require(hv.CapARM64PMU); err != nil {
			return nil, fmt.Errorf("vcpu %d: %w", id, err)
		}
	}
	return vm.createVCPU(id, archVCPU{features: f})
}

// CreateVGICv3 implements hv.ARM64VM: KVM_CREATE_DEVICE, the two base
// addresses (KVM_DEV_ARM_VGIC_GRP_ADDR), the number of interrupt IDs
// (KVM_DEV_ARM_VGIC_GRP_NR_IRQS) and KVM_DEV_ARM_VGIC_CTRL_INIT.
func (vm *VM) CreateVGICv3(distBase, redistBase uint64, nrIRQs int) error {
	if err := vm.h.caps.Require(hv.CapVGICv3); err != nil {
		return err
	}
	if nrIRQs != 0 && (nrIRQs < 64 || nrIRQs > 1023 || nrIRQs%32 != 0) {
		return fmt.Errorf("vgic-v3: %d interrupt IDs (want a multiple of 32 in [64, 992]): %w", nrIRQs, unix.EINVAL)
	}
	vm.arch.mu.Lock()
	defer vm.arch.mu.Unlock()
	if vm.arch.hasVGIC {
		return fmt.Errorf("vgic-v3: the VM has one already: %w", unix.EEXIST)
	}
	fd, err := vm.createDevice(devTypeARMVGICV3)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_DEVICE vgic-v3: %w", err)
	}
	steps := []struct {
		name  string
		group uint32
		attr  uint64
		set   func(fd int, group uint32, attr uint64) error
	}{
		{"distributor base", vgicGrpAddr, vgicV3AddrTypeDist, func(fd int, g uint32, a uint64) error { return setDeviceAttrU64(fd, g, a, distBase) }},
		{"redistributor base", vgicGrpAddr, vgicV3AddrTypeRedist, func(fd int, g uint32, a uint64) error { return setDeviceAttrU64(fd, g, a, redistBase) }},
		{"nr_irqs", vgicGrpNrIRQs, 0, func(fd int, g uint32, a uint64) error {
			if nrIRQs == 0 {
				return nil
			}
			return setDeviceAttrU32(fd, g, a, uint32(nrIRQs))
		}},
		{"CTRL_INIT", vgicGrpCtrl, vgicCtrlInit, func(fd int, g uint32, a uint64) error { return setDeviceAttrNone(fd, g, a) }},
	}
	for _, s := range steps {
		if err := s.set(fd, s.group, s.attr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("KVM_SET_DEVICE_ATTR vgic-v3 %s (group %d attr %d; dist %#x redist %#x): %w", s.name, s.group, s.attr, distBase, redistBase, err)
		}
	}
	vm.arch.hasVGIC, vm.arch.vgicFD = true, fd
	return nil
}

// IRQLine implements hv.ARM64VM with KVM_IRQ_LINE.
func (vm *VM) IRQLine(kind hv.ARM64IRQKind, vcpu int, intid uint32, level bool) error {
	irq, err := armIRQLineField(kind, vcpu, intid)
	if err != nil {
		return fmt.Errorf("KVM_IRQ_LINE: %w", err)
	}
	if kind != hv.ARM64IRQCPU {
		vm.arch.mu.Lock()
		has := vm.arch.hasVGIC
		vm.arch.mu.Unlock()
		if !has {
			return fmt.Errorf("KVM_IRQ_LINE intid %d: no vGIC (CreateVGICv3 first): %w", intid, unix.ENXIO)
		}
	}
	l := uint32(0)
	if level {
		l = 1
	}
	if err := vm.irqLine(irq, l); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE %#x (kind %d vcpu %d intid %d) level %d: %w", irq, kind, vcpu, intid, l, err)
	}
	return nil
}

// armIRQLineField encodes KVM_IRQ_LINE's irq field on arm64: the vCPU
// index in bits 16-23 and, beyond 255, 28-31; the kind in 24-27; the
// interrupt number in 0-15. PPIs are 16-31 of one vCPU, SPIs 32-1019,
// and a CPU line is the vCPU's IRQ (0) or FIQ (1) pin.
func armIRQLineField(kind hv.ARM64IRQKind, vcpu int, intid uint32) (uint32, error) {
	switch kind {
	case hv.ARM64IRQCPU:
		if intid > 1 {
			return 0, fmt.Errorf("cpu line %d (want 0 = IRQ, 1 = FIQ): %w", intid, unix.EINVAL)
		}
	case hv.ARM64IRQPPI:
		if intid < 16 || intid > 31 {
			return 0, fmt.Errorf("PPI intid %d (want 16..31): %w", intid, unix.EINVAL)
		}
	case hv.ARM64IRQSPI:
		if intid < 32 || intid > 1019 {
			return 0, fmt.Errorf("SPI intid %d (want 32..1019): %w", intid, unix.EINVAL)
		}
		vcpu = 0 // ignored by KVM for SPIs
	default:
		return 0, fmt.Errorf("irq kind %d: %w", kind, unix.EINVAL)
	}
	if vcpu < 0 || vcpu > 0xfff {
		return 0, fmt.Errorf("vcpu %d (want 0..4095): %w", vcpu, unix.EINVAL)
	}
	return uint32(vcpu>>8)<<armIRQVCPU2Shift | uint32(kind)<<armIRQTypeShift | uint32(vcpu&0xff)<<armIRQVCPUShift | intid&armIRQNumMask, nil
}

// Interrupt implements hv.Interrupts: x86 only (see CapIRQChip).
func (vm *VM) Interrupt(int, uint8) error { return vm.h.caps.Require(hv.CapIRQChip) }

// SignalMSI implements hv.Interrupts: x86 only (see CapMSI).
func (vm *VM) SignalMSI(uint64, uint32) error { return vm.h.caps.Require(hv.CapMSI) }

// SetIRQLine implements hv.Interrupts: the I/O APIC is x86's; arm64
// lines are IRQLine's.
func (vm *VM) SetIRQLine(uint32, bool) error { return vm.h.caps.Require(hv.CapIRQLine) }
