package pagefault

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// Parameters of the demand_paging spec (--param name=value), after the
// kernel's demand_paging_test flags.
const (
	paramPages   = "pagefault.pages"    // pages per vCPU (-b)
	paramDelay   = "pagefault.delay_us" // handler delay in µs (-d)
	paramSamples = "pagefault.samples"  // runs per vCPU count
)

// regionGPA is where vCPU i's demand-paged region starts: one slot each,
// so each has its own userfaultfd and reader, like demand_paging_test
// without -a.
func regionGPA(i int) uint64 { return 0x8000_0000 + uint64(i)<<28 }

func intParam(b *framework.Backend, name string, def int) int {
	GinkgoHelper()
	if b.Env == nil {
		return def
	}
	v, err := strconv.Atoi(b.Env.Param(name, strconv.Itoa(def)))
	Expect(err).NotTo(HaveOccurred(), "--param %s", name)
	Expect(v).To(BeNumerically(">=", 0), "--param %s", name)
	return v
}

// demandPaging measures pages per second served through demand paging:
// every vCPU writes each page of its own region once, and each first touch
// is a missing-page fault the handler answers (MISSING mode, a page of
// 0xAB as the kernel test copies).
func demandPaging(b *framework.Backend, mode guest.Mode) {
	Describe("demand_paging", Serial, taxonomy.Perf, framework.ModeLabel(mode), taxonomy.Needs(hv.CapUserfault), func() {
		for _, n := range []int{1, 2} {
			It(fmt.Sprintf("%d vcpu [%s]", n, mode), func(ctx SpecContext) {
				b.Require(hv.CapUserfault)
				if n > 1 {
					b.Require(hv.CapMultiVCPU)
				}
				pages := intParam(b, paramPages, 512)
				delay := time.Duration(intParam(b, paramDelay, 0)) * time.Microsecond
				samples := intParam(b, paramSamples, 5)
				Expect(pages).To(BeNumerically(">", 0))
				exp := gmeasure.NewExperiment(fmt.Sprintf("demand paging, %d vcpu, %d pages each, handler delay %v", n, pages, delay))
				exp.Sample(func(int) {
					rate, perVCPU := demandPagingRun(b, mode, n, pages, delay, ctx)
					exp.RecordValue("overall", rate, gmeasure.Units("pages/s"), gmeasure.Precision(0))
					exp.RecordValue("per vcpu", perVCPU, gmeasure.Units("pages/s"), gmeasure.Precision(0))
				}, gmeasure.SamplingConfig{N: samples, Duration: time.Minute})
				// Added once sampled, so the report shows every sample.
				AddReportEntry(exp.Name, exp)
				med := exp.GetStats("overall").ValueFor(gmeasure.StatMedian)
				AddReportEntry("median overall demand paging rate (pages/s)", fmt.Sprintf("%.0f", med))
				AddReportEntry("median per-vcpu demand paging rate (pages/s)", fmt.Sprintf("%.0f", exp.GetStats("per vcpu").ValueFor(gmeasure.StatMedian)))
			}, SpecTimeout(2*time.Minute))
		}
	})
}

// demandPagingRun builds a fresh guest (the first touches must be first),
// runs one pass on every vCPU and returns the overall and per-vCPU rates.
func demandPagingRun(b *framework.Backend, mode guest.Mode, n, pages int, delay time.Duration, ctx SpecContext) (float64, float64) {
	GinkgoHelper()
	g, err := guest.New(b.HV, guest.Config{Mode: mode, VCPUs: n, Output: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	defer g.Close()
	size := uint64(pages) * hv.PageSize
	var served atomic.Int64
	fill := func(f hv.Fault, page []byte) error {
		if delay > 0 {
			time.Sleep(delay)
		}
		for i := range page {
			page[i] = 0xab
		}
		served.Add(1)
		return nil
	}
	for i := 0; i < n; i++ {
		mem, err := hv.NewMemory(size, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		defer mem.Close()
		slot := uint32(10 + i)
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: slot, GPA: regionGPA(i), Size: size, Memory: mem})).To(Succeed())
		Expect(g.PT.Map(regionGPA(i), regionGPA(i), size, guest.PTEWrite|guest.PTEUser)).To(Succeed())
		Expect(g.VM.SetMissingPageHandler(slot, fill)).To(Succeed())
	}
	// RDI is the vCPU index: region base = 0x80000000 + RDI<<28.
	p := g.Program()
	p.Sync(0) // code, stack and ucall page are in before the clock starts
	p.Mov(asm.RBX, asm.RDI)
	p.Shl(asm.RBX, asm.Imm(28))
	p.MovAbs(asm.RAX, regionGPA(0))
	p.Add(asm.RBX, asm.RAX)
	p.Mov(asm.ECX, asm.Imm(int64(pages)))
	p.MovAbs(asm.RAX, 0x0123456789abcdef)
	loop := p.Here()
	p.Mov(asm.Q(asm.RBX, 0), asm.RAX)
	p.Add(asm.RBX, asm.Imm(hv.PageSize))
	p.Dec(asm.ECX)
	p.Jcc(asm.CondNE, loop)
	p.Sync(1)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	rctx := framework.GuestContext(ctx, time.Minute)
	runTo := func(i int, stage uint64) error {
		ev, err := g.Run(rctx, i)
		if err != nil {
			return err
		}
		if ev.Ucall == nil || ev.Ucall.Cmd != guest.UcallSync || ev.Ucall.Stage() != stage {
			return fmt.Errorf("vcpu %d: want SYNC %d, got %+v", i, stage, ev)
		}
		return nil
	}
	for i := 0; i < n; i++ {
		Expect(runTo(i, 0)).To(Succeed())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = runTo(i, 1)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		Expect(err).NotTo(HaveOccurred(), "vcpu %d", i)
	}
	Expect(served.Load()).To(Equal(int64(n*pages)), "one fault per first touch")
	rate := float64(n*pages) / elapsed.Seconds()
	return rate, rate / float64(n)
}
