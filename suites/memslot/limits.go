package memslot

import (
	"fmt"
	"syscall"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The limits and bad-input specs need no guest: a VM with two slots is
// enough. Every refused request must fail with the errno
// KVM_SET_USER_MEMORY_REGION gives, wrapped with the operation and the
// slot, and leave the slot list exactly as it was (nothing half-applied).

// The fixture: slot 0 = [0, 1 MiB) and slot 1 = [2 MiB, 3 MiB) of one
// 4 MiB mapping; free space after 3 MiB and above.
const (
	fixMemSize  = 4 << 20
	fixSlotSize = 1 << 20
	fixSlot1GPA = 2 << 20
	fixFreeOff  = 2 << 20 // offset of the mapping no slot uses
	fixFreeGPA  = 8 << 20 // a guest-physical range no slot uses
)

type fixture struct {
	vm  hv.VM
	mem *hv.Memory
	max int
}

// newFixture makes the two-slot VM, closed when the spec ends.
func newFixture(b *framework.Backend) *fixture {
	GinkgoHelper()
	vm, err := b.HV.NewVM(hv.VMConfig{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(vm.Close)
	mem, err := hv.NewMemory(fixMemSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close) // after vm.Close: cleanups run in reverse
	f := &fixture{vm: vm, mem: mem, max: b.Caps.MaxMemslots}
	Expect(vm.SetMemslot(f.slot0())).To(Succeed())
	Expect(vm.SetMemslot(f.slot1())).To(Succeed())
	return f
}

func (f *fixture) slot0() hv.Memslot {
	return hv.Memslot{Slot: 0, GPA: 0, Size: fixSlotSize, Memory: f.mem}
}

func (f *fixture) slot1() hv.Memslot {
	return hv.Memslot{Slot: 1, GPA: fixSlot1GPA, Size: fixSlotSize, Memory: f.mem, Offset: fixSlotSize}
}

// free is a new one-page slot id in unused guest-physical and host memory.
func (f *fixture) free(id uint32) hv.Memslot {
	return hv.Memslot{Slot: id, GPA: fixFreeGPA, Size: hv.PageSize, Memory: f.mem, Offset: fixFreeOff}
}

// slotMax stands for the backend's MaxMemslots in a refusal's slot.
const slotMax = ^uint32(0)

// refusal is an invalid request and the errno KVM gives for it.
type refusal struct {
	slot uint32 // the slot the error must name
	do   func(f *fixture) error
	want syscall.Errno
}

func set(m func(f *fixture) hv.Memslot) func(f *fixture) error {
	return func(f *fixture) error { return f.vm.SetMemslot(m(f)) }
}

// expectRefused runs r and checks errno, wrapping and that the slot list
// did not change.
func expectRefused(f *fixture, r refusal) {
	GinkgoHelper()
	before := f.vm.Memslots()
	err := r.do(f)
	Expect(err).To(MatchError(r.want), "errno")
	Expect(err.Error()).To(MatchRegexp(`SET_USER_MEMORY_REGION|memslot`), "the error names the operation")
	Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("slot %d", r.slot)), "the error names the slot")
	Expect(f.vm.Memslots()).To(Equal(before), "slots after the refused request (nothing half-applied)")
}

// deleteFirst is a refusal's preparation: slot id is deleted already.
func deleteFirst(id uint32) func(f *fixture) {
	return func(f *fixture) {
		GinkgoHelper()
		Expect(f.vm.DeleteMemslot(id)).To(Succeed(), "the first delete")
	}
}

// refusalEntries are the refusals of every architecture; beyondPA (the
// architecture's refusals of a GPA beyond what it can map) go after the
// wrapping range.
func refusalEntries(beyondPA ...TableEntry) []TableEntry {
	at := func(id uint32, gpa, size, off uint64) func(f *fixture) hv.Memslot {
		return func(f *fixture) hv.Memslot {
			return hv.Memslot{Slot: id, GPA: gpa, Size: size, Memory: f.mem, Offset: off}
		}
	}
	with := func(base func(f *fixture) hv.Memslot, edit func(m *hv.Memslot)) func(f *fixture) hv.Memslot {
		return func(f *fixture) hv.Memslot {
			m := base(f)
			edit(&m)
			return m
		}
	}
	slot1 := func(f *fixture) hv.Memslot { return f.slot1() }
	const pg = hv.PageSize
	entries := []TableEntry{
		Entry("a new slot over the start of another is EEXIST", refusal{2, set(at(2, fixSlot1GPA-pg, 2*pg, fixFreeOff)), syscall.EEXIST}),
		Entry("a new slot over the end of another is EEXIST", refusal{2, set(at(2, fixSlot1GPA+fixSlotSize-pg, 2*pg, fixFreeOff)), syscall.EEXIST}),
		Entry("a new slot inside another is EEXIST", refusal{2, set(at(2, fixSlot1GPA+4*pg, pg, fixFreeOff)), syscall.EEXIST}),
		Entry("a new slot around another is EEXIST", refusal{2, set(at(2, fixSlot1GPA-pg, fixSlotSize+2*pg, fixFreeOff)), syscall.EEXIST}),
		Entry("a slot moved onto another is EEXIST", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.GPA = fixSlotSize / 2 })), syscall.EEXIST}),
		Entry("a GPA off by one byte is EINVAL", refusal{2, set(at(2, fixFreeGPA+1, pg, fixFreeOff)), syscall.EINVAL}),
		Entry("a GPA off by half a page is EINVAL", refusal{2, set(at(2, fixFreeGPA+pg/2, pg, fixFreeOff)), syscall.EINVAL}),
		Entry("a size of a page and a byte is EINVAL", refusal{2, set(at(2, fixFreeGPA, pg+1, fixFreeOff)), syscall.EINVAL}),
		Entry("a size of half a page is EINVAL", refusal{2, set(at(2, fixFreeGPA, pg/2, fixFreeOff)), syscall.EINVAL}),
		Entry("a host offset off by 8 bytes is EINVAL", refusal{2, set(at(2, fixFreeGPA, pg, fixFreeOff+8)), syscall.EINVAL}),
		Entry("a host offset off by half a page is EINVAL", refusal{2, set(at(2, fixFreeGPA, pg, fixFreeOff+pg/2)), syscall.EINVAL}),
		Entry("a GPA range that wraps is EINVAL", refusal{2, set(at(2, ^uint64(0)-pg+1, 2*pg, fixFreeOff)), syscall.EINVAL}),
	}
	entries = append(entries, beyondPA...)
	entries = append(entries, []TableEntry{
		Entry("growing a slot is EINVAL", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.Size += pg })), syscall.EINVAL}),
		Entry("shrinking a slot is EINVAL", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.Size -= pg })), syscall.EINVAL}),
		Entry("making a slot read-only is EINVAL", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.Flags = hv.MemReadOnly })), syscall.EINVAL}),
		Entry("moving a slot to other host memory is EINVAL", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.Offset += pg })), syscall.EINVAL}),
		Entry("moving and resizing at once is EINVAL", refusal{1, set(with(slot1, func(m *hv.Memslot) { m.GPA, m.Size = fixFreeGPA, pg })), syscall.EINVAL}),
		Entry("the first slot id beyond the capability is EINVAL", refusal{slotMax, set(func(f *fixture) hv.Memslot { return f.free(uint32(f.max)) }), syscall.EINVAL}),
		Entry("deleting a slot that does not exist is EINVAL", refusal{9, func(f *fixture) error { return f.vm.DeleteMemslot(9) }, syscall.EINVAL}),
		Entry("deleting a slot twice is EINVAL", refusal{1, func(f *fixture) error { return f.vm.DeleteMemslot(1) }, syscall.EINVAL}, deleteFirst(1)),
		Entry("size 0 on a slot that does not exist is EINVAL", refusal{9, set(at(9, fixFreeGPA, 0, fixFreeOff)), syscall.EINVAL}),
	}...)
	return entries
}

// freeAt is a refusal's one-page slot 2 at gpa, in unused host memory.
func freeAt(gpa uint64) func(f *fixture) hv.Memslot {
	return func(f *fixture) hv.Memslot {
		return hv.Memslot{Slot: 2, GPA: gpa, Size: hv.PageSize, Memory: f.mem, Offset: fixFreeOff}
	}
}

// x86BeyondPA: x86 refuses a GPA beyond its largest frame number (52
// bits) with EINVAL.
func x86BeyondPA() []TableEntry {
	return []TableEntry{
		Entry("a GPA beyond 52 bits is EINVAL", refusal{2, set(freeAt(1 << 52)), syscall.EINVAL}),
	}
}

// flagEntries: every flag bit KVM_SET_USER_MEMORY_REGION does not know.
// Bit 2 is KVM_MEM_GUEST_MEMFD, valid only in the REGION2 ioctl.
func flagEntries() []TableEntry {
	var out []TableEntry
	for bit := 2; bit < 32; bit++ {
		out = append(out, Entry(fmt.Sprintf("flag bit %d is EINVAL", bit), bit))
	}
	return out
}

// Texts of the limit specs both architectures run.
const (
	textSlotCount = "accepts the capability's slot count and refuses one more with EINVAL"
	textReadOnly  = "creates a read-only slot"
	textSizeZero  = "size 0 deletes a slot, as KVM_SET_USER_MEMORY_REGION does"
)

// checkSlotCount creates as many one-page slots as the capability says
// and checks that one more is refused.
func checkSlotCount(b *framework.Backend) {
	max := b.Caps.MaxMemslots
	Expect(max).To(BeNumerically(">", 0), "the backend's memslot capability")
	vm, err := b.HV.NewVM(hv.VMConfig{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(vm.Close)
	// One page per slot out of one mapping that is never touched, as
	// set_memory_region_test does with its MAP_NORESERVE region.
	mem, err := hv.NewMemory(uint64(max+1)*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close)
	a := area{gpa: perfGPA, pages: uint64(max), nslots: max, mem: mem}
	By(fmt.Sprintf("creating %d one-page slots", max))
	d, err := a.create(vm)
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("allowed number of memory slots", max)
	AddReportEntry("time to create them", d.String())
	Expect(vm.Memslots()).To(HaveLen(max))
	f := &fixture{vm: vm, mem: mem, max: max}
	expectRefused(f, refusal{uint32(max), set(func(f *fixture) hv.Memslot {
		return hv.Memslot{Slot: uint32(max), GPA: perfGPA + uint64(max)*hv.PageSize, Size: hv.PageSize, Memory: mem, Offset: uint64(max) * hv.PageSize}
	}), syscall.EINVAL})
}

// refusedSpec is the body of the refused-requests table.
func refusedSpec(b *framework.Backend) func(r refusal, prep ...func(f *fixture)) {
	return func(r refusal, prep ...func(f *fixture)) {
		f := newFixture(b)
		for _, p := range prep {
			p(f)
		}
		if r.slot == slotMax {
			r.slot = uint32(f.max)
		}
		expectRefused(f, r)
	}
}

// unknownFlagSpec is the body of the unknown-flags table.
func unknownFlagSpec(b *framework.Backend) func(bit int) {
	return func(bit int) {
		f := newFixture(b)
		m := f.free(2)
		m.Flags = hv.MemFlags(1) << bit
		expectRefused(f, refusal{2, set(func(*fixture) hv.Memslot { return m }), syscall.EINVAL})
	}
}

// acceptedSpec is the body of the accepted-changes table.
func acceptedSpec(b *framework.Backend) func(change func(f *fixture) ([]hv.Memslot, error)) {
	return func(change func(f *fixture) ([]hv.Memslot, error)) {
		f := newFixture(b)
		want, err := change(f)
		Expect(err).NotTo(HaveOccurred())
		Expect(f.vm.Memslots()).To(Equal(want))
	}
}

func acceptedEntries() []TableEntry {
	return []TableEntry{
		Entry("a slot moves to a free GPA", func(f *fixture) ([]hv.Memslot, error) {
			m := f.slot1()
			m.GPA = fixFreeGPA
			return []hv.Memslot{f.slot0(), m}, f.vm.SetMemslot(m)
		}),
		Entry("a slot moves onto part of its own old range", func(f *fixture) ([]hv.Memslot, error) {
			m := f.slot1()
			m.GPA -= hv.PageSize
			return []hv.Memslot{f.slot0(), m}, f.vm.SetMemslot(m)
		}),
		Entry("logging is enabled and disabled on a slot", func(f *fixture) ([]hv.Memslot, error) {
			m := f.slot1()
			m.Flags = hv.MemLogDirty
			if err := f.vm.SetMemslot(m); err != nil {
				return nil, err
			}
			if got := f.vm.Memslots()[1].Flags; got != hv.MemLogDirty {
				return nil, fmt.Errorf("flags after enabling logging: %s", got)
			}
			m.Flags = 0
			return []hv.Memslot{f.slot0(), m}, f.vm.SetMemslot(m)
		}),
		Entry("the same slot id is re-created at another GPA", func(f *fixture) ([]hv.Memslot, error) {
			if err := f.vm.DeleteMemslot(1); err != nil {
				return nil, err
			}
			m := f.slot1()
			m.GPA = fixFreeGPA + fixSlotSize
			return []hv.Memslot{f.slot0(), m}, f.vm.SetMemslot(m)
		}),
		Entry("a deleted slot's range takes a new slot", func(f *fixture) ([]hv.Memslot, error) {
			if err := f.vm.DeleteMemslot(1); err != nil {
				return nil, err
			}
			m := f.slot1()
			m.Slot = 5
			return []hv.Memslot{f.slot0(), m}, f.vm.SetMemslot(m)
		}),
	}
}

// checkReadOnly creates a read-only slot and refuses to make it writable.
func checkReadOnly(b *framework.Backend) {
	b.Require(hv.CapReadOnlyMem)
	f := newFixture(b)
	m := f.free(3)
	m.Flags = hv.MemReadOnly
	Expect(f.vm.SetMemslot(m)).To(Succeed())
	Expect(f.vm.Memslots()).To(Equal([]hv.Memslot{f.slot0(), f.slot1(), m}))
	m.Flags = 0
	expectRefused(f, refusal{3, set(func(*fixture) hv.Memslot { return m }), syscall.EINVAL})
}

// checkSizeZero deletes a slot by setting it with size 0.
func checkSizeZero(b *framework.Backend) {
	f := newFixture(b)
	m := f.slot1()
	m.Size = 0
	err := f.vm.SetMemslot(m)
	Expect(err).NotTo(HaveOccurred())
	Expect(f.vm.Memslots()).To(Equal([]hv.Memslot{f.slot0()}), "slot 1 is gone")
	Expect(f.vm.DeleteMemslot(1)).To(MatchError(syscall.EINVAL), "deleting it again")
}

func limitSpecs(b *framework.Backend) {
	It(textSlotCount, func(ctx SpecContext) { checkSlotCount(b) }, SpecTimeout(10*time.Minute))
	DescribeTable("refused requests", refusedSpec(b), refusalEntries(x86BeyondPA()...))
	DescribeTable("unknown flags", unknownFlagSpec(b), flagEntries())
	DescribeTable("accepted changes", acceptedSpec(b), acceptedEntries())
	It(textReadOnly, taxonomy.Needs(hv.CapReadOnlyMem), func() { checkReadOnly(b) })
	It(textSizeZero, func() { checkSizeZero(b) })
}
