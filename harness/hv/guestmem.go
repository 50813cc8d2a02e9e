package hv

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
)

// GuestMemory is guest-physical memory as host code and device models see
// it: reads and writes by guest-physical address, across slot boundaries,
// and naturally aligned 32/64-bit atomics for handshakes with running
// vCPUs. A write marks its pages dirty exactly as a vCPU write would, so
// the next dirty harvest (bitmap, or the backup bitmap of a dirty-ring VM)
// shows them: KVM never sees userspace writes, so backends track them.
// An unbacked target, or a write to a read-only slot, is an error wrapping
// ErrUnbacked or ErrReadOnly; nothing is transferred then.
type GuestMemory interface {
	ReadGPA(gpa uint64, b []byte) error
	WriteGPA(gpa uint64, b []byte) error
	Load32(gpa uint64) (uint32, error)
	Load64(gpa uint64) (uint64, error)
	Store32(gpa uint64, v uint32) error
	Store64(gpa uint64, v uint64) error
	// CAS32 and CAS64 store new if the value is old, and report whether
	// they did.
	CAS32(gpa uint64, old, new uint32) (bool, error)
	CAS64(gpa uint64, old, new uint64) (bool, error)
}

// Errors of guest memory access.
var (
	ErrUnbacked   = errors.New("guest-physical address not backed by a memslot")
	ErrReadOnly   = errors.New("guest-physical address in a read-only memslot")
	ErrMisaligned = errors.New("atomic access not naturally aligned")
	// ErrDirtyUntracked: a host write to a dirty-logged slot of a dirty-ring
	// VM without the backup bitmap (VMConfig.DirtyRingWithBitmap) would be
	// lost to the harvest, so it is refused.
	ErrDirtyUntracked = errors.New("host write to a dirty-logged slot would not be tracked (dirty ring without backup bitmap)")
)

// GuestAccess implements GuestMemory over a backend's memslots; both
// backends embed one, so host access behaves the same on each.
type GuestAccess struct {
	// Slots returns the current memslots sorted by GPA. It is called once
	// per access; the slice must not change afterwards (a snapshot).
	Slots func() []Memslot
	// Written is called after host code wrote pages [first, last] of a
	// slot whose flags include MemLogDirty, or with every slot for code
	// invalidation; nil when nothing needs to know. It returns an error
	// only to refuse the write before it happens (see Writable).
	Written func(m Memslot, first, last uint64)
	// Writable, when set, is asked before a write to a slot lands; an
	// error refuses the whole access (ErrDirtyUntracked).
	Writable func(m Memslot) error
}

// piece is one slot's part of an access.
type piece struct {
	m      Memslot
	off, n uint64 // offset inside the slot, length
	at     uint64 // offset inside the caller's buffer
}

// split resolves [gpa, gpa+n) into slot pieces, or fails without side
// effects when any byte is unbacked or (for writes) read-only.
func (a *GuestAccess) split(gpa, n uint64, write bool, op string) ([]piece, error) {
	if n == 0 {
		return nil, nil
	}
	if gpa+n < gpa {
		return nil, fmt.Errorf("%s [%#x, +%#x): range wraps: %w", op, gpa, n, ErrUnbacked)
	}
	slots := a.Slots()
	var out []piece
	for at := uint64(0); at < n; {
		g := gpa + at
		i := sort.Search(len(slots), func(i int) bool { return slots[i].GPA+slots[i].Size > g })
		if i == len(slots) || slots[i].GPA > g || slots[i].Memory == nil {
			return nil, fmt.Errorf("%s [%#x, +%#x): %#x: %w", op, gpa, n, g, ErrUnbacked)
		}
		m := slots[i]
		if write && m.Flags&MemReadOnly != 0 {
			return nil, fmt.Errorf("%s [%#x, +%#x): %#x is in read-only slot %d: %w", op, gpa, n, g, m.Slot, ErrReadOnly)
		}
		if write && a.Writable != nil {
			if err := a.Writable(m); err != nil {
				return nil, fmt.Errorf("%s [%#x, +%#x): slot %d: %w", op, gpa, n, m.Slot, err)
			}
		}
		off := g - m.GPA
		k := min(m.Size-off, n-at)
		out = append(out, piece{m: m, off: off, n: k, at: at})
		at += k
	}
	return out, nil
}

func (a *GuestAccess) written(p piece) {
	if a.Written != nil {
		a.Written(p.m, p.off/PageSize, (p.off+p.n-1)/PageSize)
	}
}

// ReadGPA implements GuestMemory.
func (a *GuestAccess) ReadGPA(gpa uint64, b []byte) error {
	ps, err := a.split(gpa, uint64(len(b)), false, "read guest memory")
	if err != nil {
		return err
	}
	for _, p := range ps {
		copy(b[p.at:p.at+p.n], p.m.Bytes()[p.off:p.off+p.n])
	}
	return nil
}

// WriteGPA implements GuestMemory.
func (a *GuestAccess) WriteGPA(gpa uint64, b []byte) error {
	ps, err := a.split(gpa, uint64(len(b)), true, "write guest memory")
	if err != nil {
		return err
	}
	for _, p := range ps {
		copy(p.m.Bytes()[p.off:p.off+p.n], b[p.at:p.at+p.n])
		a.written(p)
	}
	return nil
}

// word resolves one naturally aligned word of size n.
func (a *GuestAccess) word(gpa, n uint64, write bool, op string) (piece, error) {
	if gpa%n != 0 {
		return piece{}, fmt.Errorf("%s at %#x: %w", op, gpa, ErrMisaligned)
	}
	ps, err := a.split(gpa, n, write, op)
	if err != nil {
		return piece{}, err
	}
	return ps[0], nil // aligned words never straddle a page, so never a slot
}

// Load32 implements GuestMemory.
func (a *GuestAccess) Load32(gpa uint64) (uint32, error) {
	p, err := a.word(gpa, 4, false, "load32")
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32(word32(p.m.Bytes(), p.off)), nil
}

// Load64 implements GuestMemory.
func (a *GuestAccess) Load64(gpa uint64) (uint64, error) {
	p, err := a.word(gpa, 8, false, "load64")
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint64(word64(p.m.Bytes(), p.off)), nil
}

// Store32 implements GuestMemory.
func (a *GuestAccess) Store32(gpa uint64, v uint32) error {
	p, err := a.word(gpa, 4, true, "store32")
	if err != nil {
		return err
	}
	atomic.StoreUint32(word32(p.m.Bytes(), p.off), v)
	a.written(p)
	return nil
}

// Store64 implements GuestMemory.
func (a *GuestAccess) Store64(gpa uint64, v uint64) error {
	p, err := a.word(gpa, 8, true, "store64")
	if err != nil {
		return err
	}
	atomic.StoreUint64(word64(p.m.Bytes(), p.off), v)
	a.written(p)
	return nil
}

// CAS32 implements GuestMemory. A failed compare marks the page dirty
// too: x86's locked cmpxchg writes the old value back when it fails, and
// the guest's own CAS dirties the page either way.
func (a *GuestAccess) CAS32(gpa uint64, old, new uint32) (bool, error) {
	p, err := a.word(gpa, 4, true, "cas32")
	if err != nil {
		return false, err
	}
	ok := atomic.CompareAndSwapUint32(word32(p.m.Bytes(), p.off), old, new)
	a.written(p)
	return ok, nil
}

// CAS64 implements GuestMemory, marking the page dirty as CAS32 does.
func (a *GuestAccess) CAS64(gpa uint64, old, new uint64) (bool, error) {
	p, err := a.word(gpa, 8, true, "cas64")
	if err != nil {
		return false, err
	}
	ok := atomic.CompareAndSwapUint64(word64(p.m.Bytes(), p.off), old, new)
	a.written(p)
	return ok, nil
}
