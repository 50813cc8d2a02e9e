package dirtylog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// The perf specs follow the kernel's dirty_log_perf_test: populate the
// memory, enable logging, then per iteration let every vCPU dirty all of
// its memory once and harvest, then disable logging, timing each phase.
// No phase has a threshold: the numbers go to the report (gmeasure
// medians, minima and maxima) for nightly comparisons.

type perfParams struct {
	mem        uint64
	iterations int
	vcpus      int
	ring       int
}

func readPerfParams(b *framework.Backend) (perfParams, error) {
	p := params{env: b.Env}
	var c perfParams
	var err error
	// 64 MiB keeps `make test` short; nightly runs pass
	// --param dirtylog.perf.mem=256M as the kernel test's default is 1G.
	if c.mem, err = p.size(ParamPerfMem, 64<<20); err != nil {
		return c, err
	}
	if c.iterations, err = p.count(ParamPerfIterations, 3); err != nil {
		return c, err
	}
	if c.vcpus, err = p.count(ParamPerfVCPUs, 1); err != nil {
		return c, err
	}
	ring, err := p.size(ParamPerfRing, 64<<10)
	c.ring = int(ring)
	if c.mem%(uint64(c.vcpus)*hv.PageSize) != 0 {
		return c, fmt.Errorf("--param %s: %d bytes do not split into %d vCPUs' whole pages", ParamPerfMem, c.mem, c.vcpus)
	}
	return c, err
}

// passWriter builds the perf guest: forever, store the control word (the
// iteration) into every page of the vCPU's region, then SYNC.
func passWriter(g *guest.Guest, base, region, ctl uint64) *guest.Program {
	p := g.Program()
	p.MovAbs(asm.RBX, region*hv.PageSize)
	p.Imul(asm.RBX, asm.RDI)
	p.MovAbs(asm.RAX, base)
	p.Add(asm.RBX, asm.RAX)
	p.MovAbs(asm.R8, ctl)
	pass := p.Here()
	p.Mov(asm.RAX, asm.Q(asm.R8, 0))
	p.Mov(asm.RDX, asm.RBX)
	p.MovAbs(asm.RCX, region)
	inner := p.Here()
	p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	p.Add(asm.RDX, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, inner)
	p.Sync(1)
	p.Jmp(pass)
	return p
}

// perfRun holds one perf spec's guest and the ring harvest counters.
type perfRun struct {
	g    *guest.Guest
	mode *logMode
	slot *testSlot

	mu          sync.Mutex
	harvestTime time.Duration
	entries     int
	reset       int
	seen        *pageSet
}

// harvestRing walks vCPU i's ring (all rings when i < 0) and resets, timed.
func (r *perfRun) harvestRing(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	n := 0
	for k, v := range r.g.VCPUs {
		if i >= 0 && k != i {
			continue
		}
		c, err := v.HarvestDirtyRing(func(slot uint32, off uint64) {
			if slot == r.slot.id && off < r.slot.pages {
				r.seen.add(off)
			}
		})
		if err != nil {
			return err
		}
		n += c
	}
	m, _, err := resetAll(r.g.VM, n)
	r.harvestTime += time.Since(start)
	r.entries += n
	r.reset += m
	return err
}

// pass lets every vCPU write its region once and returns the wall time.
// Each vCPU's loop runs inside its Do, on the vCPU's own thread, so a ring
// harvest there (at every ring-full exit, and with final set after the
// pass) pays no hand-off to that thread, as a C loop would not.
func (r *perfRun) pass(ctx context.Context, final bool) (time.Duration, error) {
	start := time.Now()
	errs := make([]error, len(r.g.VCPUs))
	var wg sync.WaitGroup
	for i, v := range r.g.VCPUs {
		wg.Add(1)
		go func(i int, v hv.VCPU) {
			defer wg.Done()
			errs[i] = v.Do(func() error {
				for {
					ev, err := r.g.Run(ctx, i)
					switch {
					case err != nil:
						return err
					case ev.Exit != nil && ev.Exit.Kind() == hv.ExitDirtyRingFull && r.mode.ring:
						if err := r.harvestRing(i); err != nil {
							return err
						}
					case ev.Ucall != nil && ev.Ucall.Cmd == guest.UcallSync:
						if final && r.mode.ring {
							return r.harvestRing(i)
						}
						return nil
					default:
						return fmt.Errorf("vcpu %d: unexpected stop %v %v", i, ev.Ucall, ev.Exit)
					}
				}
			})
		}(i, v)
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func perPage(d time.Duration, pages int) float64 {
	if pages == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(pages)
}

func runPerf(ctx context.Context, b *framework.Backend, mode *logMode, cpl guest.Mode) {
	mode.require(b)
	prm, err := readPerfParams(b)
	Expect(err).NotTo(HaveOccurred())
	if prm.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	pages := prm.mem / hv.PageSize
	region := pages / uint64(prm.vcpus)
	ring := 0
	if mode.ring {
		ring = prm.ring
	}
	name := fmt.Sprintf("dirtylog %s, %d MiB, %d vCPU [%s]", mode, prm.mem>>20, prm.vcpus, cpl)
	By(fmt.Sprintf("%s: %d iterations; %s=%s, %s=%d, %s=%d", name, prm.iterations,
		ParamPerfMem, fmt.Sprintf("%dM", prm.mem>>20), ParamPerfIterations, prm.iterations, ParamPerfVCPUs, prm.vcpus))

	g := b.NewGuest(guest.Config{Mode: cpl, VCPUs: prm.vcpus, VM: mode.vmConfig(ring)})
	s := addSlot(g, 1, largeSlotGPA, pages, 0)
	ctl, err := g.Alloc(8, 64)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(passWriter(g, s.gpa, region, ctl))).To(Succeed())
	r := &perfRun{g: g, mode: mode, slot: s, seen: newPageSet(pages)}
	exp := gmeasure.NewExperiment(name)
	prec := gmeasure.Precision(time.Microsecond)
	nsPage := gmeasure.Units("ns/page")

	By("populate: first touch of every page, logging off")
	d, err := r.pass(ctx, false)
	Expect(err).NotTo(HaveOccurred())
	exp.RecordDuration("populate", d, prec)
	exp.RecordValue("populate per page", perPage(d, int(pages)), nsPage)

	By("enable dirty logging")
	s.flags = hv.MemLogDirty
	start := time.Now()
	Expect(g.VM.SetMemslot(s.memslot())).To(Succeed())
	exp.RecordDuration("enable logging", time.Since(start), prec)

	bm := make([]uint64, bitmapWords(pages))
	for it := 1; it <= prm.iterations; it++ {
		Expect(g.Store64(ctl, uint64(it))).To(Succeed())
		r.harvestTime, r.entries, r.reset = 0, 0, 0
		r.seen.clear()
		d, err := r.pass(ctx, false)
		Expect(err).NotTo(HaveOccurred(), "iteration %d", it)
		pass := "dirty pass"
		if mode.manual && it == 1 {
			// INITIALLY_SET: nothing is write-protected until the first
			// clear, so this pass takes no faults; kept apart so it does
			// not pass for the minimum of the others.
			pass = "first dirty pass (not write-protected)"
		}
		exp.RecordDuration(pass, d, prec)
		exp.RecordValue(pass+" per page", perPage(d, int(pages)), nsPage)
		dirty := newPageSet(pages)
		if mode.ring {
			Expect(r.harvestRing(-1)).To(Succeed())
			// The pass time above includes the harvests at ring-full
			// exits; they are reported on their own as well.
			exp.RecordDuration("harvest and reset", r.harvestTime, prec)
			exp.RecordValue("harvest and reset per entry", perPage(r.harvestTime, r.entries), gmeasure.Units("ns/entry"))
			Expect(r.reset).To(Equal(r.entries), "iteration %d: entries reset vs harvested", it)
			dirty = r.seen
		} else {
			start := time.Now()
			Expect(g.VM.GetDirtyLog(s.id, bm)).To(Succeed())
			t := time.Since(start)
			exp.RecordDuration("get dirty log", t, prec)
			exp.RecordValue("get per page", perPage(t, int(pages)), nsPage)
			dirty.addWords(bm)
			if mode.manual {
				start := time.Now()
				Expect(g.VM.ClearDirtyLog(s.id, 0, pages, bm)).To(Succeed())
				t := time.Since(start)
				exp.RecordDuration("clear dirty log", t, prec)
				exp.RecordValue("clear per page", perPage(t, int(pages)), nsPage)
			}
		}
		// Not a timing check: a pass that did not dirty every page would
		// make every number above meaningless.
		Expect(dirty.count()).To(Equal(int(pages)), "iteration %d: pages dirty after a full pass", it)
	}

	By("disable dirty logging")
	s.flags = 0
	start = time.Now()
	Expect(g.VM.SetMemslot(s.memslot())).To(Succeed())
	exp.RecordDuration("disable logging", time.Since(start), prec)
	AddReportEntry(exp.Name, exp)
}
