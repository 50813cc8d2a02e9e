package dirtylog

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// testSlot is a memslot a spec adds to a guest, with its own memory.
type testSlot struct {
	id    uint32
	gpa   uint64
	pages uint64
	flags hv.MemFlags
	mem   *hv.Memory
	g     *guest.Guest // the guest it is mapped into; nil for a bare slot
}

func (s *testSlot) memslot() hv.Memslot {
	return hv.Memslot{Slot: s.id, GPA: s.gpa, Size: s.pages * hv.PageSize, Flags: s.flags, Memory: s.mem}
}

// value reads the first quadword of page p, where the writers store,
// atomically: the guest may be storing to it.
func (s *testSlot) value(p uint64) uint64 {
	v, err := s.g.Load64(pageAddr(s.gpa, p))
	if err != nil {
		GinkgoHelper()
		Expect(err).NotTo(HaveOccurred(), "read page %d of %v", p, s)
	}
	return v
}

func (s *testSlot) String() string {
	return fmt.Sprintf("slot %d (%d pages at %#x, %s)", s.id, s.pages, s.gpa, s.flags)
}

// addSlot gives g a slot of pages pages at gpa, mapped into the guest. The
// slot is deleted and its memory unmapped when the spec ends, before the
// guest is closed (cleanups run last-registered first).
func addSlot(g *guest.Guest, id uint32, gpa, pages uint64, flags hv.MemFlags) *testSlot {
	GinkgoHelper()
	mem, err := hv.NewMemory(pages*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	s := &testSlot{id: id, gpa: gpa, pages: pages, flags: flags, mem: mem, g: g}
	DeferCleanup(func() {
		if err := g.VM.DeleteMemslot(id); err != nil && !errors.Is(err, syscall.EINVAL) {
			AddReportEntry("slot cleanup", err.Error())
		}
		mem.Close()
	})
	Expect(g.VM.SetMemslot(s.memslot())).To(Succeed(), "create %v", s)
	Expect(mapSlot(g, gpa, pages*hv.PageSize)).To(Succeed(), "map %v into the guest", s)
	return s
}

// slow reports whether test code at cpl runs through an instruction
// emulator on this backend (kvm-pvm at CPL0), so specs there keep small.
func slow(b *framework.Backend, cpl guest.Mode) bool {
	return cpl == guest.CPL0 && !b.Caps.Has(hv.CapCPL0Native)
}

// smallestRing is the smallest dirty ring, from one page up, that the
// backend accepts: a small ring fills often, which is what the ring specs
// need, and the minimum depends on the host (KVM wants room for its
// reserved entries, 64 plus the 512 of a PML buffer where PML is used).
func smallestRing(b *framework.Backend) int {
	GinkgoHelper()
	max := b.Caps.DirtyRingMaxBytes
	if max == 0 {
		max = 1 << 20
	}
	var last error
	for n := hv.PageSize; n <= max; n *= 2 {
		vm, err := b.HV.NewVM(hv.VMConfig{DirtyRingBytes: n})
		if err == nil {
			vm.Close()
			return n
		}
		if !errors.Is(err, syscall.EINVAL) {
			Fail(fmt.Sprintf("probe the smallest dirty ring: %v", err))
		}
		last = err
	}
	Fail(fmt.Sprintf("no dirty ring size from %d to %d bytes is accepted; last: %v", hv.PageSize, max, last))
	return 0
}
