package guest

import (
	"sync/atomic"
	"unsafe"
)

// Shared-memory atomics. Words that a running vCPU and the host share (a
// stop flag, an iteration, a guest's counter) must be accessed atomically:
// on KVM the other side is a vCPU on another CPU, on the emu a goroutine,
// and for the Go memory model and the race detector both are concurrent
// accesses. The guest side uses ordinary x86 loads, stores and lock
// cmpxchg, which are atomic for naturally aligned words.

// Load64 atomically reads the quadword at gpa.
func (g *Guest) Load64(gpa uint64) (uint64, error) {
	b, err := g.word("atomic load64", gpa, 8, false)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[0]))), nil
}

// Store64 atomically writes the quadword at gpa.
func (g *Guest) Store64(gpa, v uint64) error {
	b, err := g.word("atomic store64", gpa, 8, true)
	if err != nil {
		return err
	}
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), v)
	return nil
}

// CAS64 atomically replaces the quadword at gpa with new if it holds old,
// and reports whether it did.
func (g *Guest) CAS64(gpa, old, new uint64) (bool, error) {
	b, err := g.word("atomic cas64", gpa, 8, true)
	if err != nil {
		return false, err
	}
	return atomic.CompareAndSwapUint64((*uint64)(unsafe.Pointer(&b[0])), old, new), nil
}

// Load32 atomically reads the doubleword at gpa.
func (g *Guest) Load32(gpa uint64) (uint32, error) {
	b, err := g.word("atomic load32", gpa, 4, false)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0]))), nil
}

// Store32 atomically writes the doubleword at gpa.
func (g *Guest) Store32(gpa uint64, v uint32) error {
	b, err := g.word("atomic store32", gpa, 4, true)
	if err != nil {
		return err
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v)
	return nil
}

// CAS32 atomically replaces the doubleword at gpa with new if it holds
// old, and reports whether it did.
func (g *Guest) CAS32(gpa uint64, old, new uint32) (bool, error) {
	b, err := g.word("atomic cas32", gpa, 4, true)
	if err != nil {
		return false, err
	}
	return atomic.CompareAndSwapUint32((*uint32)(unsafe.Pointer(&b[0])), old, new), nil
}
