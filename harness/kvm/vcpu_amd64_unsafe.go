//go:build amd64

package kvm

import (
	"fmt"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func regsPtr(r *hv.Regs) unsafe.Pointer          { return unsafe.Pointer(r) }
func sregsPtr(s *hv.Sregs) unsafe.Pointer        { return unsafe.Pointer(s) }
func debugRegsPtr(d *debugRegs) unsafe.Pointer   { return unsafe.Pointer(d) }
func guestDebugPtr(d *guestDebug) unsafe.Pointer { return unsafe.Pointer(d) }

func (v *VCPU) setU64(off int, x uint64) { *(*uint64)(unsafe.Pointer(&v.run[off])) = x }

// decodeDebug reads struct kvm_debug_exit_arch (x86) into v.debugExit.
func (v *VCPU) decodeDebug() {
	const u = runUnion
	v.debugExit = hv.DebugExit{Exception: v.u32(u), PC: v.u64(u + 8), DR6: v.u64(u + 16), DR7: v.u64(u + 24)}
}

// msrs mirrors struct kvm_msrs with room for one entry.
type msrs struct {
	nmsrs uint32
	_     uint32
	entry msrEntry
}

func (v *VCPU) msr(req uintptr, index uint32, value uint64) (uint64, error) {
	m := msrs{nmsrs: 1, entry: msrEntry{index: index, data: value}}
	n, err := ioctlPtr(v.fd, req, unsafe.Pointer(&m))
	name := "KVM_GET_MSRS"
	if req == kvmSetMSRs {
		name = "KVM_SET_MSRS"
	}
	if err != nil {
		return 0, fmt.Errorf("%s %#x vcpu %d: %w", name, index, v.id, err)
	}
	if n != 1 {
		return 0, fmt.Errorf("%s %#x vcpu %d: MSR not accepted", name, index, v.id)
	}
	return m.entry.data, nil
}
