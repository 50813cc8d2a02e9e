package a64guest

import (
	"encoding/binary"
	"fmt"
)

// Memory is guest-physical memory as host code reaches it; an hv.VM (its
// hv.GuestMemory) satisfies it, so page-table writes are logged like any
// host write.
type Memory interface {
	ReadGPA(gpa uint64, b []byte) error
	WriteGPA(gpa uint64, b []byte) error
}

// Reader is the read half of Memory, all the walker and the ucall decoder
// need.
type Reader interface {
	ReadGPA(gpa uint64, b []byte) error
}

func read64(r Reader, gpa uint64) (uint64, error) {
	var b [8]byte
	if err := r.ReadGPA(gpa, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func write64(m Memory, gpa, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return m.WriteGPA(gpa, b[:])
}

// PageTables builds and edits stage-1 translation tables (TTBR0_EL1) in
// guest memory, for any Mode. Tables are whole granules from alloc, which
// must return granule-aligned, zeroed guest-physical pages. Mappings never
// silently replace one another: mapping over a valid entry is an error.
type PageTables struct {
	Mode Mode
	// Root is the guest-physical address of the start-level table
	// (TTBR0_EL1.BADDR).
	Root  uint64
	mem   Memory
	alloc func() (uint64, error)
}

// NewPageTables allocates the root table.
func NewPageTables(m Mode, mem Memory, alloc func() (uint64, error)) (*PageTables, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	pt := &PageTables{Mode: m, mem: mem, alloc: alloc}
	root, err := pt.table()
	if err != nil {
		return nil, err
	}
	pt.Root = root
	return pt, nil
}

// table allocates one table and checks what alloc returned.
func (pt *PageTables) table() (uint64, error) {
	t, err := pt.alloc()
	if err != nil {
		return 0, fmt.Errorf("a64guest: page table: %w", err)
	}
	if t%pt.Mode.Granule.Size() != 0 || t >= pt.Mode.PALimit() {
		return 0, fmt.Errorf("a64guest: page table at %#x: not %v-aligned below the PA limit %#x", t, pt.Mode.Granule, pt.Mode.PALimit())
	}
	return t, nil
}

// Step is one level of a walk: the descriptor's guest-physical address and
// value.
type Step struct {
	Level    int
	EntryGPA uint64
	Desc     uint64
}

// Walk returns the descriptors that translate va, start level first,
// stopping at a block, a page, or the first invalid descriptor. It ignores
// permissions (see Walker for a walk as the CPU does it).
func (pt *PageTables) Walk(va uint64) ([]Step, error) {
	m := pt.Mode
	if va >= m.VASize() {
		return nil, fmt.Errorf("a64guest: walk %#x: outside the %d-bit TTBR0 range", va, m.VABits)
	}
	table := pt.Root
	var steps []Step
	for level := m.StartLevel(); level <= 3; level++ {
		egpa := table + 8*m.index(va, level)
		d, err := read64(pt.mem, egpa)
		if err != nil {
			return steps, fmt.Errorf("a64guest: walk %#x level %d: %w", va, level, err)
		}
		steps = append(steps, Step{Level: level, EntryGPA: egpa, Desc: d})
		if d&DescValid == 0 || level == 3 || d&DescTable == 0 {
			return steps, nil
		}
		table = m.oa(d, level)
	}
	return steps, nil
}

// Leaf returns the block or page descriptor that maps va; ok is false when
// va is not mapped (the last step is then the invalid entry).
func (pt *PageTables) Leaf(va uint64) (Step, bool, error) {
	steps, err := pt.Walk(va)
	if err != nil || len(steps) == 0 {
		return Step{}, false, err
	}
	last := steps[len(steps)-1]
	ok := last.Desc&DescValid != 0 && (last.Level < 3 || last.Desc&DescPage != 0)
	return last, ok, nil
}

// MapAt maps one block (level 1 or 2, where the granule allows one) or
// page (level 3) at va to pa with attrs, creating the tables above it.
func (pt *PageTables) MapAt(level int, va, pa uint64, a Attrs) error {
	m := pt.Mode
	if level != 3 && !m.blockAllowed(level) {
		return fmt.Errorf("a64guest: map %#x: no block descriptors at level %d with %v (block levels %v from start level %d)",
			va, level, m, m.BlockLevels(), m.StartLevel())
	}
	size := m.LevelSize(level)
	switch {
	case va%size != 0 || pa%size != 0:
		return fmt.Errorf("a64guest: map %#x -> %#x: not aligned to the level-%d size %#x", va, pa, level, size)
	case va >= m.VASize() || size > m.VASize()-va:
		return fmt.Errorf("a64guest: map %#x: outside the %d-bit TTBR0 range", va, m.VABits)
	case pa >= m.PALimit() || size > m.PALimit()-pa:
		return fmt.Errorf("a64guest: map %#x -> %#x: beyond the %d-bit physical address space", va, pa, m.PABits)
	}
	table := pt.Root
	for l := m.StartLevel(); l < level; l++ {
		egpa := table + 8*m.index(va, l)
		d, err := read64(pt.mem, egpa)
		if err != nil {
			return fmt.Errorf("a64guest: map %#x level %d: %w", va, l, err)
		}
		switch {
		case d&DescValid == 0:
			t, err := pt.table()
			if err != nil {
				return fmt.Errorf("a64guest: map %#x: %w", va, err)
			}
			d = m.tableDesc(t)
			if err := write64(pt.mem, egpa, d); err != nil {
				return err
			}
		case d&DescTable == 0:
			return fmt.Errorf("a64guest: map %#x: a level-%d block (%#x bytes) already maps it", va, l, m.LevelSize(l))
		}
		table = m.oa(d, l)
	}
	egpa := table + 8*m.index(va, level)
	old, err := read64(pt.mem, egpa)
	if err != nil {
		return fmt.Errorf("a64guest: map %#x level %d: %w", va, level, err)
	}
	if old&DescValid != 0 {
		return fmt.Errorf("a64guest: map %#x at level %d: already mapped (%s)", va, level, m.DescString(old, level))
	}
	return write64(pt.mem, egpa, m.leafDesc(a, level, pa))
}

// Map maps [va, va+size) to [pa, pa+size) with pages of the granule.
func (pt *PageTables) Map(va, pa, size uint64, a Attrs) error {
	g := pt.Mode.Granule.Size()
	if size%g != 0 {
		return fmt.Errorf("a64guest: map [%#x, +%#x): size is not a multiple of the %v granule", va, size, pt.Mode.Granule)
	}
	for off := uint64(0); off < size; off += g {
		if err := pt.MapAt(3, va+off, pa+off, a); err != nil {
			return err
		}
	}
	return nil
}

// MapBlocks maps [va, va+size) to [pa, ...) with the largest blocks that
// va and pa alignment allow, and pages elsewhere.
func (pt *PageTables) MapBlocks(va, pa, size uint64, a Attrs) error {
	m := pt.Mode
	g := m.Granule.Size()
	if size%g != 0 {
		return fmt.Errorf("a64guest: map [%#x, +%#x): size is not a multiple of the %v granule", va, size, m.Granule)
	}
	for end := va + size; va < end; {
		level := 3
		for _, l := range m.BlockLevels() {
			s := m.LevelSize(l)
			if l >= m.StartLevel() && va%s == 0 && pa%s == 0 && end-va >= s {
				level = l
				break
			}
		}
		if err := pt.MapAt(level, va, pa, a); err != nil {
			return err
		}
		s := m.LevelSize(level)
		va, pa = va+s, pa+s
	}
	return nil
}

// Unmap clears the leaf descriptors of [va, va+size); a block must be
// unmapped whole. The guest must invalidate its TLB before it relies on
// the change.
func (pt *PageTables) Unmap(va, size uint64) error {
	return pt.update(va, size, func(uint64, int) uint64 { return 0 })
}

// Protect replaces the attributes of the leaf descriptors of
// [va, va+size), keeping their output addresses.
func (pt *PageTables) Protect(va, size uint64, a Attrs) error {
	m := pt.Mode
	return pt.update(va, size, func(d uint64, level int) uint64 { return m.leafDesc(a, level, m.oa(d, level)) })
}

// SetLeaf replaces va's leaf descriptor (or the invalid entry where it is
// not mapped) with d, for tests that build descriptors themselves.
func (pt *PageTables) SetLeaf(va, d uint64) error {
	s, _, err := pt.Leaf(va)
	if err != nil {
		return err
	}
	return write64(pt.mem, s.EntryGPA, d)
}

// update rewrites every leaf of [va, va+size), which must be mapped and
// must not split a block.
func (pt *PageTables) update(va, size uint64, f func(d uint64, level int) uint64) error {
	m := pt.Mode
	for end := va + size; va < end; {
		s, ok, err := pt.Leaf(va)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("a64guest: %#x is not mapped", va)
		}
		ls := m.LevelSize(s.Level)
		if va%ls != 0 || end-va < ls {
			return fmt.Errorf("a64guest: [%#x, %#x) splits the level-%d block at %#x", va, end, s.Level, va&^(ls-1))
		}
		if err := write64(pt.mem, s.EntryGPA, f(s.Desc, s.Level)); err != nil {
			return err
		}
		va += ls
	}
	return nil
}

// AccessFlag reports the Access flag of va's leaf descriptor; ClearAccessFlag
// clears it (page_fault_test's with_af checks).
func (pt *PageTables) AccessFlag(va uint64) (bool, error) {
	s, ok, err := pt.Leaf(va)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("a64guest: access flag of %#x: not mapped", va)
	}
	return s.Desc&DescAF != 0, nil
}

// ClearAccessFlag clears the Access flag of va's leaf descriptor.
func (pt *PageTables) ClearAccessFlag(va uint64) error {
	s, ok, err := pt.Leaf(va)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("a64guest: access flag of %#x: not mapped", va)
	}
	return write64(pt.mem, s.EntryGPA, s.Desc&^DescAF)
}
