package dirtylog

import (
	"context"
	"encoding/binary"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Host writes: a device model writes guest memory through hv.GuestMemory
// (its DMA), and the hypervisor never sees the store. The pages must show
// up in the next harvest all the same, as QEMU makes its own writes show
// up: in the bitmap modes as bitmap bits, in a dirty-ring VM in the
// backup bitmap (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP). A ring VM without
// the backup bitmap has nowhere to put them, so the write is refused
// rather than lost.

// deviceValue is what the device stores into page p of slot id: unlike
// the guest's writeValue, so a page shows who wrote it last.
func deviceValue(id uint32, p uint64) uint64 { return 0xdede_0000_0000_0000 | uint64(id)<<32 | p }

// deviceWrite is a host step in which a device writes pages of s: two
// neighbours in one WriteGPA that straddles them (one store, two pages),
// then each further page with Store64, the last with CAS64. It returns the
// pages the next harvest must hold (none where the mode refuses them).
func (e *exactEnv) deviceWrite(s *testSlot, pair uint64, more ...uint64) []uint64 {
	pages := append([]uint64{pair, pair + 1}, more...)
	refused := e.mode.ring && !e.mode.backup
	e.host("a device writes guest memory", func() {
		GinkgoHelper()
		vm := e.g.VM
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], deviceValue(s.id, pair))
		binary.LittleEndian.PutUint64(b[8:], deviceValue(s.id, pair+1))
		// 8 bytes at the end of one page and 8 at the start of the next.
		errs := []error{vm.WriteGPA(pageAddr(s.gpa, pair+1)-8, b[:])}
		for i, p := range more {
			if i == len(more)-1 {
				old, err := vm.Load64(pageAddr(s.gpa, p))
				if err == nil {
					_, err = vm.CAS64(pageAddr(s.gpa, p), old, deviceValue(s.id, p))
				}
				errs = append(errs, err)
				continue
			}
			errs = append(errs, vm.Store64(pageAddr(s.gpa, p), deviceValue(s.id, p)))
		}
		for _, err := range errs {
			if refused {
				Expect(err).To(MatchError(hv.ErrDirtyUntracked), "a host write to a logged slot of a ring VM without the backup bitmap")
			} else {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		if refused {
			Expect(s.mem.Bytes()[pageAddr(0, pair+1)-8:pageAddr(0, pair+1)+8]).To(Equal(make([]byte, 16)), "a refused write changed memory")
		}
	})
	if refused {
		return nil
	}
	return pages
}

// hostWriteCase is the exact-set scenario of device writes; it runs in
// every log mode.
func hostWriteCase(e *exactEnv) {
	a := e.slot(1, 2*64+3, hv.MemLogDirty)
	e.write(a, 3)
	dev := e.deviceWrite(a, 10, 70, a.pages-1)
	e.expect(map[*testSlot][]uint64{a: append([]uint64{3}, dev...)})
	e.expect(nil)
	// Logging is re-armed for device pages as for vCPU pages.
	dev = e.deviceWrite(a, 10)
	e.write(a, 11)
	e.expect(map[*testSlot][]uint64{a: append([]uint64{11}, dev...)})
}

// Orders in which a ring VM's two logs can be collected. The kernel
// documents collecting the bitmap last; collecting it first must lose
// nothing either, as long as both are collected before the pages are
// judged.
const (
	ringsThenBitmap = "rings, then the backup bitmap"
	bitmapThenRings = "the backup bitmap, then the rings"
)

// runBackupSplit checks that a ring VM with the backup bitmap keeps the
// two sources apart: vCPU writes in the rings only, device writes in the
// bitmap only, whichever is collected first.
func runBackupSplit(ctx context.Context, b *framework.Backend, cpl guest.Mode, order string) {
	e := newExactEnv(b, modeRingBackup, cpl, 0)
	b.Require(hv.CapGuestMemoryTrack)
	a := e.slot(1, 2*64+3, hv.MemLogDirty)
	e.write(a, 0, 64, 65)
	dev := e.deviceWrite(a, 100, 7, 64)
	e.host("collect "+order, func() {
		GinkgoHelper()
		rings := func() *pageSet {
			offs, err := harvestOrdered(e.g.VCPUs[0], a.id)
			Expect(err).NotTo(HaveOccurred())
			_, _, err = resetAll(e.g.VM, len(offs))
			Expect(err).NotTo(HaveOccurred())
			return setOf(a.pages, offs)
		}
		bitmap := func() *pageSet {
			bm, err := e.tr.getClear(a.id, a.pages)
			Expect(err).NotTo(HaveOccurred())
			s := newPageSet(a.pages)
			s.addWords(bm)
			return s
		}
		var r, m *pageSet
		if order == ringsThenBitmap {
			r, m = rings(), bitmap()
		} else {
			m, r = bitmap(), rings()
		}
		Expect(expectSets(map[uint32]*pageSet{a.id: r}, map[uint32]*pageSet{a.id: pagesOf(a.pages, 0, 64, 65)})).To(Succeed(), "the rings hold the vCPU's pages only")
		Expect(expectSets(map[uint32]*pageSet{a.id: m}, map[uint32]*pageSet{a.id: pagesOf(a.pages, dev...)})).To(Succeed(), "the backup bitmap holds the device's pages only")
		// Page 64 was written by both: in both logs.
		Expect(r.has(64) && m.has(64)).To(BeTrue(), "a page both wrote is in both logs")
	})
	e.expect(nil)
	e.run(ctx)
}
