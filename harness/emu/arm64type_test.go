package emu

import (
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The emu's guests are x86-64: an arm64 machine type is refused with the
// capability that names it, the default (0) is not a request.
func TestARM64TypeRefused(t *testing.T) {
	h := New(Options{})
	for _, typ := range []hv.ARM64VMType{hv.ARM64IPASize(40), hv.ARM64IPASize(48), 1 << 8} {
		vm, err := h.NewVM(hv.VMConfig{ARM64Type: typ})
		var ue *hv.UnsupportedError
		if !errors.As(err, &ue) || ue.Cap != hv.CapARM64IPASize {
			if vm != nil {
				vm.Close()
			}
			t.Errorf("type %v: %v, want an UnsupportedError for %s", typ, err, hv.CapARM64IPASize)
		}
	}
	vm, err := h.NewVM(hv.VMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	vm.Close()
}
