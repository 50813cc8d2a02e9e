package guest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Allocator hands out guest-physical ranges of one memory area: aligned
// allocations, ranges reserved at fixed addresses (the runtime's areas, a
// flat binary), no freeing (a guest lives for one spec). It only does the
// bookkeeping: the memory and its mapping are the caller's.
type Allocator struct {
	mu    sync.Mutex
	base  uint64
	limit uint64   // one past the last byte
	used  []Region // sorted by Base, not overlapping
}

// Region is an allocated or reserved guest-physical range.
type Region struct {
	Base, Size uint64
	Owner      string // what it holds, for error messages and listings
}

// End is one past the region's last byte.
func (r Region) End() uint64 { return r.Base + r.Size }

func (r Region) String() string { return fmt.Sprintf("%s [%#x, %#x)", r.Owner, r.Base, r.End()) }

// NewAllocator manages [base, base+size).
func NewAllocator(base, size uint64) *Allocator {
	return &Allocator{base: base, limit: base + size}
}

// Reserve claims [gpa, gpa+size) for owner; it fails when the range leaves
// the area or overlaps anything allocated or reserved before.
func (a *Allocator) Reserve(gpa, size uint64, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if size == 0 || gpa < a.base || gpa > a.limit || size > a.limit-gpa {
		return fmt.Errorf("reserve %s [%#x, +%#x): outside guest memory [%#x, %#x)", owner, gpa, size, a.base, a.limit)
	}
	i, _ := slices.BinarySearchFunc(a.used, gpa, func(r Region, gpa uint64) int { return cmp.Compare(r.Base, gpa) })
	if i > 0 && a.used[i-1].End() > gpa {
		return fmt.Errorf("reserve %s [%#x, +%#x): overlaps %s", owner, gpa, size, a.used[i-1])
	}
	if i < len(a.used) && a.used[i].Base < gpa+size {
		return fmt.Errorf("reserve %s [%#x, +%#x): overlaps %s", owner, gpa, size, a.used[i])
	}
	a.used = slices.Insert(a.used, i, Region{Base: gpa, Size: size, Owner: owner})
	return nil
}

// Alloc finds the lowest free range of size bytes aligned to align (a
// power of two; 0 means 8) and claims it for owner.
func (a *Allocator) Alloc(size, align uint64, owner string) (uint64, error) {
	if align == 0 {
		align = 8
	}
	if align&(align-1) != 0 {
		return 0, fmt.Errorf("alloc %s %#x bytes: alignment %#x is not a power of two", owner, size, align)
	}
	if size == 0 {
		return 0, fmt.Errorf("alloc %s: zero bytes", owner)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	start := a.base
	for i := 0; i <= len(a.used); i++ {
		end := a.limit
		if i < len(a.used) {
			end = a.used[i].Base
		}
		addr := (start + align - 1) &^ (align - 1)
		if addr >= start && addr <= end && size <= end-addr {
			a.used = slices.Insert(a.used, i, Region{Base: addr, Size: size, Owner: owner})
			return addr, nil
		}
		if i < len(a.used) {
			start = a.used[i].End()
		}
	}
	return 0, fmt.Errorf("alloc %s %#x bytes aligned to %#x: guest memory exhausted (%#x bytes free, largest free range %#x)",
		owner, size, align, a.free(), a.largest())
}

// Free is how many bytes are neither allocated nor reserved.
func (a *Allocator) Free() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free()
}

func (a *Allocator) free() uint64 {
	n := a.limit - a.base
	for _, r := range a.used {
		n -= r.Size
	}
	return n
}

func (a *Allocator) largest() uint64 {
	best, start := uint64(0), a.base
	for _, r := range a.used {
		best = max(best, r.Base-start)
		start = r.End()
	}
	return max(best, a.limit-start)
}

// Regions lists what is allocated and reserved, lowest address first.
func (a *Allocator) Regions() []Region {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.used)
}
