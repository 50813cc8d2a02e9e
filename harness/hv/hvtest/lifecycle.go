package hvtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// CloseRunningVCPU checks that VM.Close stops a vCPU that is executing
// (a spinning guest) or waiting in HLT with an irqchip: its Run returns
// promptly with an error wrapping ErrVMClosed, Close returns, and the
// guest memory can be unmapped right after (no access after Close).
func CloseRunningVCPU(t *testing.T, h hv.Hypervisor) {
	cases := []struct {
		name  string
		cfg   hv.VMConfig
		need  hv.Cap
		build func(a *asm.Assembler)
	}{
		{"spinning", hv.VMConfig{}, "", func(a *asm.Assembler) {
			a.Mov(asm.RSI, asm.Imm(RawDataGPA))
			l := a.Here()
			a.Inc(asm.Q(asm.RSI, 0)) // touches guest memory all the time
			a.Jmp(l)
		}},
		{"halted with irqchip", hv.VMConfig{IRQChip: true}, hv.CapIRQChip, func(a *asm.Assembler) {
			a.Cli()
			a.Hlt()
			a.Jmp(a.Here())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.need != "" {
				if err := h.Caps().Require(c.need); err != nil {
					t.Skip(err)
				}
			}
			g := NewRawGuest(t, h, c.cfg, c.build)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type result struct {
				e   hv.Exit
				err error
			}
			done := make(chan result, 1)
			go func() {
				e, err := g.VCPU.Run(ctx)
				done <- result{e, err}
			}()
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- g.VM.Close() }()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Run still going 5 s after VM.Close")
			}
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("VM.Close did not return")
			}
			if !errors.Is(r.err, hv.ErrVMClosed) {
				t.Fatalf("Run = %v, %v; want an error wrapping ErrVMClosed", r.e, r.err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Close took %v", d)
			}
			g.Mem.Close() // unmapped: a vCPU still in guest memory would crash here
			if _, err := g.VCPU.Run(ctx); !errors.Is(err, hv.ErrVMClosed) {
				t.Fatalf("Run after Close = %v, want ErrVMClosed", err)
			}
		})
	}
}

// unsupportedProbes exercise one capability each through the contract.
var unsupportedProbes = map[hv.Cap]func(t *testing.T, h hv.Hypervisor) error{
	hv.CapIRQChip: func(t *testing.T, h hv.Hypervisor) error {
		vm, err := h.NewVM(hv.VMConfig{IRQChip: true})
		if err == nil {
			defer vm.Close()
			return vm.Interrupt(0, 0x40)
		}
		return err
	},
	hv.CapMSI:             vmProbe(hv.VMConfig{IRQChip: true}, func(vm hv.VM, _ hv.VCPU) error { return vm.SignalMSI(hv.MSIAddrBase, 0x40) }),
	hv.CapIRQLine:         vmProbe(hv.VMConfig{IRQChip: true}, func(vm hv.VM, _ hv.VCPU) error { return vm.SetIRQLine(1, true) }),
	hv.CapDirtyRingBitmap: newVMProbe(hv.VMConfig{DirtyRingBytes: 1 << 16, DirtyRingWithBitmap: true}),
	hv.CapDirtyRing:       newVMProbe(hv.VMConfig{DirtyRingBytes: 1 << 16}),
	hv.CapGuestDebug:      debugProbe(hv.GuestDebug{Flags: hv.DebugEnable}),
	hv.CapSingleStep:      debugProbe(hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}),
	hv.CapSoftwareBP:      debugProbe(hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseSWBP}),
	hv.CapHWBreakpoint:    debugProbe(hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP, DebugReg: [8]uint64{0x100000, 0, 0, 0, 0, 0, 0, 0x401}}),
	hv.CapWatchpoint:      debugProbe(hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP, DebugReg: [8]uint64{0x200000, 0, 0, 0, 0, 0, 0, 0x401 | 1<<16 | 3<<18}}),
	hv.CapBlockIRQ:        debugProbe(hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugBlockIRQ}),
	hv.CapDebugInject:     debugProbe(hv.GuestDebug{Flags: hv.DebugInjectBP}),
	hv.CapCPUID:           vmProbe(hv.VMConfig{}, func(_ hv.VM, v hv.VCPU) error { _, err := v.CPUID(); return err }),
	hv.CapGuestMemoryTrack: func(t *testing.T, h hv.Hypervisor) error {
		vm, mem := memVM(t, h, hv.VMConfig{}, hv.MemLogDirty)
		_ = mem
		return vm.WriteGPA(0, []byte{1})
	},
}

func newVMProbe(cfg hv.VMConfig) func(*testing.T, hv.Hypervisor) error {
	return func(t *testing.T, h hv.Hypervisor) error {
		vm, err := h.NewVM(cfg)
		if err == nil {
			vm.Close()
		}
		return err
	}
}

func vmProbe(cfg hv.VMConfig, f func(hv.VM, hv.VCPU) error) func(*testing.T, hv.Hypervisor) error {
	return func(t *testing.T, h hv.Hypervisor) error {
		vm, err := h.NewVM(cfg)
		if err != nil {
			return err
		}
		defer vm.Close()
		v, err := vm.NewVCPU(0)
		if err != nil {
			return err
		}
		return f(vm, v)
	}
}

func debugProbe(d hv.GuestDebug) func(*testing.T, hv.Hypervisor) error {
	return vmProbe(hv.VMConfig{}, func(_ hv.VM, v hv.VCPU) error { return v.SetGuestDebug(&d) })
}

// UnsupportedCaps checks that every capability the backend's Caps says it
// lacks, and that the contract can exercise, fails with an error wrapping
// ErrUnsupported that names the capability, instead of misbehaving.
func UnsupportedCaps(t *testing.T, h hv.Hypervisor) {
	caps := h.Caps()
	for _, c := range caps.Names() {
		if caps.Has(c) {
			continue
		}
		probe, ok := unsupportedProbes[c]
		if !ok {
			t.Logf("%s: unsupported, no contract call to probe it", c)
			continue
		}
		t.Run(string(c), func(t *testing.T) {
			err := probe(t, h)
			if !errors.Is(err, hv.ErrUnsupported) {
				t.Fatalf("probe = %v, want an error wrapping ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), string(c)) {
				t.Fatalf("error %q does not name %s", err, c)
			}
		})
	}
}
