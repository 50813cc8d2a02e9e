package pagereport

import (
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// policySpecs: the guest side of devices.md (c) check 6 that needs no
// kernel: only orders >= 9 are reported, at most 32 entries at a time,
// when an order's free count reaches reported + 32.
func policySpecs(b *framework.Backend) {
	It("reports orders >= 9 only, 32 blocks at a time, at the high-water mark", func(ctx SpecContext) {
		// RAM: 64 order-8 blocks (1 MiB), 40 order-9 (2 MiB), 32 order-10
		// (4 MiB), one after the other.
		const o8, o9, o10 = 64, 40, 32
		var tables []pagereport.OrderBlocks
		at := uint64(ramGPA)
		for _, o := range []struct{ order, n int }{{8, o8}, {9, o9}, {10, o10}} {
			t := pagereport.OrderBlocks{Order: o.order}
			for i := 0; i < o.n; i++ {
				t.Blocks = append(t.Blocks, at)
				at += guest.Page4K << o.order
			}
			tables = append(tables, t)
		}
		free := func(order, from, to int) []pagereport.Op {
			var out []pagereport.Op
			for i := from; i < to; i++ {
				out = append(out, pagereport.Op{Kind: pagereport.OpFree, Order: order, Block: i})
			}
			return out
		}
		r := newRig(b, rigConfig{blocks: int((at - ramGPA) / block), orders: tables, script: script(
			op(pagereport.OpInit, 0, 0),
			free(0, 0, o8), op(pagereport.OpSync, 0, 1),
			free(1, 0, 31), op(pagereport.OpSync, 0, 2),
			free(1, 31, 32), op(pagereport.OpSync, 0, 3),
			free(1, 32, o9), op(pagereport.OpSync, 0, 4),
			free(2, 0, o10), op(pagereport.OpSync, 0, 5),
		)})
		got := map[uint64][]uint64{}
		r.runSyncs(ctx, func(u *guest.Ucall) { got[syncArg(u)] = u.Args[2:] })
		Expect(got).To(Equal(map[uint64][]uint64{
			1: {0, 0, 0},  // 64 free order-8 blocks: below the reporting order
			2: {0, 0, 0},  // 31 free order-9 blocks: below the high-water mark
			3: {1, 32, 0}, // the 32nd: one report of 32
			4: {1, 32, 0}, // 40 free, 32 reported: below reported + 32
			5: {2, 64, 0}, // order 10 counts on its own
		}), "SYNCs (reports, entries, failures) after each step")
		s := r.dev.Stats()
		Expect(s.Elements).To(BeEquivalentTo(2))
		Expect(s.Ranges).To(BeEquivalentTo(64), "no report carried more than 32 entries")
		Expect(s.BytesDiscarded).To(BeEquivalentTo(32*guest.Page2M+32*2*guest.Page2M), "32 order-9 and 32 order-10 blocks")
		for i, want := range []uint64{0, 32, 32} {
			st, err := r.rep.Order(i)
			Expect(err).NotTo(HaveOccurred())
			Expect(st.Reported).To(Equal(want), "order table %d reported count", i)
		}
	}, SpecTimeout(specTimeout))
}
