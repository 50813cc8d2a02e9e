//go:build amd64

package kvm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// supportedCPUID reads KVM_GET_SUPPORTED_CPUID.
func (h *Hypervisor) supportedCPUID() ([]cpuidEntry2, error) {
	return readCPUID(h.fd, kvmGetSupportedCPUID, "KVM_GET_SUPPORTED_CPUID")
}

// getCPUID reads a vCPU's table (KVM_GET_CPUID2).
func getCPUID(fd int) ([]cpuidEntry2, error) { return readCPUID(fd, kvmGetCPUID2, "KVM_GET_CPUID2") }

// readCPUID issues an ioctl that fills a struct kvm_cpuid2, growing the
// buffer while KVM answers E2BIG.
func readCPUID(fd int, req uintptr, name string) ([]cpuidEntry2, error) {
	for n := 64; n <= 4096; n *= 2 {
		buf := make([]byte, 8+n*int(unsafe.Sizeof(cpuidEntry2{})))
		*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(n)
		_, err := ioctlPtr(fd, req, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		nent := min(*(*uint32)(unsafe.Pointer(&buf[0])), uint32(n))
		out := make([]cpuidEntry2, nent)
		copy(out, unsafe.Slice((*cpuidEntry2)(unsafe.Pointer(&buf[8])), nent))
		return out, nil
	}
	return nil, fmt.Errorf("%s: more than 4096 entries", name)
}

// setCPUID installs entries on a vCPU (KVM_SET_CPUID2).
func setCPUID(fd int, entries []cpuidEntry2) error {
	sz := int(unsafe.Sizeof(cpuidEntry2{}))
	buf := make([]byte, 8+len(entries)*sz)
	*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(len(entries))
	if len(entries) > 0 {
		copy(unsafe.Slice((*cpuidEntry2)(unsafe.Pointer(&buf[8])), len(entries)), entries)
	}
	if _, err := ioctlPtr(fd, kvmSetCPUID2, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 (%d entries): %w", len(entries), err)
	}
	return nil
}

// CPUID returns the supported CPUID leaf (function, index) as KVM reports it.
func (h *Hypervisor) CPUID(function, index uint32) (eax, ebx, ecx, edx uint32, ok bool) {
	for _, e := range h.arch.cpuid {
		if e.function == function && (e.index == index || e.flags&cpuidFlagIndexed == 0) {
			return e.eax, e.ebx, e.ecx, e.edx, true
		}
	}
	return 0, 0, 0, 0, false
}
