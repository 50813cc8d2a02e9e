package kvm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
	"golang.org/x/sys/unix"
)

func enabledAPIC(id uint32) *lapic.APIC {
	a := lapic.New(id)
	a.Write(lapic.RegSVR, lapic.SVREnable|0xff)
	return a
}

func TestInjectPlan(t *testing.T) {
	type step struct {
		name          string
		setup         func(a *lapic.APIC)
		ready, ifFlag bool
		vec           uint8
		inject        bool
		window        bool
	}
	steps := []step{
		{"nothing pending", func(*lapic.APIC) {}, true, true, 0, false, false},
		{"two raised, vCPU can take one", func(a *lapic.APIC) { a.Raise(0x40); a.Raise(0x51) }, true, true, 0x51, true, false},
		{"lower class waits for EOI", func(*lapic.APIC) {}, true, true, 0, false, false},
		{"after EOI, vCPU not ready: window", func(a *lapic.APIC) { a.EOI() }, false, true, 0, false, true},
		{"IF clear: window", func(*lapic.APIC) {}, true, false, 0, false, true},
		{"window open: inject", func(*lapic.APIC) {}, true, true, 0x40, true, false},
		{"TPR above the vector: nothing, no window", func(a *lapic.APIC) { a.EOI(); a.SetTPR(0x60); a.Raise(0x55) }, true, true, 0, false, false},
		{"TPR lowered", func(a *lapic.APIC) { a.SetTPR(0) }, true, true, 0x55, true, false},
		{"software-disabled APIC: no window", func(a *lapic.APIC) { a.EOI(); a.Write(lapic.RegSVR, 0xff); a.Raise(0x70) }, true, true, 0, false, false},
	}
	a := enabledAPIC(0)
	for _, s := range steps {
		s.setup(a)
		vec, inject, window := injectPlan(a, s.ready, s.ifFlag)
		if vec != s.vec || inject != s.inject || window != s.window {
			t.Fatalf("%s: vec %#x inject %v window %v, want %#x %v %v", s.name, vec, inject, window, s.vec, s.inject, s.window)
		}
	}
}

func TestAPICAccess(t *testing.T) {
	a := lapic.New(3)
	rd := func(off uint32, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xcc
		}
		apicAccess(a, off, b, false)
		return b
	}
	if b := rd(lapic.RegID, 4); b[3] != 3 {
		t.Fatalf("ID register %x, want APIC ID 3 in bits 31:24", b)
	}
	apicAccess(a, lapic.RegTPR, []byte{0x20, 0, 0, 0}, true)
	if a.TPR() != 0x20 {
		t.Fatalf("TPR %#x after a write of 0x20", a.TPR())
	}
	if b := rd(lapic.RegTPR, 2); b[0] != 0 || b[1] != 0 {
		t.Fatalf("2-byte read %x, want zeroes", b)
	}
	if b := rd(lapic.RegTPR+4, 4); b[0] != 0 {
		t.Fatalf("unaligned read %x, want zeroes", b)
	}
	apicAccess(a, lapic.RegTPR, []byte{0x40}, true) // ignored
	if a.TPR() != 0x20 {
		t.Fatal("a 1-byte write reached TPR")
	}
}

func TestInterruptsWithoutIRQChip(t *testing.T) {
	vm := newVMState(&Hypervisor{}, -1, hv.VMConfig{})
	cases := []struct {
		name string
		err  error
		cap  hv.Cap
	}{
		{"interrupt", vm.Interrupt(0, 0x40), hv.CapIRQChip},
		{"msi", vm.SignalMSI(hv.MSIAddrBase, 0x40), hv.CapMSI},
		{"line", vm.SetIRQLine(1, true), hv.CapIRQLine},
	}
	for _, c := range cases {
		if !errors.Is(c.err, hv.ErrUnsupported) || !strings.Contains(c.err.Error(), string(c.cap)) {
			t.Errorf("%s: %v, want ErrUnsupported naming %s", c.name, c.err, c.cap)
		}
	}
}

func TestUserspaceInterruptLatchesAndWakes(t *testing.T) {
	h := &Hypervisor{fd: -1}
	var caps hv.Caps
	h.irqCaps(&caps) // no KVM answers: the userspace path
	if h.arch.irq != irqUser || !caps.Has(hv.CapIRQChip) || caps.Has(hv.CapIRQLine) {
		t.Fatalf("irq path %v, caps %+v", h.arch.irq, caps.Features)
	}
	if r := caps.Features[hv.CapIRQChip].Reason; !strings.Contains(r, "KVM_CAP_IRQCHIP not offered") {
		t.Fatalf("irqchip reason %q does not say why", r)
	}
	h.caps = caps
	vm := newVMState(h, -1, hv.VMConfig{IRQChip: true})
	vm.arch.irq = irqUser
	v := &VCPU{vm: vm, id: 0}
	v.archVCPUCreate(nil)
	vm.vcpus = []*VCPU{v}

	if err := vm.Interrupt(0, 0x41); err == nil {
		t.Fatal("a software-disabled APIC accepted an interrupt")
	}
	v.arch.apic.Write(lapic.RegSVR, lapic.SVREnable|0xff)
	if err := vm.Interrupt(0, 0x41); err != nil {
		t.Fatal(err)
	}
	if err := vm.SignalMSI(hv.MSIAddrBase, 0x42); err != nil {
		t.Fatal(err)
	}
	select {
	case <-v.arch.wakeCh:
	default:
		t.Fatal("a halted vCPU was not woken")
	}
	if !v.arch.apic.Requested() {
		t.Fatal("vector not latched in IRR")
	}
	a := v.arch.apic
	a.Write(lapic.RegSVR, lapic.SVREnable|0xff)
	if vec, ok := a.Accept(true); !ok || vec != 0x42 {
		t.Fatalf("Accept = %#x %v, want 0x42", vec, ok)
	}
	bad := []struct {
		name string
		err  error
	}{
		{"vector below 16", vm.Interrupt(0, 3)},
		{"no such vcpu", vm.Interrupt(7, 0x40)},
		{"vcpu beyond xAPIC", vm.Interrupt(300, 0x40)},
		{"msi outside window", vm.SignalMSI(0x1000, 0x40)},
		{"msi delivery mode", vm.SignalMSI(hv.MSIAddrBase, 0x40|1<<8)},
		{"msi to absent apic", vm.SignalMSI(hv.MSIAddrBase|5<<hv.MSIDestShift, 0x40)},
	}
	for _, b := range bad {
		if b.err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
	if err := vm.SetIRQLine(1, true); !errors.Is(err, hv.ErrUnsupported) || !strings.Contains(err.Error(), "irq-line") {
		t.Fatalf("SetIRQLine on the userspace path: %v", err)
	}
}

func TestUserspaceAPICHidesX2APIC(t *testing.T) {
	vm := newVMState(&Hypervisor{}, -1, hv.VMConfig{IRQChip: true})
	vm.arch.irq = irqUser
	v := &VCPU{vm: vm, id: 2}
	in := []cpuidEntry2{{function: hv.CPUIDLeafFeatures, ecx: hv.CPUID1ECXX2APIC | 1, edx: hv.CPUID1EDXAPIC}}
	out := v.archVCPUCreate(in)
	if out[0].ecx != 1 || out[0].edx != hv.CPUID1EDXAPIC {
		t.Fatalf("leaf 1 ecx %#x edx %#x: want x2APIC hidden, APIC kept", out[0].ecx, out[0].edx)
	}
	if in[0].ecx&hv.CPUID1ECXX2APIC == 0 {
		t.Fatal("the host's supported table was edited in place")
	}
	if v.arch.apic == nil || v.arch.apic.ID() != 2 {
		t.Fatal("no APIC model with the vCPU's id")
	}
}

// userspaceVCPU is a vCPU of the userspace APIC path without KVM: a
// kvm_run buffer, its APIC model, and the channels Close uses.
func userspaceVCPU(t *testing.T) (*VM, *VCPU) {
	t.Helper()
	vm := newVMState(&Hypervisor{}, -1, hv.VMConfig{IRQChip: true})
	vm.arch.irq = irqUser
	v := &VCPU{vm: vm, id: 0, fd: -1, run: make([]byte, 4096), closing: make(chan struct{}), done: make(chan struct{}), tid: unix.Gettid()}
	v.archVCPUCreate(nil)
	vm.vcpus = []*VCPU{v}
	v.arch.apic.Write(lapic.RegSVR, lapic.SVREnable|0xff)
	return vm, v
}

// haltWait runs the halt of the userspace path in a goroutine.
func haltWait(v *VCPU, ctx context.Context) chan error {
	done := make(chan error, 1)
	go func() {
		handled, err := v.archExit(ctx, &hv.HaltExit{})
		if !handled && err == nil {
			err = errors.New("halt not handled by the backend")
		}
		done <- err
	}()
	return done
}

func TestUserspaceHaltWaitsForAnInterrupt(t *testing.T) {
	vm, v := userspaceVCPU(t)
	v.run[runIFFlag] = 1
	done := haltWait(v, context.Background())
	select {
	case err := <-done:
		t.Fatalf("halt returned with nothing pending: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := vm.Interrupt(0, 0x40); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("halt not woken by Interrupt")
	}
	if v.run[runImmediateExit] != 1 {
		t.Fatal("Interrupt did not set immediate_exit to kick a running guest")
	}
}

func TestUserspaceHaltEnds(t *testing.T) {
	cases := []struct {
		name string
		end  func(v *VCPU, cancel func())
	}{
		{"IF clear: an interrupt does not wake, Close does", func(v *VCPU, _ func()) {
			v.vm.Interrupt(0, 0x40)
			time.Sleep(20 * time.Millisecond)
			v.startClose()
		}},
		{"context end", func(_ *VCPU, cancel func()) { cancel() }},
		{"watchdog", func(v *VCPU, _ func()) { v.watchFired.Store(true); v.kick() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, v := userspaceVCPU(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := haltWait(v, ctx)
			c.end(v, cancel)
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("halt did not end")
			}
		})
	}
}
