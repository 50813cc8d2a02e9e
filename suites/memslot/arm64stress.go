package memslot

// memslot_modification_stress_test on arm64: the host side is the x86
// spec's (runStressHost), the writer an AArch64 loop. Each vCPU (X0 = its
// index at entry) stores the pass number into every page of its region
// of slot 1 (stage 1 VA == PA), SYNCs with it and stops once the host
// sets the flag; the host adds and deletes a one-page slot just below
// the region meanwhile and checks every completed pass page by page.

import (
	"context"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// a64StressWriter is stressWriter in AArch64: X21 the vCPU's region, X19
// the stop flag's address, X20 the pass (callee-saved registers: the
// ucall keeps them).
func a64StressWriter(g *a64guest.Guest, stop, pages uint64) *a64guest.Program {
	p := g.Program()
	pass, inner := p.NewLabel(), p.NewLabel()
	p.Mov(a64.X9, a64.Imm(int64(pages*hv.PageSize)))
	p.Mov(a64.X21, a64.Imm(stressGPA))
	p.Madd(a64.X21, a64.X0, a64.X9, a64.X21)
	p.Mov(a64.X19, a64.Imm(int64(stop)))
	p.Mov(a64.X20, a64.Imm(0))
	p.Mov(a64.X12, a64.Imm(hv.PageSize))
	p.Bind(pass)
	p.Add(a64.X20, a64.X20, a64.Imm(1))
	p.Mov(a64.X10, a64.X21)
	p.Mov(a64.X11, a64.Imm(int64(pages)))
	p.Bind(inner)
	p.Str(a64.X20, a64.Ptr(a64.X10, 0))
	p.Add(a64.X10, a64.X10, a64.X12)
	p.Subs(a64.X11, a64.X11, a64.Imm(1))
	p.Bcond(a64.NE, inner)
	p.Sync(1, a64.X20)
	p.Ldr(a64.X1, a64.Ptr(a64.X19, 0))
	p.Cbz(a64.X1, pass)
	p.Done()
	return p
}

func runA64Stress(ctx context.Context, b *framework.Backend) {
	prm, err := readStressParams(b)
	Expect(err).NotTo(HaveOccurred())
	if prm.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	g := b.NewARM64Guest(a64guest.Config{VCPUs: prm.vcpus})
	total := prm.pages * uint64(prm.vcpus)
	mem, err := hv.NewMemory(total*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close) // after the guest's cleanup, registered earlier
	Expect(g.MapIdentity(stressGPA, total*hv.PageSize, a64guest.KernelData)).To(Succeed())
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: stressSlot, GPA: stressGPA, Size: total * hv.PageSize, Memory: mem})).To(Succeed())
	stopGPA, err := g.Alloc(8, 8)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(a64StressWriter(g, stopGPA, prm.pages))).To(Succeed())
	runStressHost(ctx, prm, stressRig{vm: g.VM, region: shared{mem.Bytes()}, stop: shared{g.Mem.Bytes()[stopGPA : stopGPA+8]}, runAll: g.RunAll, label: "arm64"})
}

// a64StressSpecs registers the stress; its timeout allows for TCG.
func a64StressSpecs(b *framework.Backend) {
	It("modification stress: a dummy slot added and deleted while vCPUs write, no write lost", taxonomy.Stress, func(ctx SpecContext) {
		runA64Stress(ctx, b)
	}, SpecTimeout(5*time.Minute))
}
