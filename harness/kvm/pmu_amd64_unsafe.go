//go:build amd64

package kvm

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// pmuEventFilter mirrors struct kvm_pmu_event_filter up to its flexible
// events array, which follows it in the ioctl's buffer.
type pmuEventFilter struct {
	action             uint32
	nevents            uint32
	fixedCounterBitmap uint32
	flags              uint32
	pad                [4]uint32
}

var _ hv.PMUFilterer = (*VM)(nil)

// SetPMUEventFilter implements hv.PMUFilterer with
// KVM_SET_PMU_EVENT_FILTER; KVM validates the filter (EINVAL, E2BIG) and
// applies it at each vCPU's next entry.
func (vm *VM) SetPMUEventFilter(f hv.PMUEventFilter) error {
	if vm.h.CheckExtension(capPMUEventFilter) == 0 {
		return hv.Unsupported(Name, hv.CapPMU, "no KVM_CAP_PMU_EVENT_FILTER")
	}
	hdr := int(unsafe.Sizeof(pmuEventFilter{})) / 8
	buf := make([]uint64, hdr+len(f.Events))
	*(*pmuEventFilter)(unsafe.Pointer(&buf[0])) = pmuEventFilter{
		action: uint32(f.Action), nevents: uint32(len(f.Events)),
		fixedCounterBitmap: f.FixedCounterBitmap, flags: f.Flags,
	}
	copy(buf[hdr:], f.Events)
	_, err := ioctlPtr(vm.fd, kvmSetPMUEventFilter, unsafe.Pointer(&buf[0]))
	runtime.KeepAlive(buf)
	if err != nil {
		return fmt.Errorf("KVM_SET_PMU_EVENT_FILTER action %d, %d events, fixed %#x, flags %#x: %w",
			f.Action, len(f.Events), f.FixedCounterBitmap, f.Flags, err)
	}
	return nil
}
