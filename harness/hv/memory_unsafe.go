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
