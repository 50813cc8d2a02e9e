package dirtylog

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest/desc"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// BenchmarkHarvest does what tools/refbench/dirtylog.c does in C, with the
// same guest, memory layout and ioctls, so `make bench` can put the Go
// harness's ns/page beside C's: a CPL3 guest stores into every page of a
// logged slot once per pass and ends the pass with an MMIO write; only the
// harvest is timed (GetDirtyLog; GetDirtyLog + ClearDirtyLog; the ring walk
// + ResetDirtyRings, at ring-full exits too); ns/page is the median pass's
// harvest time per page, mean-ns/page the mean. The guest is built here by
// hand, not with harness/guest, because the standard guest's larger
// shadow page tables make every harvest ioctl dearer and the comparison
// is of the harness, not of the guests. ns/op is per pass.
var (
	benchMem  = flag.String("dirtylog.mem", "16M", "logged memory of BenchmarkHarvest (refbench-dirtylog's MIB)")
	benchRing = flag.Int("dirtylog.ring", 65536, "dirty ring bytes of BenchmarkHarvest (refbench-dirtylog's RING_BYTES)")
)

// The layout of tools/refbench/dirtylog.c.
const (
	rawLowSize  = 8 << 20
	rawTestGPA  = 1 << 30
	rawMMIOGPA  = 16 << 20
	rawCodeGPA  = 0x10000
	rawStackTop = 0x200000
	rawPTPool   = 0x400000
)

// rawGuest is the C program's guest on an hv backend.
type rawGuest struct {
	vm    hv.VM
	vcpu  hv.VCPU
	pages uint64
	seen  *pageSet
	// shortResets counts harvests whose first ResetDirtyRings fell short
	// (a signal was pending; see resetAll).
	shortResets int
}

func newRawGuest(b testing.TB, h hv.Hypervisor, cfg hv.VMConfig, pages uint64) *rawGuest {
	b.Helper()
	vm, err := h.NewVM(cfg)
	if err != nil {
		b.Fatal(err)
	}
	low, err := hv.NewMemory(rawLowSize, hv.Anonymous)
	if err != nil {
		b.Fatal(err)
	}
	mem, err := hv.NewMemory(pages*hv.PageSize, hv.Anonymous)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		vm.Close()
		low.Close()
		mem.Close()
	})
	if err := buildRaw(low.Bytes(), pages); err != nil {
		b.Fatal(err)
	}
	for _, s := range []hv.Memslot{
		{Slot: 0, GPA: 0, Size: rawLowSize, Memory: low},
		{Slot: 1, GPA: rawTestGPA, Size: pages * hv.PageSize, Flags: hv.MemLogDirty, Memory: mem},
	} {
		if err := vm.SetMemslot(s); err != nil {
			b.Fatal(err)
		}
	}
	v, err := vm.NewVCPU(0)
	if err != nil {
		b.Fatal(err)
	}
	sr, err := v.Sregs()
	if err != nil {
		b.Fatal(err)
	}
	gdt := rawGDT()
	sr.CS = gdt.code.Segment(gdt.cs)
	d := gdt.data.Segment(gdt.ds)
	sr.DS, sr.ES, sr.FS, sr.GS, sr.SS = d, d, d, d, d
	sr.TR = gdt.tss.TR(gdt.tr)
	sr.GDT = gdt.table.DTable(rawGDTGPA)
	sr.CR3 = 0x1000
	sr.CR4 = hv.CR4PAE
	sr.CR0 = 0x80050033
	sr.EFER = hv.EFERLME | hv.EFERLMA
	if err := v.SetSregs(&sr); err != nil {
		b.Fatal(err)
	}
	r := hv.Regs{RIP: rawCodeGPA, RSP: rawStackTop, RFLAGS: hv.FlagsFixed, RAX: 1,
		RBX: rawTestGPA, RCX: rawTestGPA + pages*hv.PageSize, R8: rawMMIOGPA}
	if err := v.SetRegs(&r); err != nil {
		b.Fatal(err)
	}
	return &rawGuest{vm: vm, vcpu: v, pages: pages, seen: newPageSet(pages)}
}

// rawGDTGPA and rawTSSGPA place the raw guest's GDT and (all-zero) TSS.
const rawGDTGPA, rawTSSGPA = 0x5000, 0x6000

// rawGuestGDT is the raw guest's GDT: flat ring-0 and ring-3 segments and
// a TSS, with the descriptors and selectors its vCPU loads.
type rawGuestGDT struct {
	table      *desc.GDT
	code, data desc.Descriptor
	tss        desc.TSSDescriptor
	cs, ds, tr desc.Selector
}

func rawGDT() rawGuestGDT {
	g := rawGuestGDT{table: desc.NewGDT(), code: desc.Code64(3), data: desc.Data(3),
		tss: desc.NewTSSDescriptor(rawTSSGPA, desc.TSSHeaderSize)}
	g.table.Add(desc.Code64(0))
	g.table.Add(desc.Data(0))
	g.cs = g.table.Add(g.code)
	g.ds = g.table.Add(g.data)
	g.tr = g.table.AddTSS(g.tss)
	return g
}

// buildRaw writes the page tables, GDT, TSS and the pass loop into low.
func buildRaw(low []byte, pages uint64) error {
	le := binary.LittleEndian
	q := func(addr, v uint64) { le.PutUint64(low[addr:], v) }
	q(0x1000, 0x2000|7)
	q(0x2000, 0x3000|7)
	q(0x2008, 0x4000|7)
	for i := uint64(0); i < rawLowSize>>21; i++ {
		q(0x3000+8*i, i<<21|0x87)
	}
	q(0x3000+8*(rawMMIOGPA>>21), rawMMIOGPA|0x87)
	npt := (pages + 511) / 512
	if rawPTPool+npt*hv.PageSize > rawLowSize {
		return fmt.Errorf("%d pages: too many for the page-table pool", pages)
	}
	for t := uint64(0); t < npt; t++ {
		pt := rawPTPool + t*hv.PageSize
		q(0x4000+8*t, pt|7)
		for e := uint64(0); e < 512 && t*512+e < pages; e++ {
			q(pt+8*e, (rawTestGPA+(t*512+e)*hv.PageSize)|7)
		}
	}
	copy(low[rawGDTGPA:], rawGDT().table.Bytes())

	a := asm.New(rawCodeGPA)
	loop := a.Here()
	a.Mov(asm.RDX, asm.RBX)
	inner := a.Here()
	a.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	a.Add(asm.RDX, asm.Imm(hv.PageSize))
	a.Cmp(asm.RDX, asm.RCX)
	a.Jcc(asm.CondB, inner)
	a.Mov(asm.B(asm.R8, 0), asm.AL) // MMIO: the pass is done
	a.Inc(asm.RAX)
	a.Jmp(loop)
	code, err := a.Assemble()
	if err != nil {
		return err
	}
	copy(low[rawCodeGPA:], code)
	return nil
}

// harvestRing walks the ring (each entry's page into seen, as the C
// program does) and resets it; the counts must agree.
func (r *rawGuest) harvestRing() (int, error) {
	n, err := r.vcpu.HarvestDirtyRing(func(slot uint32, off uint64) {
		if slot == 1 && off < r.pages {
			r.seen.add(off)
		}
	})
	if err != nil {
		return n, err
	}
	m, calls, err := resetAll(r.vm, n)
	if calls > 1 {
		r.shortResets++
	}
	if err == nil && m != n {
		err = fmt.Errorf("ResetDirtyRings reset %d entries, %d harvested", m, n)
	}
	return n, err
}

func BenchmarkHarvest(b *testing.B) {
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		b.Skipf("kvm backend unavailable: %v", err)
	}
	b.Cleanup(func() { h.Close() })
	for _, mode := range logModes {
		b.Run(mode.name, func(b *testing.B) { benchHarvest(b, h, mode) })
	}
}

func benchHarvest(b *testing.B, h hv.Hypervisor, mode *logMode) {
	for _, c := range mode.caps {
		if err := h.Caps().Require(c); err != nil {
			b.Skip(err)
		}
	}
	size, err := parseSize(*benchMem)
	if err != nil {
		b.Fatal(err)
	}
	pages := size / hv.PageSize
	g := newRawGuest(b, h, mode.vmConfig(*benchRing), pages)
	bm := make([]uint64, bitmapWords(pages))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var total time.Duration
	harvested := 0
	var perPage []float64
	// The run loop and the harvests run on the vCPU's thread (inside Do),
	// as the C program runs everything on its one thread. Pass 0
	// populates and arms logging for every page; it is not timed.
	err = g.vcpu.Do(func() error {
		for i := -1; i < b.N; i++ {
			var d time.Duration
			n := 0
			for {
				exit, err := g.vcpu.Run(ctx)
				if err != nil {
					return err
				}
				if exit.Kind() == hv.ExitMMIO {
					break
				}
				if exit.Kind() != hv.ExitDirtyRingFull {
					return fmt.Errorf("unexpected exit %v", exit)
				}
				start := time.Now()
				k, err := g.harvestRing()
				d += time.Since(start)
				n += k
				if err != nil {
					return err
				}
			}
			start := time.Now()
			switch {
			case mode.ring:
				k, err := g.harvestRing()
				if err != nil {
					return err
				}
				n += k
			default:
				if err := g.vm.GetDirtyLog(1, bm); err != nil {
					return err
				}
				if mode.manual {
					if err := g.vm.ClearDirtyLog(1, 0, pages, bm); err != nil {
						return err
					}
				}
				n = int(pages)
			}
			d += time.Since(start)
			if i >= 0 {
				total += d
				harvested += n
				perPage = append(perPage, float64(d.Nanoseconds())/float64(n))
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	// The median pass is the comparison with C: a Go process has a tail
	// of slow system calls (runtime threads, preemption signals) that a
	// single-threaded C loop does not, and the mean shows it.
	sort.Float64s(perPage)
	b.ReportMetric(perPage[len(perPage)/2], "ns/page")
	b.ReportMetric(float64(total.Nanoseconds())/float64(harvested), "mean-ns/page")
	if mode.ring {
		b.ReportMetric(float64(g.shortResets), "short-resets")
	}
}
