package kvm

// Interrupts (hv.Interrupts) on x86. Two paths, chosen once per host:
//
//   - In-kernel irqchip (KVM_CAP_IRQCHIP): KVM_CREATE_IRQCHIP gives every
//     vCPU a local APIC and the VM an I/O APIC (and PIC) with the default
//     routing GSI n -> I/O APIC pin n. Interrupt and SignalMSI are
//     KVM_SIGNAL_MSI, SetIRQLine is KVM_IRQ_LINE; KVM latches the vector
//     and kicks the target vCPU itself, and HLT waits inside KVM_RUN.
//   - Userspace injection (no KVM_CAP_IRQCHIP, or Options.UserspaceAPIC):
//     each vCPU has a harness/lapic model serving the APIC page's MMIO
//     exits; before each entry the highest deliverable vector is injected
//     with KVM_INTERRUPT when kvm_run says the vCPU can take it
//     (ready_for_interrupt_injection and IF), otherwise
//     request_interrupt_window asks KVM for KVM_EXIT_IRQ_WINDOW_OPEN.
//     Interrupt latches the vector in the model's IRR and kicks the vCPU
//     (immediate_exit + signal, as cancellation does) or wakes its halt.
//     There is no I/O APIC model on this path: SetIRQLine is unsupported.

import (
	"context"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
	"golang.org/x/sys/unix"
)

// irqMode is how a VM's interrupts are delivered.
type irqMode uint8

const (
	irqNone   irqMode = iota // VMConfig.IRQChip not set
	irqKernel                // KVM's in-kernel irqchip
	irqUser                  // userspace APIC model + KVM_INTERRUPT
)

func (m irqMode) String() string {
	return [...]string{"none", "in-kernel irqchip", "userspace APIC"}[m]
}

// archVM is a VM's x86 state.
type archVM struct {
	irq irqMode
}

// archVCPU is a vCPU's x86 state for userspace interrupt injection.
type archVCPU struct {
	apic *lapic.APIC
	// wakeCh wakes a vCPU halted in the userspace path (capacity 1).
	wakeCh chan struct{}
	// cr8 is the CR8 value handed to KVM at the last entry, so a change
	// seen at the exit is the guest's own write.
	cr8 uint64
}

// irqPath decides the path for this host and records the capabilities.
func (h *Hypervisor) irqCaps(c *hv.Caps) {
	chip := h.CheckExtension(capIRQChip)
	switch {
	case chip > 0 && !h.userspaceAPIC:
		h.arch.irq = irqKernel
		c.Set(hv.CapIRQChip, true, uint64(irqKernel), "in-kernel irqchip (KVM_CAP_IRQCHIP): LAPIC and I/O APIC in KVM, HLT waits in the kernel")
		msi := h.CheckExtension(capSignalMSI)
		c.Set(hv.CapMSI, msi > 0, uint64(msi), fmt.Sprintf("KVM_SIGNAL_MSI (KVM_CAP_SIGNAL_MSI=%d)", msi))
		rt := h.CheckExtension(capIRQRouting)
		c.Set(hv.CapIRQLine, rt > 0, uint64(rt), fmt.Sprintf("KVM_IRQ_LINE, default routing GSI n -> I/O APIC pin n (KVM_CAP_IRQ_ROUTING=%d)", rt))
	default:
		h.arch.irq = irqUser
		why := "KVM_CAP_IRQCHIP not offered"
		if chip > 0 {
			why = "Options.UserspaceAPIC chose it over the in-kernel irqchip"
		}
		c.Set(hv.CapIRQChip, true, uint64(irqUser), "userspace APIC + KVM_INTERRUPT through the interrupt window: "+why)
		c.Set(hv.CapMSI, true, 0, "decoded in userspace and raised at the target's userspace APIC")
		c.Set(hv.CapIRQLine, false, 0, "userspace interrupt path ("+why+") has no I/O APIC model")
	}
}

// archConfig applies the x86 parts of VMConfig at VM creation: before
// any vCPU exists, as KVM_CREATE_IRQCHIP requires.
func (vm *VM) archConfig() error {
	cfg := vm.cfg
	if cfg.UserSpaceMSR {
		if err := vm.h.caps.Require(hv.CapUserSpaceMSR); err != nil {
			return err
		}
		if err := vm.enableCap(capX86UserSpaceMSR, msrExitReasonInval|msrExitReasonUnknown|msrExitReasonFilter); err != nil {
			return fmt.Errorf("KVM_ENABLE_CAP X86_USER_SPACE_MSR: %w", err)
		}
	}
	if !cfg.IRQChip {
		return nil
	}
	if err := vm.h.caps.Require(hv.CapIRQChip); err != nil {
		return err
	}
	vm.arch.irq = vm.h.arch.irq
	if vm.arch.irq == irqKernel {
		if _, err := ioctl(vm.fd, kvmCreateIRQChip, 0); err != nil {
			return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
		}
	}
	return nil
}

// archVCPUCreate gives a vCPU of a userspace-APIC VM its APIC model
// (APIC ID = vCPU id, as KVM's own APIC would have) and hides x2APIC,
// which that model does not implement.
func (v *VCPU) archVCPUCreate(t []cpuidEntry2) []cpuidEntry2 {
	if v.vm.arch.irq != irqUser {
		return t
	}
	v.arch.apic = lapic.New(uint32(v.id))
	v.arch.wakeCh = make(chan struct{}, 1)
	out := append([]cpuidEntry2(nil), t...)
	for i := range out {
		if out[i].function == hv.CPUIDLeafFeatures {
			out[i].ecx &^= hv.CPUID1ECXX2APIC
		}
	}
	return out
}

// wake ends a userspace-path halt wait (no-op elsewhere).
func (v *VCPU) wake() {
	if v.arch.wakeCh == nil {
		return
	}
	select {
	case v.arch.wakeCh <- struct{}{}:
	default:
	}
}

// afterExit runs on the vCPU thread after KVM_RUN returned an exit: a CR8
// value different from the one handed to KVM is the guest's TPR write.
func (v *VCPU) afterExit() {
	if v.vm.arch.irq != irqUser {
		return
	}
	if cr8 := v.u64(runCR8); cr8 != v.arch.cr8 {
		v.arch.apic.SetTPR(uint32(cr8&0xf) << 4)
	}
}

// beforeEntry injects the highest deliverable interrupt when the vCPU can
// take it, and otherwise asks KVM for an exit when it can.
func (v *VCPU) beforeEntry() error {
	if v.vm.arch.irq != irqUser {
		return nil
	}
	a := v.arch.apic
	v.arch.cr8 = uint64(a.TPR() >> 4)
	v.setU64(runCR8, v.arch.cr8)
	vec, inject, window := injectPlan(a, v.u8(runReadyForIRQ) != 0, v.u8(runIFFlag) != 0)
	if inject {
		if err := v.injectInterrupt(vec); err != nil {
			return err
		}
		// One injection per entry: kvm_run's readiness is stale now.
		v.run[runReadyForIRQ] = 0
	}
	var w uint8
	if window {
		w = 1
	}
	setRunByte(v.run, runRequestIRQWindow, w)
	return nil
}

// injectPlan decides one entry of the userspace path: the vector to
// inject now (moved from IRR to ISR) when KVM said the vCPU can take one
// (ready: kvm_run.ready_for_interrupt_injection, ifFlag: its if_flag),
// and whether to ask for an interrupt-window exit for what still waits.
// A software-disabled APIC, or nothing above the processor priority,
// asks for nothing: an open window would exit for ever.
func injectPlan(a *lapic.APIC, ready, ifFlag bool) (vec uint8, inject, window bool) {
	if !a.SoftwareEnabled() || !a.Pending() {
		return 0, false, false
	}
	if ready && ifFlag {
		vec, inject = a.Accept(true)
	}
	return vec, inject, a.Pending()
}

// archExit serves the exits the backend owns: the userspace APIC page and
// a halt waiting for an interrupt. It reports whether exit was served.
func (v *VCPU) archExit(ctx context.Context, exit hv.Exit) (bool, error) {
	if v.vm.arch.irq != irqUser {
		return false, nil
	}
	switch e := exit.(type) {
	case *hv.MMIOExit:
		if e.GPA < hv.LAPICBase || e.GPA >= hv.LAPICBase+hv.PageSize {
			return false, nil
		}
		apicAccess(v.arch.apic, uint32(e.GPA-hv.LAPICBase), e.Data, e.Write)
		return true, nil
	case *hv.HaltExit:
		// HLT waits inside Run until an interrupt can be taken (the
		// contract's behaviour with an irqchip); IF=0 halts until the
		// context ends or the VM closes.
		for {
			a := v.arch.apic
			if v.u8(runIFFlag) != 0 && a.SoftwareEnabled() && a.Pending() {
				return true, nil
			}
			if v.watchFired.Load() || v.stopping.Load() {
				return true, nil // the run loop reports which
			}
			select {
			case <-v.arch.wakeCh:
			case <-ctx.Done():
				return true, nil // the run loop reports the context's end
			case <-v.closing:
				return true, nil
			}
		}
	}
	return false, nil
}

// apicAccess serves one guest access to the APIC page. Registers are
// 32 bits wide at 16-byte aligned offsets; other widths read 0 and
// write nothing, as on hardware where they are undefined.
func apicAccess(a *lapic.APIC, off uint32, data []byte, write bool) {
	if len(data) != 4 || off%16 != 0 {
		if !write {
			clear(data)
		}
		return
	}
	if write {
		a.Write(off, uint32(data[0])|uint32(data[1])<<8|uint32(data[2])<<16|uint32(data[3])<<24)
		return
	}
	r := a.Read(off)
	data[0], data[1], data[2], data[3] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
}

// vcpuByID finds a vCPU of vm.
func (vm *VM) vcpuByID(id int) (*VCPU, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return nil, hv.ErrVMClosed
	}
	for _, v := range vm.vcpus {
		if v.id == id {
			return v, nil
		}
	}
	return nil, fmt.Errorf("no vCPU %d: %w", id, unix.ENOENT)
}

// noIRQChip is the error of every interrupt call on a VM without one.
func noIRQChip(c hv.Cap) error {
	return hv.Unsupported(Name, c, "VM created without VMConfig.IRQChip")
}

// Interrupt implements hv.Interrupts.
func (vm *VM) Interrupt(vcpu int, vector uint8) error {
	if vm.arch.irq == irqNone {
		return fmt.Errorf("interrupt vcpu %d vector %d: %w", vcpu, vector, noIRQChip(hv.CapIRQChip))
	}
	if err := hv.CheckVector(vector); err != nil {
		return fmt.Errorf("interrupt vcpu %d: %w", vcpu, err)
	}
	if vcpu < 0 || vcpu > hv.MSIDestMask {
		return fmt.Errorf("interrupt vcpu %d: beyond xAPIC physical destinations (0-255): %w", vcpu, unix.EINVAL)
	}
	v, err := vm.vcpuByID(vcpu)
	if err != nil {
		return fmt.Errorf("interrupt vcpu %d vector %d: %w", vcpu, vector, err)
	}
	if vm.arch.irq == irqKernel {
		return vm.signalMSI(hv.MSIAddrBase|uint64(vcpu)<<hv.MSIDestShift, uint32(vector))
	}
	if !v.arch.apic.Raise(vector) {
		return fmt.Errorf("interrupt vcpu %d vector %d: the local APIC did not accept it (software-disabled: SVR bit 8 clear)", vcpu, vector)
	}
	v.kick()
	return nil
}

// SignalMSI implements hv.Interrupts.
func (vm *VM) SignalMSI(addr uint64, data uint32) error {
	if vm.arch.irq == irqNone {
		return fmt.Errorf("signal MSI: %w", noIRQChip(hv.CapMSI))
	}
	m, err := hv.DecodeMSI(addr, data)
	if err != nil {
		return fmt.Errorf("signal MSI: %w", err)
	}
	if vm.arch.irq == irqUser {
		return vm.Interrupt(int(m.Dest), m.Vector)
	}
	if err := vm.h.caps.Require(hv.CapMSI); err != nil {
		return err
	}
	return vm.signalMSI(addr, data)
}

// SetIRQLine implements hv.Interrupts.
func (vm *VM) SetIRQLine(gsi uint32, high bool) error {
	if vm.arch.irq == irqNone {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d: %w", gsi, noIRQChip(hv.CapIRQLine))
	}
	if err := vm.h.caps.Require(hv.CapIRQLine); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d: %w", gsi, err)
	}
	if gsi >= hv.IOAPICPins {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d: the I/O APIC has pins 0-%d: %w", gsi, hv.IOAPICPins-1, unix.EINVAL)
	}
	if vm.isClosed() {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d: %w", gsi, hv.ErrVMClosed)
	}
	l := irqLevel{irq: gsi}
	if high {
		l.level = 1
	}
	if err := vm.irqLine(&l); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d level %d: %w", gsi, l.level, err)
	}
	return nil
}

// signalMSI issues KVM_SIGNAL_MSI. KVM answers how many APICs accepted
// the message: 0 means none did (the target's APIC is software-disabled,
// or no APIC has that ID), which a device must hear about.
func (vm *VM) signalMSI(addr uint64, data uint32) error {
	if vm.isClosed() {
		return fmt.Errorf("KVM_SIGNAL_MSI: %w", hv.ErrVMClosed)
	}
	m := msi{addressLo: uint32(addr), addressHi: uint32(addr >> 32), data: data}
	n, err := vm.sendMSI(&m)
	if err != nil {
		return fmt.Errorf("KVM_SIGNAL_MSI addr %#x data %#x: %w", addr, data, err)
	}
	if n == 0 {
		return fmt.Errorf("KVM_SIGNAL_MSI addr %#x data %#x: no local APIC accepted it (APIC ID %d absent or software-disabled)",
			addr, data, addr>>hv.MSIDestShift&hv.MSIDestMask)
	}
	return nil
}
