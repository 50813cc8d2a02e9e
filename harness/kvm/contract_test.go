package kvm

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/hv/hvtest"
)

// The shared kit of harness/hv/hvtest: what every backend must do alike.
// Each needs /dev/kvm and skips with the reason without it.

func TestGuestMemory(t *testing.T)             { hvtest.GuestMemory(t, openMemOrSkip(t)) }
func TestDeviceExactlyOnce(t *testing.T)       { hvtest.DeviceExactlyOnce(t, openOrSkip(t)) }
func TestInterruptsDeliveredOnce(t *testing.T) { hvtest.InterruptsDeliveredOnce(t, openOrSkip(t)) }
func TestHaltWakes(t *testing.T)               { hvtest.HaltWakes(t, openOrSkip(t)) }
func TestCloseRunningVCPU(t *testing.T)        { hvtest.CloseRunningVCPU(t, openOrSkip(t)) }
func TestUnsupportedCaps(t *testing.T)         { hvtest.UnsupportedCaps(t, openOrSkip(t)) }

// The userspace interrupt path (harness/lapic + KVM_INTERRUPT) runs where
// KVM also offers its in-kernel irqchip only when asked for: these run
// the whole kit; it has no I/O APIC, so the line steps skip with that reason.
func TestUserspaceAPICHaltWakes(t *testing.T) { hvtest.HaltWakes(t, openUserspaceAPICOrSkip(t)) }
func TestUserspaceAPICInterruptsDeliveredOnce(t *testing.T) {
	hvtest.InterruptsDeliveredOnce(t, openUserspaceAPICOrSkip(t))
}
func TestUserspaceAPICCloseRunningVCPU(t *testing.T) {
	hvtest.CloseRunningVCPU(t, openUserspaceAPICOrSkip(t))
}
func TestUserspaceAPICUnsupportedCaps(t *testing.T) {
	hvtest.UnsupportedCaps(t, openUserspaceAPICOrSkip(t))
}

func openUserspaceAPICOrSkip(tb testing.TB) *Hypervisor {
	tb.Helper()
	h, err := Open(Options{UserspaceAPIC: true})
	if err != nil {
		tb.Skipf("kvm backend unavailable: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	if !h.Caps().Has(hv.CapIRQChip) {
		tb.Skip(h.Caps().Require(hv.CapIRQChip))
	}
	return h
}
