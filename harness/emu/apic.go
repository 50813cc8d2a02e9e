package emu

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
)

// The local APIC register model is harness/lapic; this file connects it to
// the interpreter (its MMIO page, CR8, interrupt delivery) and adds the
// VM's I/O APIC and the hv.Interrupts methods.
//
// Without VMConfig.IRQChip there is no interrupt controller, as on KVM
// without KVM_CREATE_IRQCHIP: the APIC page is plain guest-physical space
// (a device or an MMIO exit), HLT exits, and Interrupts fail.

const (
	apicEnable  = 1 << 11
	apicBaseBSP = 1 << 8
	apicDefault = hv.LAPICBase
)

// apicClaims reports whether gpa is in this vCPU's enabled APIC page.
func (c *cpu) apicClaims(gpa uint64) bool {
	b := c.sr.APICBase
	return c.vm.cfg.IRQChip && b&apicEnable != 0 && gpa&^0xfff == b&physMask&^0xfff
}

func (c *cpu) apicRead(gpa uint64, n int) uint64 {
	off := gpa & 0xfff
	v := uint64(c.apic.Read(uint32(off)))
	if c.detTime() && off&lapic.RegMask == lapic.RegTCur {
		v = uint64(c.timerCurrent())
	}
	return v >> (8 * (off & 3)) & sizeMask[n]
}

func (c *cpu) apicWrite(gpa uint64, n int, v uint64) {
	if n != 4 {
		return // only aligned 32-bit accesses reach registers
	}
	off := uint32(gpa & 0xfff)
	r := c.apic.Write(off, uint32(v))
	if r.Done && r.Level {
		c.vm.ioapic.eoi(c.vm, r.Vector)
	}
	if c.detTime() && (off == lapic.RegTInit || off == lapic.RegTDiv || off == lapic.RegLVT0+0x10*lapic.LVTTimer) {
		c.timerWritten(off)
	}
	c.updateSlow()
}

// raiseLVT delivers an LVT entry (the PMU's overflow uses lapic.LVTPerf)
// unless it is masked or the APIC is globally disabled.
func (c *cpu) raiseLVT(i int) {
	if c.sr.APICBase&apicEnable == 0 {
		return
	}
	if c.apic.FireLVT(i) {
		c.updateSlow()
	}
}

// interruptible reports whether an interrupt would be delivered at the next
// instruction boundary: RFLAGS.IF, an enabled APIC with a vector above the
// processor priority, and host debugging not blocking interrupts.
func (c *cpu) interruptible() bool {
	return c.dbg.Flags&(hv.DebugEnable|hv.DebugBlockIRQ) != hv.DebugEnable|hv.DebugBlockIRQ && c.wakeable()
}

// wakeable reports whether an interrupt ends HLT. DebugBlockIRQ does not
// count: KVM wakes the vCPU (it checks only IF and the APIC) and then does
// not inject, so the guest goes on after its HLT without the interrupt.
func (c *cpu) wakeable() bool {
	return c.rflags&hv.FlagIF != 0 && c.sr.APICBase&apicEnable != 0 && c.apic.SoftwareEnabled() && c.apic.Pending()
}

// kick makes a vCPU look at its APIC at the next instruction boundary and
// wakes it from HLT. Any goroutine may call it.
func (c *cpu) kick() {
	c.poke(attnIRQ)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// irqChip reports the VM's interrupt controllers, or why there are none.
func (vm *VM) irqChip(cp hv.Cap) error {
	if !vm.cfg.IRQChip {
		return hv.Unsupported(Name, cp, "the VM was created without VMConfig.IRQChip (no interrupt controllers, as KVM without KVM_CREATE_IRQCHIP)")
	}
	if vm.isClosed() {
		return fmt.Errorf("interrupt: %w", hv.ErrVMClosed)
	}
	return nil
}

// deliver latches vector at the local APIC of the vCPU whose APIC ID is
// dest (the vCPU id: the emu keeps the initial APIC IDs for routing) and
// kicks it.
func (vm *VM) deliver(dest int, vector uint8, level bool) error {
	if err := hv.CheckVector(vector); err != nil {
		return err
	}
	for _, v := range *vm.running.Load() {
		if v.id == dest {
			var ok bool
			if level {
				ok = v.c.apic.RaiseLevel(vector)
			} else {
				ok = v.c.apic.Raise(vector)
			}
			if !ok {
				return fmt.Errorf("vCPU %d's local APIC did not accept vector %d (software-disabled: SVR bit 8 clear)", dest, vector)
			}
			v.c.kick()
			return nil
		}
	}
	return fmt.Errorf("no vCPU with APIC ID %d", dest)
}

// Interrupt implements hv.Interrupts.
func (vm *VM) Interrupt(vcpu int, vector uint8) error {
	if err := vm.irqChip(hv.CapIRQChip); err != nil {
		return err
	}
	if err := vm.deliver(vcpu, vector, false); err != nil {
		return fmt.Errorf("interrupt vcpu %d vector %d: %w", vcpu, vector, err)
	}
	return nil
}

// SignalMSI implements hv.Interrupts.
func (vm *VM) SignalMSI(addr uint64, data uint32) error {
	if err := vm.irqChip(hv.CapMSI); err != nil {
		return err
	}
	m, err := hv.DecodeMSI(addr, data)
	if err != nil {
		return fmt.Errorf("signal MSI: %w", err)
	}
	if err := vm.deliver(int(m.Dest), m.Vector, false); err != nil {
		return fmt.Errorf("signal MSI addr %#x data %#x: %w", addr, data, err)
	}
	return nil
}

// SetIRQLine implements hv.Interrupts.
func (vm *VM) SetIRQLine(gsi uint32, high bool) error {
	if err := vm.irqChip(hv.CapIRQLine); err != nil {
		return err
	}
	if gsi >= hv.IOAPICPins {
		return fmt.Errorf("set IRQ line %d: the I/O APIC has %d pins", gsi, hv.IOAPICPins)
	}
	vm.ioapic.setLine(vm, gsi, high)
	return nil
}
