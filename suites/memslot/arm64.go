package memslot

// The memslot area's arm64 specs: slots added, moved and deleted between
// two stages of a running arm64 guest, which must see each change at
// stage 2 on its next access (memory where a slot is, an MMIO exit where
// none is); the limits and bad input (arm64limits.go), a slot changed
// under a reading guest and the guest's code slot deleted
// (arm64running.go), VMs of other IPA sizes (arm64ipa.go), and
// memslot_perf_test per granule (arm64perf.go).

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.RegisterArch(taxonomy.Memslot, hv.ArchARM64, arm64Specs) }

const (
	a64SpecTimeout = 60 * time.Second
	// Two 64 KiB guest-physical windows outside slot 0, both mapped at
	// stage 1 (VA == PA) from the start; slot 1 comes and goes between
	// them. 64 KiB is one page of every granule.
	a64WinA    = 0x4000_0000
	a64WinB    = 0x4800_0000
	a64WinSize = 0x10000
	a64Slot    = 1
	a64Off     = 0x200
	a64Pattern = 0x5107_0000_feed_0001
	a64Answer  = 0x0000_1111_2222_3333 // the host's answer to an MMIO read
)

func arm64Specs(b *framework.Backend) {
	// setup builds a guest with both windows mapped, the slot's memory
	// holding the pattern, and a program that reads window A, then
	// window B, then window A again, with a SYNC before each read
	// (stages 1, 2, 3) and the values read at stage 4.
	setup := func() (*a64guest.Guest, *hv.Memory) {
		GinkgoHelper()
		mem, err := hv.NewMemory(a64WinSize, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mem.Close) // after the guest's cleanup, registered later
		binary.LittleEndian.PutUint64(mem.Bytes()[a64Off:], a64Pattern)
		g := b.NewARM64Guest(a64guest.Config{})
		for _, w := range []uint64{a64WinA, a64WinB} {
			Expect(g.MapIdentity(w, a64WinSize, a64guest.KernelData)).To(Succeed())
		}
		p := g.Program()
		p.Mov(a64.X10, a64.Imm(a64WinA+a64Off))
		p.Mov(a64.X11, a64.Imm(a64WinB+a64Off))
		p.Sync(1)
		p.Ldr(a64.X4, a64.Ptr(a64.X10, 0))
		p.Sync(2)
		p.Ldr(a64.X5, a64.Ptr(a64.X11, 0))
		p.Sync(3)
		p.Ldr(a64.X6, a64.Ptr(a64.X10, 0))
		p.Sync(4, a64.X4, a64.X5, a64.X6)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		return g, mem
	}
	// run runs to the next SYNC, answering MMIO reads (which must be at
	// the offset in a window) with a64Answer, and returns the stage and
	// the windows the MMIO reads hit.
	run := func(ctx context.Context, g *a64guest.Guest) (*guest.Ucall, []uint64) {
		GinkgoHelper()
		var mmio []uint64
		for {
			ev, err := g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			if m, ok := ev.Exit.(*hv.MMIOExit); ok {
				Expect([]any{m.Write, m.Len, m.GPA % a64WinSize}).To(Equal([]any{false, 8, uint64(a64Off)}), "MMIO exit %v", m)
				mmio = append(mmio, m.GPA-a64Off)
				m.SetValue(a64Answer)
				continue
			}
			if ev.Exit != nil {
				Fail(g.Unexpected(0, ev.Exit).Error())
			}
			Expect(ev.Ucall.Cmd).To(Equal(guest.UcallSync), "ucall %v", ev.Ucall)
			return ev.Ucall, mmio
		}
	}
	stage := func(ctx context.Context, g *a64guest.Guest, want uint64, wantMMIO ...uint64) *guest.Ucall {
		GinkgoHelper()
		u, mmio := run(ctx, g)
		Expect(u.Stage()).To(Equal(want))
		if wantMMIO == nil {
			wantMMIO = []uint64{}
		}
		if mmio == nil {
			mmio = []uint64{}
		}
		Expect(mmio).To(Equal(wantMMIO), "MMIO reads before SYNC %d (window bases)", want)
		return u
	}

	It("a slot added while the guest runs is memory on its next access", func(ctx SpecContext) {
		g, mem := setup()
		stage(ctx, g, 1)
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64Slot, GPA: a64WinA, Size: a64WinSize, Memory: mem})).To(Succeed())
		stage(ctx, g, 2)
		stage(ctx, g, 3, a64WinB) // window B has no slot
		u := stage(ctx, g, 4)
		Expect(u.Args[1:]).To(Equal([]uint64{a64Pattern, a64Answer, a64Pattern}))
	}, SpecTimeout(a64SpecTimeout))

	It("a deleted slot's accesses become mmio exits", func(ctx SpecContext) {
		g, mem := setup()
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64Slot, GPA: a64WinA, Size: a64WinSize, Memory: mem})).To(Succeed())
		stage(ctx, g, 1)
		stage(ctx, g, 2) // window A read from the slot
		Expect(g.VM.DeleteMemslot(a64Slot)).To(Succeed())
		stage(ctx, g, 3, a64WinB)
		u := stage(ctx, g, 4, a64WinA) // the slot is gone
		Expect(u.Args[1:]).To(Equal([]uint64{a64Pattern, a64Answer, a64Answer}))
	}, SpecTimeout(a64SpecTimeout))

	It("a moved slot follows its new gpa", func(ctx SpecContext) {
		g, mem := setup()
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64Slot, GPA: a64WinA, Size: a64WinSize, Memory: mem})).To(Succeed())
		stage(ctx, g, 1)
		stage(ctx, g, 2)
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64Slot, GPA: a64WinB, Size: a64WinSize, Memory: mem})).To(Succeed())
		stage(ctx, g, 3) // window B is the slot now
		u := stage(ctx, g, 4, a64WinA)
		Expect(u.Args[1:]).To(Equal([]uint64{a64Pattern, a64Pattern, a64Answer}))
		Expect(g.VM.Memslots()).To(ContainElement(HaveField("GPA", uint64(a64WinB))), "the slot list")
	}, SpecTimeout(a64SpecTimeout))

	Describe("limits", func() { a64LimitSpecs(b) })
	Describe("IPA size", func() { a64IPASpecs(b) })
	Describe("running guest", func() { a64RunningSpecs(b) })
	a64StressSpecs(b)
	Describe("perf", taxonomy.Perf, Serial, func() { a64PerfSpecs(b) })
}
