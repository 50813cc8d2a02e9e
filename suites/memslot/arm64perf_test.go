package memslot

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
)

// TestA64PerfDefaults: with every granule, each test's default area is
// whole guest pages, the sweep's 8 slots fit, and the largest count the
// area allows stays within what TCG sets up in about a second.
func TestA64PerfDefaults(t *testing.T) {
	c := perfConfig{mem: a64PerfDefaults.mem, rwMem: a64PerfDefaults.rwMem, mapMem: a64PerfDefaults.mapMem, unmapMem: a64PerfDefaults.unmapMem}
	for _, gr := range a64guest.Granules {
		ps := gr.Size()
		for _, pt := range perfTests {
			mem := pt.mem(c)
			if mem%ps != 0 || mem%unmapChunk != 0 {
				t.Errorf("%v %s: %d bytes is not whole guest pages and unmap chunks", gr, pt.name, mem)
				continue
			}
			pages := mem / ps
			if why := pt.fits(pages, ps, 8); why != "" {
				t.Errorf("%v %s: 8 slots: %s", gr, pt.name, why)
			}
			if n := maxFit(pt, pages, ps, 32766); n < 8 || n > 1024 {
				t.Errorf("%v %s: at most %d slots, want 8..1024", gr, pt.name, n)
			}
		}
	}
}

// TestA64PageSizeSlots: an area counted in 64K guest pages splits into
// slots of whole 64K pages, the last taking the remainder.
func TestA64PageSizeSlots(t *testing.T) {
	ps := a64guest.Granule64K.Size()
	a := area{gpa: perfGPA, pages: 10, nslots: 3, firstSlot: 1, ps: ps}
	var total uint64
	for i := 0; i < 3; i++ {
		s := a.slot(i)
		if s.Size%ps != 0 || s.GPA%ps != 0 || s.Offset != s.GPA-perfGPA {
			t.Errorf("slot %d = %+v: not whole 64K pages at its offset", i, s)
		}
		total += s.Size
	}
	if total != 10*ps || a.slot(2).Size != 4*ps {
		t.Errorf("slots cover %d bytes, the last %d: want 10 pages, the last with the remainder", total, a.slot(2).Size)
	}
	move := fitsMove(true)
	if why := move(a.pages, ps, 3); why != "" {
		t.Errorf("active move in 3 slots of 64K pages: %s", why)
	}
}
