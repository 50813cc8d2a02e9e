package guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/guest/desc"
)

// PTE flags of x86-64 4-level paging: desc's, the emulator's too.
const (
	PTEPresent  = desc.PTEPresent
	PTEWrite    = desc.PTEWrite
	PTEUser     = desc.PTEUser
	PTEPWT      = desc.PTEPWT
	PTEPCD      = desc.PTEPCD
	PTEAccessed = desc.PTEAccessed
	PTEDirty    = desc.PTEDirty
	PTEHuge     = desc.PTEHuge // PS: a 2 MiB or 1 GiB leaf
	PTEGlobal   = desc.PTEGlobal
	PTENX       = desc.PTENX

	pteAddrMask = 0x000ffffffffff000
)

// Page sizes a mapping can use.
const (
	Page4K = 1 << 12
	Page2M = 1 << 21
	Page1G = 1 << 30
)

// PageTables edits the guest's 4-level page tables in guest memory.
type PageTables struct {
	// Root is the guest-physical address of the PML4 (CR3).
	Root  uint64
	mem   memView
	alloc func() (uint64, error)
}

// WalkStep is one level of a translation: the table entry's guest-physical
// address and value.
type WalkStep struct {
	Level    int // 4 = PML4 ... 1 = PT
	EntryGPA uint64
	Entry    uint64
}

func (pt *PageTables) read(gpa uint64) (uint64, error) { return read64(pt.mem, gpa) }

func (pt *PageTables) write(gpa, v uint64) error { return write64(pt.mem, gpa, v) }

func index(gva uint64, level int) uint64 { return gva >> (12 + 9*uint(level-1)) & 511 }

func levelSize(level int) uint64 { return 1 << (12 + 9*uint(level-1)) }

// Walk returns the entries that translate gva, top level first, stopping at
// the leaf or at the first non-present entry.
func (pt *PageTables) Walk(gva uint64) ([]WalkStep, error) {
	table := pt.Root
	var steps []WalkStep
	for level := 4; level >= 1; level-- {
		egpa := table + 8*index(gva, level)
		e, err := pt.read(egpa)
		if err != nil {
			return steps, fmt.Errorf("walk %#x level %d: %w", gva, level, err)
		}
		steps = append(steps, WalkStep{Level: level, EntryGPA: egpa, Entry: e})
		if e&PTEPresent == 0 || level == 1 || (level <= 3 && e&PTEHuge != 0) {
			return steps, nil
		}
		table = e & pteAddrMask
	}
	return steps, nil
}

// Leaf returns the leaf entry for gva, or ok=false when gva is not mapped.
func (pt *PageTables) Leaf(gva uint64) (WalkStep, bool, error) {
	steps, err := pt.Walk(gva)
	if err != nil || len(steps) == 0 {
		return WalkStep{}, false, err
	}
	last := steps[len(steps)-1]
	return last, last.Entry&PTEPresent != 0, nil
}

// Translate returns the guest-physical address gva maps to.
func (pt *PageTables) Translate(gva uint64) (uint64, error) {
	leaf, ok, err := pt.Leaf(gva)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("translate %#x: not mapped", gva)
	}
	sz := levelSize(leaf.Level)
	base := leaf.Entry & pteAddrMask &^ (sz - 1)
	return base | gva&(sz-1), nil
}

// MapPage maps one page of size pageSize (Page4K, Page2M or Page1G) at gva
// to gpa with flags (PTEPresent is implied). Intermediate tables are
// created present, writable and user-accessible so the leaf alone decides.
func (pt *PageTables) MapPage(gva, gpa uint64, pageSize uint64, flags uint64) error {
	leafLevel := map[uint64]int{Page4K: 1, Page2M: 2, Page1G: 3}[pageSize]
	if leafLevel == 0 {
		return fmt.Errorf("map %#x: page size %#x is not 4K, 2M or 1G", gva, pageSize)
	}
	if gva%pageSize != 0 || gpa%pageSize != 0 {
		return fmt.Errorf("map %#x -> %#x: not aligned to %#x", gva, gpa, pageSize)
	}
	table := pt.Root
	for level := 4; level > leafLevel; level-- {
		egpa := table + 8*index(gva, level)
		e, err := pt.read(egpa)
		if err != nil {
			return err
		}
		if e&PTEPresent == 0 {
			page, err := pt.alloc()
			if err != nil {
				return fmt.Errorf("map %#x: %w", gva, err)
			}
			e = page | PTEPresent | PTEWrite | PTEUser
			if err := pt.write(egpa, e); err != nil {
				return err
			}
		} else if e&PTEHuge != 0 {
			return fmt.Errorf("map %#x: a %#x-byte page already maps it", gva, levelSize(level))
		}
		table = e & pteAddrMask
	}
	leaf := gpa | flags | PTEPresent
	if leafLevel > 1 {
		leaf |= PTEHuge
	}
	return pt.write(table+8*index(gva, leafLevel), leaf)
}

// Map maps [gva, gva+size) to [gpa, ...) with 4 KiB pages.
func (pt *PageTables) Map(gva, gpa, size, flags uint64) error {
	return pt.MapSized(gva, gpa, size, Page4K, flags)
}

// MapSized maps a range with pages of one size.
func (pt *PageTables) MapSized(gva, gpa, size, pageSize, flags uint64) error {
	if size%pageSize != 0 {
		return fmt.Errorf("map [%#x, +%#x): size not a multiple of %#x", gva, size, pageSize)
	}
	for off := uint64(0); off < size; off += pageSize {
		if err := pt.MapPage(gva+off, gpa+off, pageSize, flags); err != nil {
			return err
		}
	}
	return nil
}

// Unmap clears the leaf entries of [gva, gva+size). Callers running the
// guest again must make it flush its TLB (the guest runtime's Invalidate).
func (pt *PageTables) Unmap(gva, size uint64) error {
	return pt.update(gva, size, func(e uint64) uint64 { return 0 })
}

// Protect sets and clears flags on the leaf entries of [gva, gva+size).
func (pt *PageTables) Protect(gva, size, set, clear uint64) error {
	return pt.update(gva, size, func(e uint64) uint64 { return e&^clear | set })
}

// SetLeaf replaces the leaf entry of gva.
func (pt *PageTables) SetLeaf(gva, entry uint64) error {
	leaf, _, err := pt.Leaf(gva)
	if err != nil {
		return err
	}
	return pt.write(leaf.EntryGPA, entry)
}

func (pt *PageTables) update(gva, size uint64, f func(uint64) uint64) error {
	for end := gva + size; gva < end; {
		leaf, _, err := pt.Leaf(gva)
		if err != nil {
			return err
		}
		if leaf.Level > 1 && leaf.Entry&PTEPresent != 0 && leaf.Entry&PTEHuge == 0 {
			return fmt.Errorf("update %#x: no leaf entry", gva)
		}
		if err := pt.write(leaf.EntryGPA, f(leaf.Entry)); err != nil {
			return err
		}
		sz := levelSize(leaf.Level)
		gva = gva&^(sz-1) + sz
	}
	return nil
}

// AccessedDirty reports the A and D bits of gva's leaf entry.
func (pt *PageTables) AccessedDirty(gva uint64) (accessed, dirty bool, err error) {
	leaf, ok, err := pt.Leaf(gva)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return false, false, fmt.Errorf("accessed/dirty %#x: not mapped", gva)
	}
	return leaf.Entry&PTEAccessed != 0, leaf.Entry&PTEDirty != 0, nil
}

// ClearAccessedDirty clears A and D on every level that translates gva.
func (pt *PageTables) ClearAccessedDirty(gva uint64) error {
	steps, err := pt.Walk(gva)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := pt.write(s.EntryGPA, s.Entry&^(PTEAccessed|PTEDirty)); err != nil {
			return err
		}
	}
	return nil
}

// ptChunk is how much the page-table pool takes from free memory each
// time it runs out: 64 tables, enough to map 128 MiB more with 4 KiB pages.
const ptChunk = 64 * Page4K

// ptPool hands out zeroed page-table pages: first from the layout's chunk,
// then from chunks the allocator gives, so a spec mapping gigabytes with
// 4 KiB pages runs out of guest memory, not of a fixed table count.
type ptPool struct {
	next, end uint64 // the current chunk's unused part
	pages     int    // tables handed out
	phys      *Allocator
	mem       memView
	grown     []Region
	grew      func(Region) error // told of each chunk taken from free memory
}

func (p *ptPool) alloc() (uint64, error) {
	if p.next >= p.end {
		base, err := p.phys.Alloc(ptChunk, Page4K, "page tables")
		if err != nil {
			return 0, fmt.Errorf("page-table pool after %d tables: %w", p.pages, err)
		}
		r := Region{Base: base, Size: ptChunk, Owner: "page tables"}
		p.next, p.end = base, base+ptChunk
		p.grown = append(p.grown, r)
		if p.grew != nil {
			if err := p.grew(r); err != nil {
				return 0, fmt.Errorf("page-table pool: protect %v: %w", r, err)
			}
		}
	}
	t := p.next
	b, err := p.mem(t, Page4K)
	if err != nil {
		return 0, fmt.Errorf("page-table pool: %w", err)
	}
	clear(b)
	p.next += Page4K
	p.pages++
	return t, nil
}
