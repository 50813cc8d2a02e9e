package hv

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mincore wraps mincore(2), which x/sys/unix does not offer.
func mincore(b []byte, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return e
	}
	return nil
}

// The atomics below act on guest memory that a vCPU (a thread in KVM, a
// goroutine in the emu) may touch at the same time; callers check bounds
// and natural alignment first, so the pointer is always inside b.

func word32(b []byte, off uint64) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func word64(b []byte, off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }
