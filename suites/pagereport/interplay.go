package pagereport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// interplaySpecs: reporting meets demand paging, dirty logging, other
// vCPUs and the device lifecycle (devices.md (c) check 9).
func interplaySpecs(b *framework.Backend) {
	It("a reported page is missing again: the next touch faults exactly once per page", taxonomy.Needs(hv.CapUserfault), func(ctx SpecContext) {
		b.Require(hv.CapUserfault)
		r := newRig(b, rigConfig{blocks: 2, script: script(
			op(pagereport.OpInit, 0, 0),
			ops(pagereport.OpAlloc, 0, 2, touched),
			op(pagereport.OpSync, 0, 1),
			ops(pagereport.OpFree, 0, 2, 0),
			op(pagereport.OpFlush, 0, 0), // two blocks: below the high-water mark
			op(pagereport.OpSync, 0, 2),
			op(pagereport.OpAlloc, 0, touched), // writes one quadword per page
			op(pagereport.OpSync, 0, 3),
			op(pagereport.OpCheck, 1, 4), // reads every quadword
			op(pagereport.OpSync, 0, 5),
		)})
		var faults atomic.Uint64
		Expect(r.g.VM.SetMissingPageHandler(ramSlot, func(f hv.Fault, page []byte) error {
			faults.Add(1)
			return nil
		})).To(Succeed())
		counts := map[uint64]uint64{}
		read := r.runSyncs(ctx, func(u *guest.Ucall) { counts[syncArg(u)] = faults.Load() })[4]
		Expect(r.g.VM.SetMissingPageHandler(ramSlot, nil)).To(Succeed(), "the handler's first error")
		Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 1, Entries: 2}))
		AddReportEntry("missing-page faults at each stage", counts)
		Expect(counts[1]).To(BeEquivalentTo(2*pagesPer), "first touches")
		Expect(counts[2]-counts[1]).To(BeZero(), "the discard itself faults nothing")
		Expect(counts[3]-counts[2]).To(BeEquivalentTo(pagesPer), "re-writing a reported block faults once per page")
		Expect(counts[5]-counts[3]).To(BeEquivalentTo(pagesPer), "reading a reported block faults once per page")
		Expect(read).To(BeZero(), "the handler served zero pages")
	}, SpecTimeout(specTimeout))

	It("a reported then re-written page is in the next dirty harvest", taxonomy.Needs(hv.CapDirtyLog), func(ctx SpecContext) {
		b.Require(hv.CapDirtyLog)
		const blocks, rewritten = 32, 5
		r := newRig(b, rigConfig{blocks: blocks, flags: hv.MemLogDirty, script: script(
			op(pagereport.OpInit, 0, 0),
			ops(pagereport.OpAlloc, 0, blocks, touched),
			op(pagereport.OpSync, 0, 1),
			ops(pagereport.OpFree, 0, blocks, 0),
			op(pagereport.OpSync, 0, 2),
			op(pagereport.OpAlloc, rewritten, touched+1),
			op(pagereport.OpSync, 0, 3),
		)})
		pages := uint64(blocks) * pagesPer
		harvest := func() []uint64 {
			bm := make([]uint64, (pages+63)/64)
			Expect(r.g.VM.GetDirtyLog(ramSlot, bm)).To(Succeed())
			var out []uint64
			for i := uint64(0); i < pages; i++ {
				if bm[i/64]>>(i%64)&1 != 0 {
					out = append(out, i)
				}
			}
			return out
		}
		sets := map[uint64][]uint64{}
		r.runSyncs(ctx, func(u *guest.Ucall) { sets[syncArg(u)] = harvest() })
		Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 1, Entries: blocks}))
		Expect(sets[1]).To(HaveLen(int(pages)), "every touched page dirty")
		AddReportEntry("pages dirty after the discard alone", len(sets[2]))
		var want []uint64
		for i := uint64(0); i < pagesPer; i++ {
			want = append(want, rewritten*pagesPer+i)
		}
		Expect(sets[3]).To(Equal(want), "exactly the re-written block's pages")
	}, SpecTimeout(specTimeout))

	It("reports racing with writes on another vCPU lose no write", taxonomy.Stress, taxonomy.Needs(hv.CapMultiVCPU), func(ctx SpecContext) {
		// Even blocks are the reporter's, odd blocks the writer's, so every
		// discard has written neighbours on both sides.
		const pairs, rounds = 32, 3
		var even []uint64
		for i := 0; i < pairs; i++ {
			even = append(even, ramGPA+uint64(2*i)*block)
		}
		var rs []pagereport.Op
		rs = append(rs, op(pagereport.OpInit, 0, 0)...)
		for k := 0; k < rounds; k++ {
			rs = append(rs, ops(pagereport.OpAlloc, 0, pairs, touched+uint64(k))...)
			rs = append(rs, ops(pagereport.OpFree, 0, pairs, 0)...)
		}
		rs = append(rs, op(pagereport.OpSync, 0, 1)...)
		var stop uint64
		r := newRig(b, rigConfig{blocks: 2 * pairs, vcpus: 2,
			orders: []pagereport.OrderBlocks{{Order: pagereport.MinOrder, Blocks: even}},
			script: rs,
			others: func(g *guest.Guest, p *guest.Program) {
				var err error
				stop, err = g.Alloc(8, 8)
				Expect(err).NotTo(HaveOccurred())
				emitWriter(p, stop, pairs)
			}})
		var mu sync.Mutex
		var iterations uint64
		r.run(ctx, func(u *guest.Ucall) error {
			switch {
			case u.VCPU == 0 && u.Stage() == pagereport.StageSync:
				return r.g.VM.Store64(stop, 1)
			case u.VCPU == 1 && u.Stage() == stageWriterDone:
				mu.Lock()
				iterations = u.Args[1]
				mu.Unlock()
			}
			return nil
		})
		Expect(r.counters()).To(Equal(pagereport.Counters{Reports: rounds, Entries: rounds * pairs}))
		AddReportEntry("writer passes over its blocks", iterations)
		Expect(iterations).To(BeNumerically(">", 0))
		mem := r.ram.Bytes()
		for i := 0; i < pairs; i++ {
			for pg := uint64(0); pg < pagesPer; pg++ {
				off := uint64(2*i+1)*block + pg*hv.PageSize
				got := uint64(0)
				for k := uint64(0); k < 8; k++ {
					got |= uint64(mem[off+k]) << (8 * k)
				}
				if got != iterations {
					Fail(fmt.Sprintf("writer block %d page %d holds %d, the last pass wrote %d", 2*i+1, pg, got, iterations))
				}
			}
		}
	}, SpecTimeout(specTimeout))

	It("a device reset with a report in flight completes it exactly once", func(ctx SpecContext) {
		const blocks = 32
		inFlight := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		r := newRig(b, rigConfig{blocks: blocks,
			dev: pagereport.Config{Async: true, BeforeComplete: func(uint16) {
				once.Do(func() {
					close(inFlight)
					<-release
				})
			}},
			script: script(
				op(pagereport.OpInit, 0, 0),
				ops(pagereport.OpAlloc, 0, blocks, touched),
				ops(pagereport.OpFree, 0, blocks, 0), // held in flight, reset, completed
				op(pagereport.OpSync, 0, 1),
				op(pagereport.OpInit, 0, 0), // the driver sets the device up again
				ops(pagereport.OpAlloc, 0, blocks, touched),
				ops(pagereport.OpFree, 0, blocks, 0),
				op(pagereport.OpSync, 0, 2),
			)})
		resetDone := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			select {
			case <-inFlight:
			case <-ctx.Done():
				resetDone <- ctx.Err()
				return
			}
			go func() { resetDone <- r.g.VM.ResetDevices() }()
			// The reset must wait for the element in flight.
			time.Sleep(20 * time.Millisecond)
			close(release)
		}()
		elements := map[uint64]uint64{}
		r.runSyncs(ctx, func(u *guest.Ucall) { elements[syncArg(u)] = r.dev.Stats().Elements })
		Eventually(resetDone).Should(Receive(BeNil()))
		Expect(elements).To(Equal(map[uint64]uint64{1: 1, 2: 2}), "device elements completed after each report")
		Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 2, Entries: 2 * blocks}), "the guest saw each report complete, none fail")
		used, err := r.g.Bytes(r.rep.Used(), 4)
		Expect(err).NotTo(HaveOccurred())
		Expect(used[2:4]).To(Equal([]byte{1, 0}), "the queue set up after the reset completed exactly one element")
		Expect(r.dev.Stats().Resets).To(BeNumerically(">=", 1))
	}, SpecTimeout(specTimeout))
}

// stageWriterDone is the writer vCPU's SYNC: (stage, passes).
const stageWriterDone = 0x77

// emitWriter writes the pass number into every page of the odd blocks of
// guest RAM until the host sets *stop, then checks every page holds the
// last pass and SYNCs it.
func emitWriter(p *guest.Program, stop uint64, pairs int) {
	p.Xor(asm.R8D, asm.R8D)
	pass := p.Here()
	p.Inc(asm.R8)
	eachPage(p, pairs, func() { p.Mov(asm.Q(asm.RSI, 0), asm.R8) })
	p.MovAbs(asm.RAX, stop)
	p.Cmp(asm.Q(asm.RAX, 0), asm.Imm(0))
	p.Jcc(asm.CondE, pass)
	eachPage(p, pairs, func() { p.AssertEq(asm.Q(asm.RSI, 0), asm.R8, "writer: a write was lost") })
	p.Sync(stageWriterDone, asm.R8)
	p.Done()
}

// eachPage emits body for each page of the odd blocks, with RSI at it.
func eachPage(p *guest.Program, pairs int, body func()) {
	p.MovAbs(asm.RBX, ramGPA+block)
	p.Mov(asm.ECX, asm.Imm(int64(pairs)))
	blk := p.Here()
	p.Mov(asm.RSI, asm.RBX)
	p.Mov(asm.EDX, asm.Imm(pagesPer))
	pg := p.Here()
	body()
	p.Add(asm.RSI, asm.Imm(hv.PageSize))
	p.Dec(asm.EDX)
	p.Jcc(asm.CondNE, pg)
	p.Add(asm.RBX, asm.Imm(2*block))
	p.Dec(asm.ECX)
	p.Jcc(asm.CondNE, blk)
}
