package guest

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Bytes is the host view of guest-physical [gpa, gpa+n) in whichever slot
// holds it. The range must lie in one memslot; an address the guest chose
// (a pointer read from guest memory) gets an error, never a panic.
func (g *Guest) Bytes(gpa uint64, n int) ([]byte, error) {
	b, _, err := g.span("guest memory", gpa, n)
	return b, err
}

// span finds the slot bytes of [gpa, gpa+n) and whether the slot is
// read-only; op names the caller's operation in the error.
func (g *Guest) span(op string, gpa uint64, n int) ([]byte, bool, error) {
	if n < 0 {
		return nil, false, fmt.Errorf("%s at %#x: negative length %d", op, gpa, n)
	}
	size := uint64(n)
	// Slot 0 is the standard guest's own memory: the common case needs no
	// slot list. The overflow check matters for guest-supplied addresses.
	if gpa < g.cfg.MemSize && size <= g.cfg.MemSize-gpa {
		return g.Mem.Bytes()[gpa : gpa+size], false, nil
	}
	for _, s := range g.VM.Memslots() {
		if s.Contains(gpa) && size <= s.Size-(gpa-s.GPA) && s.Memory != nil {
			off := gpa - s.GPA
			return s.Bytes()[off : off+size], s.Flags&hv.MemReadOnly != 0, nil
		}
	}
	return nil, false, fmt.Errorf("%s at guest-physical [%#x, +%d): not inside one memslot", op, gpa, n)
}

// Read64 reads a guest-physical quadword (not atomically: see Load64).
func (g *Guest) Read64(gpa uint64) (uint64, error) { return read64(g.Bytes, gpa) }

// Write64 writes a guest-physical quadword (not atomically: see Store64).
// It writes read-only slots too, as host code initialising them must.
func (g *Guest) Write64(gpa, v uint64) error { return write64(g.Bytes, gpa, v) }

// memView is how guest-physical bytes are reached (Guest.Bytes).
type memView func(gpa uint64, n int) ([]byte, error)

func read64(mem memView, gpa uint64) (uint64, error) {
	b, err := mem(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func write64(mem memView, gpa, v uint64) error {
	b, err := mem(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// Shared-memory atomics. Words that a running vCPU and the host share (a
// stop flag, an iteration, a guest's counter) must be accessed atomically:
// on KVM the other side is a vCPU on another CPU, on the emu a goroutine,
// and for the Go memory model and the race detector both are concurrent
// accesses. The guest side uses ordinary x86 loads, stores and lock
// cmpxchg, which are atomic for naturally aligned words. They are the
// VM's own guest-memory access (hv.GuestMemory): naturally aligned, no
// read-only slot written (a handshake word there is a bug in the spec),
// and a write is logged like a vCPU write where the slot logs.

// Load64 atomically reads the quadword at gpa.
func (g *Guest) Load64(gpa uint64) (uint64, error) { return g.VM.Load64(gpa) }

// Store64 atomically writes the quadword at gpa.
func (g *Guest) Store64(gpa, v uint64) error { return g.VM.Store64(gpa, v) }

// CAS64 atomically replaces the quadword at gpa with new if it holds old,
// and reports whether it did.
func (g *Guest) CAS64(gpa, old, new uint64) (bool, error) { return g.VM.CAS64(gpa, old, new) }

// Load32 atomically reads the doubleword at gpa.
func (g *Guest) Load32(gpa uint64) (uint32, error) { return g.VM.Load32(gpa) }

// Store32 atomically writes the doubleword at gpa.
func (g *Guest) Store32(gpa uint64, v uint32) error { return g.VM.Store32(gpa, v) }

// CAS32 atomically replaces the doubleword at gpa with new if it holds
// old, and reports whether it did.
func (g *Guest) CAS32(gpa uint64, old, new uint32) (bool, error) { return g.VM.CAS32(gpa, old, new) }
