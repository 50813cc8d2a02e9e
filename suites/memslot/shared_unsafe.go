package memslot

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// shared is a window of guest memory that a running vCPU and the host
// both use (sync flags, the value a guest saw, its log). Every access is
// atomic: on KVM the other side runs on another CPU, on the emu in another
// goroutine, and both are concurrent accesses for the Go memory model.
type shared struct {
	b []byte
}

func (s shared) ptr(off uint64) *uint64 {
	if off%8 != 0 || off > uint64(len(s.b)) || uint64(len(s.b))-off < 8 {
		// A layout bug of this package, not guest input: the offsets are ours.
		panic(fmt.Sprintf("memslot: shared word %#x outside a %#x-byte window", off, len(s.b)))
	}
	return (*uint64)(unsafe.Pointer(&s.b[off]))
}

func (s shared) load(off uint64) uint64     { return atomic.LoadUint64(s.ptr(off)) }
func (s shared) store(off uint64, v uint64) { atomic.StoreUint64(s.ptr(off), v) }
