//go:build !amd64 && !arm64

package kvm

import (
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// On an architecture the backend is not built for, Open says so (and
// does not even look for /dev/kvm), so `kvmspec caps` and the suites
// report the reason and run the emu.
func TestOpenUnavailableOnThisArch(t *testing.T) {
	h, err := Open(Options{})
	if h != nil || !errors.Is(err, hv.ErrUnavailable) {
		t.Fatalf("Open = %v, %v; want ErrUnavailable", h, err)
	}
	if got, want := err.Error(), "kvm: unavailable: x86-64 and arm64 only so far"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}
