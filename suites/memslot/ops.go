package memslot

import (
	"fmt"
	"sort"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// area is a guest-physical range split evenly into consecutive slots that
// all share one host mapping, as memslot_perf_test lays out its test
// memory since the 6.2 rework (one consolidated allocation): slot i covers
// pages [i*per, (i+1)*per) of the area and the last slot also takes the
// remainder.
type area struct {
	gpa       uint64 // first byte of the first slot
	pages     uint64 // the whole area
	nslots    int
	firstSlot uint32
	mem       *hv.Memory
	// ps is the size of a page of the area (0: hv.PageSize): the guest's
	// page size in memslot_perf_test, whose areas count guest pages.
	ps uint64
}

// per is the size in pages of every slot but the last.
func (a area) per() uint64 { return a.pages / uint64(a.nslots) }

func (a area) pageSize() uint64 {
	if a.ps == 0 {
		return hv.PageSize
	}
	return a.ps
}

// slot is the memslot i of the area.
func (a area) slot(i int) hv.Memslot {
	per := a.per()
	size := per
	if i == a.nslots-1 {
		size = a.pages - per*uint64(a.nslots-1)
	}
	ps := a.pageSize()
	off := uint64(i) * per * ps
	return hv.Memslot{Slot: a.firstSlot + uint32(i), GPA: a.gpa + off, Size: size * ps, Memory: a.mem, Offset: off}
}

// validSplit says why pages cannot be split into nslots slots, or "".
func validSplit(pages uint64, nslots int) string {
	switch {
	case nslots < 1:
		return fmt.Sprintf("%d slots: want at least one", nslots)
	case uint64(nslots) > pages:
		return fmt.Sprintf("%d slots do not fit into %d pages (one page per slot at least)", nslots, pages)
	}
	return ""
}

// create adds every slot of the area to vm and returns how long it took.
func (a area) create(vm hv.VM) (time.Duration, error) { return a.createWithin(vm, 0) }

// opTimes is one round of the three memslot updates the C reference
// (tools/refbench/memslot.c) times: create a slot, move it, delete it.
type opTimes struct{ create, move, delete time.Duration }

// Where the probe slot of the update benchmark lives: above every area
// the specs lay out, so it overlaps nothing.
const (
	probeGPA     = 4 << 30
	probeMoveGPA = probeGPA + 2<<20
)

// probeRound times one create, move and delete of slot id, one page of
// mem at offset off. The same three ioctls, in the same order and at the
// same addresses, as tools/refbench/memslot.c.
func probeRound(vm hv.VM, id uint32, mem *hv.Memory, off uint64) (opTimes, error) {
	var t opTimes
	s := hv.Memslot{Slot: id, GPA: probeGPA, Size: hv.PageSize, Memory: mem, Offset: off}
	start := time.Now()
	if err := vm.SetMemslot(s); err != nil {
		return t, err
	}
	t.create = time.Since(start)
	s.GPA = probeMoveGPA
	start = time.Now()
	if err := vm.SetMemslot(s); err != nil {
		return t, err
	}
	t.move = time.Since(start)
	start = time.Now()
	if err := vm.DeleteMemslot(id); err != nil {
		return t, err
	}
	t.delete = time.Since(start)
	return t, nil
}

// median of a sample (which it sorts); 0 for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// createWithin is create with a time budget (0: none): past it, it stops and
// returns errOverBudget (the slots made so far stay; the caller closes the VM).
func (a area) createWithin(vm hv.VM, budget time.Duration) (time.Duration, error) {
	if why := validSplit(a.pages, a.nslots); why != "" {
		return 0, fmt.Errorf("memslot area: %s", why)
	}
	start := time.Now()
	for i := 0; i < a.nslots; i++ {
		if err := vm.SetMemslot(a.slot(i)); err != nil {
			return time.Since(start), err
		}
		if i%64 == 63 && budget > 0 {
			if d := time.Since(start); d > budget {
				return d, fmt.Errorf("%d of %d slots in %v: %w (%v)", i+1, a.nslots, d.Round(time.Millisecond), errOverBudget, budget)
			}
		}
	}
	return time.Since(start), nil
}
