package kvm

import (
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// An arm64 machine type is refused on x86 before KVM_CREATE_VM (whose
// type argument means something else here), naming the capability.
func TestARM64VMTypeRefusedOnX86(t *testing.T) {
	h := &Hypervisor{}
	cases := []struct {
		typ hv.ARM64VMType
		ok  bool
	}{{0, true}, {hv.ARM64IPASize(40), false}, {hv.ARM64IPASize(32), false}, {1 << 8, false}}
	for _, c := range cases {
		got, err := h.archVMType(hv.VMConfig{ARM64Type: c.typ})
		var ue *hv.UnsupportedError
		switch {
		case c.ok && (err != nil || got != 0):
			t.Errorf("type %v: %#x, %v; want 0, nil", c.typ, got, err)
		case !c.ok && (!errors.As(err, &ue) || ue.Cap != hv.CapARM64IPASize):
			t.Errorf("type %v: %v, want an UnsupportedError for %s", c.typ, err, hv.CapARM64IPASize)
		}
	}
}
