package dirtylog

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Guest memory words that a running vCPU and the host share (the stop
// flag, the iteration, the guest's write counter) are accessed atomically:
// on KVM the other side is a vCPU on another CPU, on a software backend a
// goroutine, and for the Go memory model and the race detector both are
// concurrent accesses.

func word(b []byte, off uint64) *uint64 {
	if off%8 != 0 || off > uint64(len(b)) || uint64(len(b))-off < 8 {
		panic(fmt.Sprintf("dirtylog: guest word at %#x of a %#x-byte mapping", off, len(b)))
	}
	return (*uint64)(unsafe.Pointer(&b[off]))
}

// load64 reads the quadword at off of b.
func load64(b []byte, off uint64) uint64 { return atomic.LoadUint64(word(b, off)) }

// store64 writes the quadword at off of b.
func store64(b []byte, off uint64, v uint64) { atomic.StoreUint64(word(b, off), v) }
