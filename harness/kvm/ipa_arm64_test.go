package kvm

import (
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// KVM_CAP_ARM_VM_IPA_SIZE's answer becomes CapARM64IPASize with the
// largest size as its value; 0 (kernels before 4.20) means only the
// default exists.
func TestIPACap(t *testing.T) {
	cases := []struct {
		ext    int
		ok     bool
		value  uint64
		reason string
	}{
		{0, false, 0, "KVM_CAP_ARM_VM_IPA_SIZE=0: only the default 40-bit IPA space"},
		{40, true, 40, "KVM_CAP_ARM_VM_IPA_SIZE=40"},
		{48, true, 48, "KVM_CAP_ARM_VM_IPA_SIZE=48"},
		{52, true, 52, "KVM_CAP_ARM_VM_IPA_SIZE=52"},
	}
	for _, c := range cases {
		cs := hv.Caps{Backend: Name}
		ipaCap(&cs, c.ext)
		got := cs.Features[hv.CapARM64IPASize]
		if got.OK != c.ok || got.Value != c.value || got.Reason != c.reason {
			t.Errorf("ext %d: %+v, want ok %t value %d reason %q", c.ext, got, c.ok, c.value, c.reason)
		}
		if err := cs.Require(hv.CapARM64IPASize); (err == nil) != c.ok || err != nil && !errors.Is(err, hv.ErrUnsupported) {
			t.Errorf("ext %d: Require = %v", c.ext, err)
		}
	}
}

// The machine type goes to KVM_CREATE_VM as given: reserved bits too,
// so KVM refuses them rather than the backend.
func TestARM64VMTypeArg(t *testing.T) {
	h := &Hypervisor{}
	for _, typ := range []hv.ARM64VMType{0, hv.ARM64IPASize(32), hv.ARM64IPASize(52), hv.ARM64IPASize(31), 1 << 8, 1 << 31} {
		got, err := h.archVMType(hv.VMConfig{ARM64Type: typ})
		if err != nil || got != uintptr(typ) {
			t.Errorf("type %v: %#x, %v; want %#x", typ, got, err, uint64(typ))
		}
	}
}
