package dirtylog

import (
	"context"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// getSet reads a slot's dirty bitmap as a set.
func getSet(vm hv.VM, s *testSlot) *pageSet {
	GinkgoHelper()
	bm := make([]uint64, bitmapWords(s.pages))
	Expect(vm.GetDirtyLog(s.id, bm)).To(Succeed())
	got := newPageSet(s.pages)
	got.addWords(bm)
	return got
}

// clearPages clears pages of s from the log with ClearDirtyLog over
// [first, first+num); the bitmap is relative to first, as in KVM.
func clearPages(vm hv.VM, s *testSlot, first, num uint64, pages ...uint64) {
	GinkgoHelper()
	bm := make([]uint64, bitmapWords(num))
	for _, p := range pages {
		bm[(p-first)/64] |= 1 << ((p - first) % 64)
	}
	Expect(vm.ClearDirtyLog(s.id, first, num, bm)).To(Succeed(), "clear pages %v in [%d, +%d)", pages, first, num)
}

func expectLog(vm hv.VM, s *testSlot, want *pageSet, what string) {
	GinkgoHelper()
	got := getSet(vm, s)
	Expect(got.equal(want)).To(BeTrue(), "%s: log %v, want %v: %s", what, got, want, diff(got, want))
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for p := from; p < to; p++ {
		out = append(out, p)
	}
	return out
}

// runClearExactly checks manual protect step by step: with INITIALLY_SET
// the log starts full and GetDirtyLog does not clear it; ClearDirtyLog
// clears exactly the bits it is given, in the range it is given (a 64-page
// aligned range, or one that runs to the slot's end), and write-protects
// exactly those pages, so only they are logged again when written.
func runClearExactly(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	e := newExactEnv(b, modeClearLog, cpl, 0)
	// Not e.slot: its priming would clear the initial log this spec checks.
	a := addSlot(e.g, 1, slotGPA(1), 4*64+3, hv.MemLogDirty)
	n := a.pages
	vm := e.g.VM
	all := rangeSet(n, 0, n)
	kept := all.minus(rangeSet(n, 64, 128)).minus(rangeSet(n, 192, n))
	e.host("INITIALLY_SET: every page is dirty, and GetDirtyLog does not clear it", func() {
		expectLog(vm, a, all, "first get")
		expectLog(vm, a, all, "second get")
	})
	e.host("clear [64, 128) and [192, end): only those bits go", func() {
		clearPages(vm, a, 64, 64, seq(64, 128)...)
		expectLog(vm, a, all.minus(rangeSet(n, 64, 128)), "after clearing [64, 128)")
		clearPages(vm, a, 192, n-192, seq(192, n)...)
		expectLog(vm, a, kept, "after clearing [192, end)")
	})
	e.write(a, 70, 10, 200)
	e.host("written pages that were cleared are logged again", func() {
		expectLog(vm, a, kept.union(pagesOf(n, 70, 200)), "after writing 70, 10, 200")
	})
	e.host("a clear over the whole slot clears only the bits set in its bitmap", func() {
		clearPages(vm, a, 0, n, 10, 70)
		expectLog(vm, a, kept.minus(pagesOf(n, 10)).union(pagesOf(n, 200)), "after clearing 10 and 70")
		clearPages(vm, a, 0, n, seq(0, n)...)
		expectLog(vm, a, newPageSet(n), "after clearing every page")
	})
	e.write(a, 10, 11)
	e.host("pages cleared by either clear are write-protected again", func() {
		expectLog(vm, a, pagesOf(n, 10, 11), "after writing 10 and 11")
	})
	e.run(ctx)
}
