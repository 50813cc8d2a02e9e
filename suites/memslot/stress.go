package memslot

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// memslot_modification_stress_test: vCPUs write their memory pass after
// pass while the host adds and deletes a dummy slot (one page, just below
// the vCPUs' memory, id 7 as DUMMY_MEMSLOT_INDEX) as fast as it can. The
// kernel test passes when nothing asserts; here every pass of every vCPU
// is also checked page by page, so a write lost across a memslot update
// fails the spec.
const (
	stressGPA   = 0x4000_0000
	stressSlot  = 1
	dummySlot   = 7
	stressStop  = 0 // shared-page offset of the stop flag
	stressPages = 1 << 20 / hv.PageSize
)

type stressParams struct {
	iterations int
	vcpus      int
	pages      uint64 // per vCPU
	delay      time.Duration
}

func readStressParams(b *framework.Backend) (stressParams, error) {
	p := params{b.Env}
	var s stressParams
	var err error
	if s.iterations, err = p.count(ParamStressIterations, 1000); err != nil {
		return s, err
	}
	def := 2
	if !b.Caps.Has(hv.CapMultiVCPU) {
		def = 1
	}
	if s.vcpus, err = p.count(ParamStressVCPUs, def); err != nil {
		return s, err
	}
	mem, err := p.size(ParamStressMem, stressPages*hv.PageSize)
	if err != nil {
		return s, err
	}
	s.pages = (mem + hv.PageSize - 1) / hv.PageSize
	s.delay, err = p.duration(ParamStressDelay, 0)
	return s, err
}

// stressWriter: forever, store the pass number into every page of the
// vCPU's region, SYNC(1, pass), and stop once the host sets the flag.
func stressWriter(g *guest.Guest, stop, pages uint64) *guest.Program {
	p := g.Program()
	p.MovAbs(asm.R8, pages*hv.PageSize)
	p.Imul(asm.R8, asm.RDI)
	p.MovAbs(asm.RAX, stressGPA)
	p.Add(asm.R8, asm.RAX)
	p.MovAbs(asm.R9, stop)
	p.Xor(asm.R10, asm.R10)
	pass := p.Here()
	p.Inc(asm.R10)
	p.Mov(asm.RDX, asm.R8)
	p.MovAbs(asm.RCX, pages)
	inner := p.Here()
	p.Mov(asm.Q(asm.RDX, 0), asm.R10)
	p.Add(asm.RDX, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, inner)
	p.Sync(1, asm.R10)
	p.Cmp(asm.Q(asm.R9, 0), asm.Imm(0))
	p.Jcc(asm.CondE, pass)
	p.Done()
	return p
}

// stressResult is the spec's report entry.
type stressResult struct {
	Operations int           `json:"operations"` // slot adds plus deletes
	Passes     []uint64      `json:"passes"`     // full write passes per vCPU, each checked
	Elapsed    time.Duration `json:"elapsed_ns"`
}

func (s stressResult) String() string {
	return fmt.Sprintf("%d memslot operations (add+delete of slot %d) in %v while %d vCPUs completed %v checked write passes",
		s.Operations, dummySlot, s.Elapsed, len(s.Passes), s.Passes)
}

func runStress(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	prm, err := readStressParams(b)
	Expect(err).NotTo(HaveOccurred())
	if prm.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	g := b.NewGuest(guest.Config{Mode: cpl, VCPUs: prm.vcpus})
	total := prm.pages * uint64(prm.vcpus)
	mem, err := hv.NewMemory(total*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mem.Close)
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: stressSlot, GPA: stressGPA, Size: total * hv.PageSize, Memory: mem})).To(Succeed())
	Expect(g.PT.Map(stressGPA, stressGPA, total*hv.PageSize, guest.PTEWrite|guest.PTEUser)).To(Succeed())
	stopGPA, err := g.Alloc(8, 8)
	Expect(err).NotTo(HaveOccurred())
	sb, err := g.Bytes(stopGPA, 8)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(stressWriter(g, stopGPA, prm.pages))).To(Succeed())
	runStressHost(ctx, prm, stressRig{vm: g.VM, region: shared{mem.Bytes()}, stop: shared{sb}, runAll: g.RunAll, label: cpl.String()})
}

// stressRig is what the host side of the stress needs of a guest whose
// vCPUs run the writer (stressWriter, a64StressWriter): vCPU i's pages
// at i*prm.pages of region, the stop flag at stop's first word.
type stressRig struct {
	vm           hv.VM
	region, stop shared
	runAll       func(ctx context.Context, onSync func(*guest.Ucall) error) error
	label        string // the experiment's, e.g. the CPL
}

// runStressHost runs the vCPUs, adds and deletes the dummy slot (one
// page just below stressGPA) prm.iterations times, stops the vCPUs and
// checks every pass each vCPU completed, page by page.
func runStressHost(ctx context.Context, prm stressParams, r stressRig) {
	GinkgoHelper()
	dummyMem, err := hv.NewMemory(hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(dummyMem.Close)
	dummy := hv.Memslot{Slot: dummySlot, GPA: stressGPA - hv.PageSize, Size: hv.PageSize, Memory: dummyMem}

	passes := make([]atomic.Uint64, prm.vcpus)
	onSync := func(u *guest.Ucall) error {
		if len(u.Args) < 2 {
			return fmt.Errorf("vcpu %d: SYNC with %d arguments", u.VCPU, len(u.Args))
		}
		pass := u.Args[1]
		base := uint64(u.VCPU) * prm.pages
		for p := uint64(0); p < prm.pages; p++ {
			if v := r.region.load((base + p) * hv.PageSize); v != pass {
				return fmt.Errorf("vcpu %d pass %d: page %d of its region holds %d: a write was lost", u.VCPU, pass, p, v)
			}
		}
		passes[u.VCPU].Store(pass)
		return nil
	}
	gctx := framework.GuestContext(ctx, time.Duration(prm.iterations)*(time.Millisecond+prm.delay)+time.Minute)
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = r.runAll(gctx, onSync)
	}()

	By(fmt.Sprintf("adding and deleting slot %d %d times while %d vCPUs write", dummySlot, prm.iterations, prm.vcpus))
	start := time.Now()
	ops := 0
	var opErr error
	for i := 0; i < prm.iterations && opErr == nil; i++ {
		if opErr = r.vm.SetMemslot(dummy); opErr != nil {
			break
		}
		ops++
		if opErr = r.vm.DeleteMemslot(dummySlot); opErr != nil {
			break
		}
		ops++
		if prm.delay > 0 {
			time.Sleep(prm.delay)
		}
	}
	elapsed := time.Since(start)
	r.stop.store(0, 1)
	wg.Wait()
	res := stressResult{Operations: ops, Elapsed: elapsed}
	for i := range passes {
		res.Passes = append(res.Passes, passes[i].Load())
	}
	AddReportEntry("memslot modification stress", res)
	exp := gmeasure.NewExperiment(fmt.Sprintf("memslot modification stress [%s]", r.label))
	exp.RecordValue("memslot operations", float64(ops))
	if ops > 0 {
		exp.RecordValue("add or delete", float64(elapsed.Nanoseconds())/float64(ops), gmeasure.Units("ns/op"))
	}
	AddReportEntry(exp.Name, exp)
	Expect(opErr).NotTo(HaveOccurred(), "memslot operation %d", ops)
	Expect(runErr).NotTo(HaveOccurred())
	Expect(ops).To(Equal(2 * prm.iterations))
	for i, p := range res.Passes {
		Expect(p).To(BeNumerically(">", 0), "vcpu %d completed no checked pass", i)
	}
	Expect(r.vm.Memslots()).NotTo(ContainElement(HaveField("Slot", uint32(dummySlot))), "the dummy slot after the last delete")
}
