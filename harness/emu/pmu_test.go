package emu

import (
	"errors"
	"golang.org/x/arch/x86/x86asm"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
	"golang.org/x/sys/unix"
)

// wrmsrImm emits a WRMSR of v to idx: four instructions (three moves and
// the WRMSR), which the counting tests below account for.
func wrmsrImm(a *asm.Assembler, idx uint32, v uint64) {
	a.MovAbs(asm.RAX, v&0xffffffff)
	a.MovAbs(asm.RDX, v>>32)
	a.Mov(asm.ECX, asm.Imm(int64(idx)))
	a.Wrmsr()
}

// rdmsrTo stores MSR idx at dataGPA+8*slot.
func rdmsrTo(a *asm.Assembler, idx uint32, slot int32) {
	a.Mov(asm.ECX, asm.Imm(int64(idx)))
	a.Rdmsr()
	a.Shl(asm.RDX, asm.Imm(32))
	a.Or(asm.RAX, asm.RDX)
	a.Mov(asm.RBX, asm.Imm(dataGPA))
	a.Mov(asm.Q(asm.RBX, 8*slot), asm.RAX)
}

// pmuGuest builds a CPL0 test guest whose vCPU has the PMU leaf l (nil:
// the default), optionally with a LAPIC.
func pmuGuest(t testing.TB, l *hv.PMULeaf, irq bool, build func(a *asm.Assembler)) *testGuest {
	t.Helper()
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{IRQChip: irq}}, assemble(t, build))
	if l != nil {
		tb, err := g.vcpu.CPUID()
		if err != nil {
			t.Fatal(err)
		}
		if l.Version == 0 {
			tb.Remove(hv.CPUIDLeafPMU)
		} else {
			tb.SetPMU(*l)
		}
		if err := g.vcpu.SetCPUID(tb); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *testGuest) slot(i int) uint64 { return get64(g.mem.Bytes(), dataGPA+8*uint64(i)) }

// TestPMUExactCounts: instructions, branches and the cycle model over a
// known loop, GP and fixed counters alike. The enabling WRMSR does not
// count, the disabling one does (and its three moves).
func TestPMUExactCounts(t *testing.T) {
	const loops = 10
	g := pmuGuest(t, nil, false, func(a *asm.Assembler) {
		wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
		wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRPerfEvtSel0+1, hv.EventBranches|hv.EvtSelOS|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRPerfEvtSel0+2, hv.EventCoreCycles|hv.EvtSelOS|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRPerfEvtSel0+3, hv.EventInstructions|hv.EvtSelUSR|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRFixedCtrCtrl, hv.FixedCtrOS|hv.FixedCtrOS<<4|hv.FixedCtrOS<<8)
		wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0xf|7*hv.PerfGlobalFixed0)
		a.Mov(asm.ECX, asm.Imm(loops))
		l := a.Here()
		a.Nop()
		a.Nop()
		a.Loop(l)
		wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
		for i := 0; i < 4; i++ {
			rdmsrTo(a, hv.MSRPMC0+uint32(i), int32(i))
		}
		for j := 0; j < 3; j++ {
			rdmsrTo(a, hv.MSRFixedCtr0+uint32(j), int32(4+j))
		}
		done(a)
	})
	g.runDone(t)
	const insts = 1 + 3*loops + 4
	want := []uint64{insts, loops, insts, 0, insts, insts, insts}
	for i, w := range want {
		if got := g.slot(i); got != w {
			t.Errorf("counter slot %d = %d, want %d", i, got, w)
		}
	}
}

// TestPMUOverflow: a counter preset below its width's boundary wraps on
// exactly the event that crosses it, at its own width and never at the
// other (32-bit) boundary.
func TestPMUOverflow(t *testing.T) {
	cases := []struct {
		name      string
		width     int
		msr       uint32 // MSRPMC0 (legacy) or MSRAPMC0 (full width)
		preset    uint64
		nops      int // the window counts nops + 4 (the disabling write)
		wantValue uint64
		wantOvf   bool
	}{
		{"48-bit full-width -10 after 10", 48, hv.MSRAPMC0, 1<<48 - 10, 6, 0, true},
		{"48-bit full-width -10 after 9", 48, hv.MSRAPMC0, 1<<48 - 10, 5, 1<<48 - 1, false},
		{"48-bit legacy -10 sign-extends", 48, hv.MSRPMC0, 0xfffffff6, 6, 0, true},
		{"48-bit legacy 1-10 wraps to 1", 48, hv.MSRPMC0, 0xfffffff7, 6, 1, true},
		{"48-bit never overflows at 2^32", 48, hv.MSRAPMC0, 1<<32 - 10, 6, 1 << 32, false},
		{"48-bit legacy 0x7ffffff6 crosses 2^31 only", 48, hv.MSRPMC0, 0x7ffffff6, 6, 0x80000000, false},
		{"32-bit legacy -10 after 10", 32, hv.MSRPMC0, 0xfffffff6, 6, 0, true},
		{"40-bit full-width -1 after 1", 40, hv.MSRAPMC0, 1<<40 - 1, 0, 3, true},
		{"64-bit full-width wraps at 2^64", 64, hv.MSRAPMC0, ^uint64(0) - 3, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := defaultPMU
			l.GPWidth = c.width
			g := pmuGuest(t, &l, false, func(a *asm.Assembler) {
				wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
				wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
				wrmsrImm(a, c.msr, c.preset)
				wrmsrImm(a, hv.MSRPerfGlobalCtrl, 1)
				for i := 0; i < c.nops; i++ {
					a.Nop()
				}
				wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
				rdmsrTo(a, hv.MSRPMC0, 0)
				rdmsrTo(a, hv.MSRPerfGlobalStatus, 1)
				wrmsrImm(a, hv.MSRPerfGlobalOvfCtrl, 1)
				rdmsrTo(a, hv.MSRPerfGlobalStatus, 2)
				done(a)
			})
			g.runDone(t)
			if got := g.slot(0); got != c.wantValue {
				t.Errorf("counter %#x, want %#x", got, c.wantValue)
			}
			wantStatus := uint64(0)
			if c.wantOvf {
				wantStatus = 1
			}
			if got := g.slot(1); got != wantStatus {
				t.Errorf("GLOBAL_STATUS %#x, want %#x", got, wantStatus)
			}
			if got := g.slot(2); got != 0 {
				t.Errorf("GLOBAL_STATUS after OVF_CTRL %#x, want 0", got)
			}
		})
	}
}

// TestPMUFaults: reserved bits, missing counters and indices #GP exactly
// where the architecture (and KVM) put them; valid neighbours do not.
func TestPMUFaults(t *testing.T) {
	noPDCM := func(tb *hv.CPUID) {
		e, _ := tb.Lookup(hv.CPUIDLeafFeatures, 0)
		e.ECX &^= hv.CPUID1ECXPDCM
		tb.Set(e)
	}
	noPMU := func(tb *hv.CPUID) { tb.Remove(hv.CPUIDLeafPMU) }
	v1 := func(tb *hv.CPUID) { tb.SetPMU(hv.PMULeaf{Version: 1, GPCounters: 2, GPWidth: 40, EventsLen: 7}) }
	rdpmc := func(ecx uint32) func(a *asm.Assembler) {
		return func(a *asm.Assembler) { a.MovAbs(asm.RCX, uint64(ecx)); a.Rdpmc() }
	}
	rd := func(idx uint32) func(a *asm.Assembler) {
		return func(a *asm.Assembler) { a.Mov(asm.ECX, asm.Imm(int64(idx))); a.Rdmsr() }
	}
	wr := func(idx uint32, v uint64) func(a *asm.Assembler) {
		return func(a *asm.Assembler) { wrmsrImm(a, idx, v) }
	}
	cases := []struct {
		name  string
		edit  func(*hv.CPUID)
		body  func(a *asm.Assembler)
		fault bool
	}{
		{"evtsel bit 32", nil, wr(hv.MSRPerfEvtSel0, 1<<32|hv.EventInstructions), true},
		{"evtsel AnyThread", nil, wr(hv.MSRPerfEvtSel0, hv.EvtSelAnyThread), true},
		{"evtsel every defined bit", nil, wr(hv.MSRPerfEvtSel0, 0xffffffff&^hv.EvtSelAnyThread), false},
		{"evtsel of counter 4 of 4", nil, wr(hv.MSRPerfEvtSel0+4, 0), true},
		{"global ctrl bit 4 of 4 GP", nil, wr(hv.MSRPerfGlobalCtrl, 1<<4), true},
		{"global ctrl fixed 3 of 3", nil, wr(hv.MSRPerfGlobalCtrl, 8*hv.PerfGlobalFixed0), true},
		{"global ctrl all counters", nil, wr(hv.MSRPerfGlobalCtrl, 0xf|7*hv.PerfGlobalFixed0), false},
		{"fixed ctrl AnyThread", nil, wr(hv.MSRFixedCtrCtrl, hv.FixedCtrAnyThread), true},
		{"fixed ctrl counter 3 of 3", nil, wr(hv.MSRFixedCtrCtrl, hv.FixedCtrOS<<12), true},
		{"fixed ctrl all defined", nil, wr(hv.MSRFixedCtrCtrl, 0xbbb), false},
		{"full-width write beyond 48 bits", nil, wr(hv.MSRAPMC0, 1<<48), true},
		{"full-width write of 48 bits", nil, wr(hv.MSRAPMC0, 1<<48-1), false},
		{"full-width without PDCM", noPDCM, wr(hv.MSRAPMC0, 1), true},
		{"legacy write of 64 bits", nil, wr(hv.MSRPMC0, ^uint64(0)), false},
		{"guest write of PERF_CAPABILITIES", nil, wr(hv.MSRPerfCapabilities, 0), true},
		{"guest write of GLOBAL_STATUS", nil, wr(hv.MSRPerfGlobalStatus, 1), true},
		{"OVF_CTRL reserved bit 4", nil, wr(hv.MSRPerfGlobalOvfCtrl, 1<<4), true},
		{"STATUS_SET before version 4", nil, wr(hv.MSRPerfGlobalStatusSet, 1), true},
		{"rdpmc 3", nil, rdpmc(3), false},
		{"rdpmc 4 of 4", nil, rdpmc(4), true},
		{"rdpmc fixed 2", nil, rdpmc(hv.RDPMCFixed | 2), false},
		{"rdpmc fixed 3 of 3", nil, rdpmc(hv.RDPMCFixed | 3), true},
		{"rdpmc fast read", nil, rdpmc(hv.RDPMCFast), true},
		{"v1: no GLOBAL_CTRL", v1, rd(hv.MSRPerfGlobalCtrl), true},
		{"v1: no fixed counter", v1, rd(hv.MSRFixedCtr0), true},
		{"v1: PMC1 of 2", v1, rd(hv.MSRPMC0 + 1), false},
		{"no PMU: rdpmc 0", noPMU, rdpmc(0), true},
		{"no PMU: GLOBAL_CTRL", noPMU, rd(hv.MSRPerfGlobalCtrl), true},
		{"no PMU: PMC2", noPMU, rd(hv.MSRPMC0 + 2), true},
		{"no PMU: FIXED_CTR0", noPMU, rd(hv.MSRFixedCtr0), true},
		{"no PMU: P6 PMC1 reads 0 (KVM)", noPMU, wr(hv.MSRPMC0+1, 5), false},
		{"no PMU: P6 EVNTSEL0 (KVM)", noPMU, rd(hv.MSRPerfEvtSel0), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := pmuGuest(t, nil, false, func(a *asm.Assembler) { c.body(a); done(a) })
			if c.edit != nil {
				tb, _ := g.vcpu.CPUID()
				c.edit(&tb)
				if err := g.vcpu.SetCPUID(tb); err != nil {
					t.Fatal(err)
				}
			}
			io := g.runIO(t)
			switch {
			case c.fault && (io.Port != portExc || io.Value() != vecGP):
				t.Fatalf("exit %v, want #GP", io)
			case !c.fault && io.Port != portDone:
				t.Fatalf("exit %v, want no fault", io)
			}
		})
	}
}

// TestPMUNoPMUReadsZero: KVM's P6 quirk reads 0 after a dropped write.
func TestPMUNoPMUReadsZero(t *testing.T) {
	g := pmuGuest(t, &hv.PMULeaf{}, false, func(a *asm.Assembler) {
		wrmsrImm(a, hv.MSRPMC0, 5)
		rdmsrTo(a, hv.MSRPMC0, 0)
		done(a)
	})
	g.mem.Bytes()[dataGPA] = 0xaa
	g.runDone(t)
	if v := g.slot(0); v != 0 {
		t.Fatalf("PMC0 without a PMU reads %#x, want 0", v)
	}
}

// TestPMUPMI: an overflow with INT raises one PMI through the LVT
// performance entry, which is masked afterwards; without INT none.
func TestPMUPMI(t *testing.T) {
	const vec = 0x40
	for _, intr := range []bool{true, false} {
		sel := uint64(hv.EventInstructions | hv.EvtSelOS | hv.EvtSelEN)
		if intr {
			sel |= hv.EvtSelINT
		}
		var firstNop uint64
		g := pmuGuest(t, nil, true, func(a *asm.Assembler) {
			a.MovAbs(asm.RBX, hv.LAPICBase)
			a.Mov(asm.D(asm.RBX, 0xf0), asm.Imm(0x1ff)) // SVR: enabled
			a.Mov(asm.D(asm.RBX, 0x340), asm.Imm(vec))  // LVT perf: unmasked
			a.Sti()
			wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
			wrmsrImm(a, hv.MSRPerfEvtSel0, sel)
			wrmsrImm(a, hv.MSRAPMC0, 1<<48-3)
			wrmsrImm(a, hv.MSRPerfGlobalCtrl, 1)
			firstNop = a.PC()
			for i := 0; i < 8; i++ {
				a.Nop()
			}
			done(a)
		})
		// Map the APIC page: the test guest maps the first GiB only.
		b := g.mem.Bytes()
		put64(b, pdptGPA+8*(hv.LAPICBase>>30), ptGPA|7)
		put64(b, ptGPA+8*(hv.LAPICBase>>21&511), hv.LAPICBase&^(1<<21-1)|0x9f) // 2 MiB, PCD|PWT
		c := g.vcpu.(*VCPU).c
		if intr {
			f := g.runException(t)
			if f.vec != vec {
				t.Fatalf("INT set: vector %#x, want the PMI (%#x)", f.vec, vec)
			}
			if c.apic.LVT(lapic.LVTPerf)&lapic.LVTMasked == 0 {
				t.Errorf("LVT perf %#x not masked after the PMI", c.apic.LVT(lapic.LVTPerf))
			}
			// The PMI comes right after the third counted instruction,
			// the second nop after the enabling WRMSR: the frame's RIP
			// is the third nop.
			if want := firstNop + 3; f.rip != want || c.pmu.status != 1 {
				t.Errorf("PMI with status %#x at rip %#x, want 1 at %#x", c.pmu.status, f.rip, want)
			}
		} else if io := g.runIO(t); io.Port != portDone {
			t.Fatalf("INT clear: exit %v, want no PMI", io)
		}
	}
}

// TestPMUEventFilter: KVM's allow/deny semantics and its validation.
func TestPMUEventFilter(t *testing.T) {
	cases := []struct {
		name   string
		f      hv.PMUEventFilter
		gp, fx bool // instructions counted by PMC0, by fixed counter 0
	}{
		{"deny instructions", hv.PMUEventFilter{Action: hv.PMUFilterDeny, Events: []uint64{hv.EventInstructions}}, false, true},
		{"allow instructions", hv.PMUEventFilter{Action: hv.PMUFilterAllow, Events: []uint64{hv.EventInstructions}}, true, false},
		{"allow others", hv.PMUEventFilter{Action: hv.PMUFilterAllow, Events: []uint64{hv.EventBranches}}, false, false},
		{"deny others", hv.PMUEventFilter{Action: hv.PMUFilterDeny, Events: []uint64{hv.EventBranches}}, true, true},
		{"allow fixed 0 by bitmap only", hv.PMUEventFilter{Action: hv.PMUFilterAllow, FixedCounterBitmap: 1}, false, true},
		{"deny fixed 0, allow-listed event", hv.PMUEventFilter{Action: hv.PMUFilterDeny, FixedCounterBitmap: 1}, true, false},
		{"~0 entry matches nothing", hv.PMUEventFilter{Action: hv.PMUFilterAllow, Events: []uint64{^uint64(0)}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := pmuGuest(t, nil, false, func(a *asm.Assembler) {
				wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
				wrmsrImm(a, hv.MSRFixedCtrCtrl, hv.FixedCtrOS)
				wrmsrImm(a, hv.MSRPerfGlobalCtrl, 1|hv.PerfGlobalFixed0)
				a.Nop()
				wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
				rdmsrTo(a, hv.MSRPMC0, 0)
				rdmsrTo(a, hv.MSRFixedCtr0, 1)
				done(a)
			})
			if err := g.vm.(hv.PMUFilterer).SetPMUEventFilter(c.f); err != nil {
				t.Fatal(err)
			}
			g.runDone(t)
			if got := g.slot(0) != 0; got != c.gp {
				t.Errorf("PMC0 = %d, counting %v, want %v", g.slot(0), got, c.gp)
			}
			if got := g.slot(1) != 0; got != c.fx {
				t.Errorf("FIXED_CTR0 = %d, counting %v, want %v", g.slot(1), got, c.fx)
			}
		})
	}
	t.Run("validation", func(t *testing.T) {
		vm, err := New(Options{}).NewVM(hv.VMConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		f := vm.(hv.PMUFilterer)
		for _, c := range []struct {
			f    hv.PMUEventFilter
			want error
		}{
			{hv.PMUEventFilter{Action: 2}, unix.EINVAL},
			{hv.PMUEventFilter{Flags: 2}, unix.EINVAL},
			{hv.PMUEventFilter{Flags: hv.PMUFilterMaskedEvents}, hv.ErrUnsupported},
			{hv.PMUEventFilter{Events: make([]uint64, hv.PMUFilterMaxEvents+1)}, unix.E2BIG},
			{hv.PMUEventFilter{Events: make([]uint64, hv.PMUFilterMaxEvents)}, nil},
		} {
			if err := f.SetPMUEventFilter(c.f); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("filter action %d flags %#x %d events: %v, want %v", c.f.Action, c.f.Flags, len(c.f.Events), err, c.want)
			}
		}
	})
}

// BenchmarkRegisterLoopPMU is BenchmarkRegisterLoop with two counters
// counting (instructions and branches): its Minsn/s against the plain
// loop's is the cost of counting.
func BenchmarkRegisterLoopPMU(b *testing.B) {
	code := assemble(b, func(a *asm.Assembler) {
		wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRPerfEvtSel0+1, hv.EventBranches|hv.EvtSelOS|hv.EvtSelEN)
		registerLoop(a)
		done(a)
	})
	runBench(b, code, benchIters*7, "Minsn/s-loop")
}

// BenchmarkPMUOverhead interleaves runs of the register loop without and
// with two counters counting, timing each by the CPU time of the vCPU's
// thread (the machines are shared: wall time swings several-fold), and
// reports the median of each and the cost of counting in percent.
func BenchmarkPMUOverhead(b *testing.B) {
	loop := func(pmu bool) []byte {
		return assemble(b, func(a *asm.Assembler) {
			if pmu {
				wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
				wrmsrImm(a, hv.MSRPerfEvtSel0+1, hv.EventBranches|hv.EvtSelOS|hv.EvtSelEN)
			}
			registerLoop(a)
			done(a)
		})
	}
	guests := [2]*testGuest{newTestGuest(b, New(Options{}), guestOpt{}, loop(false)), newTestGuest(b, New(Options{}), guestOpt{}, loop(true))}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var rates [2][]float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, g := range guests {
			g.setup(b, g.vcpu, codeGPA)
			t0 := cpu()
			if io := g.runIO(b); io.Port != portDone {
				b.Fatalf("exit %v", io)
			}
			rates[k] = append(rates[k], float64(benchIters*7)/(cpu()-t0).Seconds()/1e6)
		}
	}
	med := func(x []float64) float64 { sort.Float64s(x); return x[len(x)/2] }
	base, pmu := med(rates[0]), med(rates[1])
	b.ReportMetric(base, "Minsn/s-nopmu")
	b.ReportMetric(pmu, "Minsn/s-pmu")
	b.ReportMetric(100*(base-pmu)/base, "overhead-%")
}

// TestPMUBranchTableBound: the branch table covers every x86asm opcode.
func TestPMUBranchTableBound(t *testing.T) {
	if x86asm.XTEST > opMask {
		t.Fatalf("x86asm.XTEST = %d > opMask %d: widen opMask", x86asm.XTEST, opMask)
	}
}

// FuzzPMUMSR drives the PMU's MSR interface with arbitrary indices,
// values and retirements, as a guest (or the host) may: it must never
// panic, and every counter must stay inside its width with no reserved
// bit set in the control registers.
func FuzzPMUMSR(f *testing.F) {
	f.Add([]byte{0x8f, 3, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x86, 0, 0xc0, 0, 0x43, 0, 0, 0, 0, 0, 50})
	f.Add([]byte{0x0d, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 4, 0xbb, 0xb, 0, 0, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		vm, err := New(Options{}).NewVM(hv.VMConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		v, err := vm.NewVCPU(0)
		if err != nil {
			t.Fatal(err)
		}
		c := v.(*VCPU).c
		// Every PMU MSR and a few neighbours, by a byte.
		msrs := []uint32{hv.MSRPMC0, hv.MSRPerfEvtSel0, hv.MSRAPMC0, hv.MSRFixedCtr0, hv.MSRFixedCtrCtrl,
			hv.MSRPerfGlobalStatus, hv.MSRPerfGlobalCtrl, hv.MSRPerfGlobalOvfCtrl, hv.MSRPerfGlobalStatusSet, hv.MSRPerfCapabilities}
		for len(data) >= 11 {
			op, idx, val, n := data[0], msrs[int(data[1])%len(msrs)]+uint32(data[1]>>4), data[2:10], data[10]
			data = data[11:]
			var x uint64
			for i, b := range val {
				x |= uint64(b) << (8 * i)
			}
			switch op % 4 {
			case 0, 1:
				c.pmuWriteMSR(idx, x, op%4 == 1)
			case 2:
				c.pmuReadMSR(idx)
				c.pmuRDPMC(uint32(x))
			case 3:
				for i := 0; i < int(n); i++ {
					if c.pmuOn {
						c.pmuRetire(uint8(x)&3, x&4 != 0)
					}
				}
			}
			p := &c.pmu
			for i := 0; i < p.nGP; i++ {
				if got := p.value(&p.gp[i]); got&^p.gpMask != 0 {
					t.Fatalf("GP counter %d = %#x beyond its width", i, got)
				}
				if p.evtsel[i]&hv.EvtSelReserved != 0 {
					t.Fatalf("EVTSEL%d = %#x has reserved bits", i, p.evtsel[i])
				}
			}
			if p.globalCtrl&^p.globalBits() != 0 {
				t.Fatalf("GLOBAL_CTRL %#x has reserved bits", p.globalCtrl)
			}
		}
	})
}

// TestPMUSingleStepCountsOnce: a TF trap after an instruction does not
// retire it a second time (regression: the trap's panic was counted as
// an INT n retiring).
func TestPMUSingleStepCountsOnce(t *testing.T) {
	g := pmuGuest(t, nil, false, func(a *asm.Assembler) {
		wrmsrImm(a, hv.MSRPerfGlobalCtrl, 0)
		wrmsrImm(a, hv.MSRPerfEvtSel0, hv.EventInstructions|hv.EvtSelOS|hv.EvtSelEN)
		wrmsrImm(a, hv.MSRPerfGlobalCtrl, 1)
		a.Pushfq()
		a.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
		a.Popfq()
		a.Nop() // #DB after it
		done(a)
	})
	if f := g.runException(t); f.vec != vecDB {
		t.Fatalf("vector %d, want #DB", f.vec)
	}
	// pushfq, or, popfq, nop, then the stub's mov and out.
	if v, err := g.vcpu.GetMSR(hv.MSRPMC0); err != nil || v != 6 {
		t.Fatalf("PMC0 = %d, %v; want 6", v, err)
	}
}
