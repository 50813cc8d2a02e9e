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

// word checks an atomic access of size bytes at gpa: naturally aligned
// (the CPU's atomicity guarantee and Go's both need it), inside one slot,
// and for a write not in a read-only slot, which a guest cannot write
// either: a handshake word there is a bug in the spec.
func (g *Guest) word(op string, gpa uint64, size int, write bool) ([]byte, error) {
	if gpa%uint64(size) != 0 {
		return nil, fmt.Errorf("%s at guest-physical %#x: not aligned to %d bytes", op, gpa, size)
	}
	b, ro, err := g.span(op, gpa, size)
	if err != nil {
		return nil, err
	}
	if write && ro {
		return nil, fmt.Errorf("%s at guest-physical %#x: the slot is read-only", op, gpa)
	}
	return b, nil
}
