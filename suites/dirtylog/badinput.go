package dirtylog

import (
	"syscall"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Bad input needs no guest code: a VM with slots is enough, and the
// checks are that the call fails with the kernel's errno (wrapped; the
// specs use errors.Is through MatchError) and that nothing else happens.

// bareVM is a VM without vCPUs, closed when the spec ends.
func bareVM(b *framework.Backend, cfg hv.VMConfig) hv.VM {
	GinkgoHelper()
	vm, err := b.HV.NewVM(cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(vm.Close)
	return vm
}

// bareSlot adds a slot of pages pages to vm; its memory is unmapped when
// the spec ends, after the slot is gone.
func bareSlot(vm hv.VM, id uint32, pages uint64, flags hv.MemFlags) *testSlot {
	GinkgoHelper()
	mem, err := hv.NewMemory(pages*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close)
	s := &testSlot{id: id, gpa: slotGPA(id), pages: pages, flags: flags, mem: mem}
	Expect(vm.SetMemslot(s.memslot())).To(Succeed())
	DeferCleanup(func() { _ = vm.DeleteMemslot(id) })
	return s
}

const badPages = 2*64 + 3

func badInputSpecs(b *framework.Backend) {
	words := bitmapWords(badPages)

	It("get on a slot without logging is ENOENT", func() {
		modeDirtyLog.require(b)
		vm := bareVM(b, hv.VMConfig{})
		s := bareSlot(vm, 1, badPages, 0)
		Expect(vm.GetDirtyLog(s.id, make([]uint64, words))).To(MatchError(syscall.ENOENT))
	})

	It("clear on a slot without logging is ENOENT", modeClearLog.labels(), func() {
		modeClearLog.require(b)
		vm := bareVM(b, modeClearLog.vmConfig(0))
		s := bareSlot(vm, 1, badPages, 0)
		Expect(vm.ClearDirtyLog(s.id, 0, badPages, make([]uint64, words))).To(MatchError(syscall.ENOENT))
	})

	It("get and clear on a deleted slot or one never created are ENOENT", modeClearLog.labels(), func() {
		modeClearLog.require(b)
		vm := bareVM(b, modeClearLog.vmConfig(0))
		s := bareSlot(vm, 1, badPages, hv.MemLogDirty)
		bm := make([]uint64, words)
		Expect(vm.GetDirtyLog(s.id, bm)).To(Succeed(), "get before the delete")
		Expect(vm.DeleteMemslot(s.id)).To(Succeed())
		Expect(vm.GetDirtyLog(s.id, bm)).To(MatchError(syscall.ENOENT), "get on the deleted slot")
		Expect(vm.ClearDirtyLog(s.id, 0, badPages, bm)).To(MatchError(syscall.ENOENT), "clear on the deleted slot")
		Expect(vm.GetDirtyLog(77, bm)).To(MatchError(syscall.ENOENT), "get on slot 77, never created")
	})

	It("get with a bitmap one word short is EINVAL and writes nothing past it", func() {
		modeDirtyLog.require(b)
		// With INITIALLY_SET every bit is set, so an overrun would write
		// ones over the canary; without it, zeros.
		cfg := hv.VMConfig{}
		if b.Caps.Has(hv.CapManualProtect) && b.Caps.Has(hv.CapInitiallySet) {
			cfg = modeClearLog.vmConfig(0)
		}
		vm := bareVM(b, cfg)
		s := bareSlot(vm, 1, badPages, hv.MemLogDirty)
		const canary = 0x5a5a_5a5a_5a5a_5a5a
		buf := make([]uint64, words+1)
		for i := range buf {
			buf[i] = canary
		}
		short := buf[: words-1 : words-1]
		Expect(vm.GetDirtyLog(s.id, short)).To(MatchError(syscall.EINVAL))
		Expect(buf).To(HaveEach(uint64(canary)), "the bitmap and the memory after it")
		Expect(vm.GetDirtyLog(s.id, nil)).To(MatchError(syscall.EINVAL), "a nil bitmap")
	})

	It("clear with a bitmap shorter than the range is EINVAL", modeClearLog.labels(), func() {
		modeClearLog.require(b)
		vm := bareVM(b, modeClearLog.vmConfig(0))
		s := bareSlot(vm, 1, badPages, hv.MemLogDirty)
		all := rangeSet(badPages, 0, badPages)
		ones := make([]uint64, words)
		for i := range ones {
			ones[i] = ^uint64(0)
		}
		Expect(vm.ClearDirtyLog(s.id, 0, badPages, ones[:words-1])).To(MatchError(syscall.EINVAL))
		expectLog(vm, s, all, "log after the failed clear")
	})

	DescribeTable("clear with a misaligned range is EINVAL and clears nothing", modeClearLog.labels(),
		func(first, num uint64) {
			modeClearLog.require(b)
			vm := bareVM(b, modeClearLog.vmConfig(0))
			s := bareSlot(vm, 1, badPages, hv.MemLogDirty)
			ones := make([]uint64, bitmapWords(num)+1)
			for i := range ones {
				ones[i] = ^uint64(0)
			}
			Expect(vm.ClearDirtyLog(s.id, first, num, ones)).To(MatchError(syscall.EINVAL), "clear [%d, +%d) of %d pages", first, num, badPages)
			expectLog(vm, s, rangeSet(badPages, 0, badPages), "log after the failed clear (INITIALLY_SET: all pages)")
		},
		Entry("first page not a multiple of 64", uint64(3), uint64(64)),
		Entry("one page, not at the end of the slot", uint64(0), uint64(1)),
		Entry("a range of 65 pages that stops short of the end", uint64(0), uint64(65)),
		Entry("a range past the end of the slot", uint64(64), uint64(badPages)),
		Entry("first page beyond the slot", uint64(192), uint64(64)),
	)

	It("get on a VM with dirty rings is ENXIO", modeDirtyRing.labels(), func() {
		modeDirtyRing.require(b)
		vm := bareVM(b, hv.VMConfig{DirtyRingBytes: smallestRing(b)})
		s := bareSlot(vm, 1, badPages, hv.MemLogDirty)
		Expect(vm.GetDirtyLog(s.id, make([]uint64, words))).To(MatchError(syscall.ENXIO))
	})

	It("reset and harvest on a VM without dirty rings are EINVAL", modeDirtyRing.labels(), func() {
		// A backend without rings at all may say so instead.
		modeDirtyRing.require(b)
		vm := bareVM(b, hv.VMConfig{})
		_, err := vm.ResetDirtyRings()
		Expect(err).To(MatchError(syscall.EINVAL), "ResetDirtyRings")
		v, err := vm.NewVCPU(0)
		Expect(err).NotTo(HaveOccurred())
		_, err = v.HarvestDirtyRing(func(uint32, uint64) { Fail("an entry from a VM without rings") })
		Expect(err).To(MatchError(syscall.EINVAL), "HarvestDirtyRing")
	})

	maxRing := b.Caps.DirtyRingMaxBytes
	DescribeTable("dirty ring size", modeDirtyRing.labels(),
		func(size func() int, want error) {
			modeDirtyRing.require(b)
			n := size()
			vm, err := b.HV.NewVM(hv.VMConfig{DirtyRingBytes: n})
			if want == nil {
				Expect(err).NotTo(HaveOccurred(), "a ring of %d bytes", n)
				DeferCleanup(vm.Close)
				_, err := vm.NewVCPU(0)
				Expect(err).NotTo(HaveOccurred(), "a vCPU with a ring of %d bytes", n)
				return
			}
			if err == nil {
				vm.Close()
			}
			Expect(err).To(MatchError(want), "a ring of %d bytes", n)
		},
		Entry("below a page (2048 bytes) is EINVAL", func() int { return 2048 }, syscall.EINVAL),
		Entry("not a power of two (6000 bytes) is EINVAL", func() int { return 6000 }, syscall.EINVAL),
		Entry("three pages is EINVAL", func() int { return 3 * hv.PageSize }, syscall.EINVAL),
		Entry("negative is EINVAL", func() int { return -hv.PageSize }, syscall.EINVAL),
		Entry("twice the maximum is E2BIG", func() int { return 2 * maxRing }, syscall.E2BIG),
		Entry("2 GiB is E2BIG", func() int { return 1 << 31 }, syscall.E2BIG),
		Entry("the maximum is accepted", func() int { return maxRing }, nil),
	)
}
