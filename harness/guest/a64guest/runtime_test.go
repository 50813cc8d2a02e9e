package a64guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// modelGuest builds a guest's memory, tables and runtime on the bundled
// backend (its vCPUs are x86, so none are made) for the model to run.
func modelGuest(t *testing.T, cfg Config) *Guest {
	t.Helper()
	g, err := newGuest(emu.New(emu.Options{}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// runModel boots vCPU i of g on the model and runs it until DONE, an
// ASSERT, an UNHANDLED report or a decoding error, returning every ucall
// as the host decoded it.
func runModel(t *testing.T, g *Guest, i int) ([]*guest.Ucall, *model, error) {
	t.Helper()
	m := newModel(g.VM, g.cfg.Mode)
	m.pc, m.x[0], m.x[1] = g.rt.boot, uint64(i), g.entry
	var ucalls []*guest.Ucall
	var uerr error
	w := g.Walker()
	m.mmio = func(pa, v uint64, size int) error {
		var q [8]byte
		binary.LittleEndian.PutUint64(q[:], v)
		b := q[:size]
		u, err := decodeUcall(&hv.MMIOExit{GPA: pa, Len: size, Write: true, Data: b}, i, w, g.sites.get)
		if err != nil {
			uerr = err
			m.halted = true
			return nil
		}
		ucalls = append(ucalls, u)
		switch u.Cmd {
		case guest.UcallDone, guest.UcallAssert, guest.UcallUnhandled:
			m.halted = true
		}
		return nil
	}
	if err := m.run(20000); err != nil {
		return ucalls, m, err
	}
	return ucalls, m, uerr
}

func loadModel(t *testing.T, g *Guest, p *Program) {
	t.Helper()
	if err := g.load(p); err != nil {
		t.Fatal(err)
	}
}

var modelModes = []Mode{DefaultMode, {40, 47, Granule16K}, {40, 42, Granule64K}}

// TestRuntimeOnModel boots the runtime in each granule, starting test code
// at EL1 and at EL0, and runs a program through the EL moves, an expected
// fault, and an unexpected BRK, checking every ucall the host decodes and
// the state the boot code left.
func TestRuntimeOnModel(t *testing.T) {
	for _, mode := range modelModes {
		for _, el0 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/el0=%v", mode, el0), func(t *testing.T) {
				g := modelGuest(t, Config{Mode: mode, EL0: el0, VCPUs: 2})
				p := g.Program()
				p.Mov(a64.X5, a64.Imm(0x55))
				p.Sync(1, a64.X0, a64.X28)
				if !el0 {
					p.ToEL0()
				}
				p.Sync(2, a64.X5)
				fix := p.NewLabel()
				p.ExpectException(fix)
				p.Sub(a64.X6, a64.X28, a64.Imm(el1HalfSize)) // this vCPU's EL1 block
				p.Ldr(a64.X7, a64.Ptr(a64.X6, 0))
				p.Fail("EL0 read EL1 data")
				p.Bind(fix)
				p.Ldr(a64.X8, a64.Ptr(a64.X28, ExcESR))
				p.Ldr(a64.X9, a64.Ptr(a64.X28, ExcFAR))
				p.Sync(3, a64.X8, a64.X9)
				p.ToEL1()
				p.Sync(4, a64.X5)
				p.Ldr(a64.X7, a64.Ptr(a64.X6, 0)) // fine at EL1
				p.Sync(5)
				brk := p.Here()
				p.Brk(7)
				p.Done()
				loadModel(t, g, p)
				brkPC, _ := p.Addr(brk)

				const vcpu = 1
				ucalls, m, err := runModel(t, g, vcpu)
				if err != nil {
					t.Fatal(err)
				}
				ub := g.UserBlock(vcpu)
				el1 := ub - el1HalfSize
				f := predictFault(t, g, el1, Access{EL: 0})
				want := []string{
					fmt.Sprintf("SYNC [0x1 0x%x %#x]", vcpu, ub),
					"SYNC [0x2 0x55]",
					fmt.Sprintf("SYNC [0x3 %#x %#x]", uint64(ECDABTLower)<<26|1<<25|uint64(f.FSC()), el1),
					"SYNC [0x4 0x55]",
					"SYNC [0x5]",
					fmt.Sprintf("UNHANDLED [0x%x %#x 0x0 %#x 0x3c4]", VecSyncEL1t, uint64(ECBRK64)<<26|1<<25|7, brkPC),
				}
				if got := ucallStrings(ucalls); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("ucalls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				// (Source attribution skips this package's frames, tests
				// included, so it is checked where a64guest is imported.)
				if x, n, err := g.LastException(vcpu); err != nil || n != 1 || x.EC() != ECDABTLower || x.FAR != el1 || x.Vector != VecSyncLower64 {
					t.Errorf("last exception %v count %d: %v", x, n, err)
				}
				// What boot left behind.
				for name, v := range map[string]uint64{
					"MAIR_EL1": MAIR(), "TCR_EL1": mode.TCR(false), "TTBR0_EL1": g.PT.Root, "SCTLR_EL1": SCTLR(),
					"VBAR_EL1": RuntimeBase, "TPIDR_EL1": el1, "CPACR_EL1": cpacrFPENNoTrap,
				} {
					if m.sys[name] != v {
						t.Errorf("%s = %#x, want %#x", name, m.sys[name], v)
					}
				}
				// The unhandled BRK's frame is still on the EL1 stack.
				if m.sp[1] != el1+el1StackTop-frameSize || m.sp[0] != ub+VCPUBlockSize-el1HalfSize || m.x[28] != ub {
					t.Errorf("sp_el1 %#x sp_el0 %#x x28 %#x", m.sp[1], m.sp[0], m.x[28])
				}
				checkBarriers(t, m.trace)
			})
		}
	}
}

// predictFault is the walker's fault for an access.
func predictFault(t *testing.T, g *Guest, va uint64, a Access) *Fault {
	t.Helper()
	_, err := g.Walker().Translate(va, a)
	var f *Fault
	if !errors.As(err, &f) {
		t.Fatalf("%v of %#x: no fault predicted (%v)", a, va, err)
	}
	return f
}

func ucallStrings(us []*guest.Ucall) []string {
	var s []string
	for _, u := range us {
		s = append(s, fmt.Sprintf("%s %#x", u.Cmd, u.Args))
	}
	return s
}

// checkBarriers checks the MMU-enable sequence in the model's trace: the
// translation registers, an ISB, the TLB invalidation and its DSB, an
// ISB, SCTLR_EL1 with M set, and an ISB before anything else.
func checkBarriers(t *testing.T, trace []string) {
	t.Helper()
	on := -1
	for i, e := range trace {
		if strings.HasPrefix(e, "msr SCTLR_EL1") {
			var v uint64
			fmt.Sscanf(strings.TrimPrefix(e, "msr SCTLR_EL1 "), "%v", &v)
			if v&SCTLRM != 0 {
				on = i
				break
			}
		}
	}
	if on < 0 {
		t.Fatalf("the MMU is never turned on: %q", trace)
	}
	before := strings.Join(trace[:on], ";")
	want := []string{"msr MAIR_EL1", "msr TCR_EL1", "msr TTBR0_EL1", "isb", "tlbi vmalle1", "dsb nsh", "isb"}
	at := 0
	for _, w := range want {
		i := strings.Index(before[at:], w)
		if i < 0 {
			t.Fatalf("MMU enable: %q missing or out of order in %q", w, before)
		}
		at += i + len(w)
	}
	if rest := before[at:]; strings.Contains(rest, "msr ") {
		t.Errorf("system registers written between the last ISB and SCTLR: %q", rest)
	}
	if on+1 >= len(trace) || trace[on+1] != "isb" {
		t.Errorf("no ISB right after SCTLR_EL1.M: %q", trace[on:])
	}
}

// TestHandlersOnModel installs a BRK handler that rewrites ELR to skip
// the instruction and clobbers registers, and one whose body faults.
func TestHandlersOnModel(t *testing.T) {
	for _, mode := range modelModes {
		t.Run(mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: mode})
			err := g.Handle(Handler{Vector: VecSyncEL1t, Body: func(p *Program, f Frame) {
				p.Mov(a64.X5, a64.Imm(0))
				p.Ldr(a64.X0, f.ELR)
				p.Add(a64.X0, a64.X0, a64.Imm(4))
				p.Str(a64.X0, f.ELR)
				p.Ldr(a64.X1, f.ESR)
				p.Ldr(a64.X2, f.X(5))
				p.Sync(9, a64.X1, a64.X2)
			}})
			if err != nil {
				t.Fatal(err)
			}
			p := g.Program()
			p.Mov(a64.X5, a64.Imm(0x55))
			p.Brk(3)
			p.Sync(10, a64.X5)
			p.Brk(4)
			p.Done()
			loadModel(t, g, p)
			ucalls, _, err := runModel(t, g, 0)
			if err != nil {
				t.Fatal(err)
			}
			esr := func(imm uint64) uint64 { return uint64(ECBRK64)<<26 | 1<<25 | imm }
			want := fmt.Sprintf("SYNC [0x9 %#x 0x55];SYNC [0xa 0x55];SYNC [0x9 %#x 0x55];DONE []", esr(3), esr(4))
			if got := strings.Join(ucallStrings(ucalls), ";"); got != want {
				t.Fatalf("ucalls %s, want %s", got, want)
			}
			if n, err := g.HandlerCount(0, VecSyncEL1t); err != nil || n != 2 {
				t.Errorf("handler count %d, %v", n, err)
			}
			// The handler's SYNC came through its own record.
			if ucalls[0].Site == nil || !strings.Contains(ucalls[0].Site.File, "runtime_test.go") {
				t.Errorf("handler site %v", ucalls[0].Site)
			}

			// A fault inside a handler body is reported through the EL1h vector.
			if err := g.Handle(Handler{Vector: VecSyncEL1t, Body: func(p *Program, f Frame) {
				p.Mov(a64.X0, a64.Imm(8))
				p.Ldr(a64.X1, a64.Ptr(a64.X0, 0))
			}}); err != nil {
				t.Fatal(err)
			}
			loadModel(t, g, p)
			ucalls, _, err = runModel(t, g, 0)
			if err != nil {
				t.Fatal(err)
			}
			last := ucalls[len(ucalls)-1]
			x := Exception{ESR: last.Args[1]}
			if last.Cmd != guest.UcallUnhandled || last.Args[0] != VecSyncEL1h || last.Args[2] != 8 ||
				x.EC() != ECDABTCurrent || last.Args[4]&0xf != SPSREL1h {
				t.Errorf("fault in a handler: %v", last)
			}
		})
	}
}

// TestVectorTable decodes the table: 16 entries at 0x80 apart, each
// saving the registers, loading its index and branching within its 0x80
// bytes, the rest padded with NOPs.
func TestVectorTable(t *testing.T) {
	g := modelGuest(t, Config{})
	if err := g.Handle(Handler{Vector: VecIRQLower64}); err != nil {
		t.Fatal(err)
	}
	code := g.rt.code
	if RuntimeBase%0x800 != 0 {
		t.Fatal("VBAR_EL1 must be 2 KiB aligned")
	}
	var targets []uint64
	for v := 0; v < NumVectors; v++ {
		if g.rt.entries[v] != RuntimeBase+VectorSize*uint64(v) {
			t.Fatalf("vector %d at %#x", v, g.rt.entries[v])
		}
		var lines []string
		branch := -1
		for off := 0; off < VectorSize; off += 4 {
			pc := g.rt.entries[v] + uint64(off)
			w := binary.LittleEndian.Uint32(code[pc-RuntimeBase:])
			text := a64.Text(w, pc)
			lines = append(lines, text)
			if branch >= 0 && text != "nop" {
				t.Errorf("vector %d: %q after the branch", v, text)
			}
			if branch < 0 && strings.HasPrefix(text, "b ") {
				branch = off
				var target uint64
				fmt.Sscanf(text, "b %v", &target)
				targets = append(targets, target)
			}
		}
		if branch < 0 {
			t.Fatalf("vector %d has no branch within 0x80 bytes: %q", v, lines)
		}
		if lines[0] != "sub sp, sp, #0x120" || lines[1] != "stp x0, x1, [sp]" || lines[16] != "str x30, [sp,#240]" ||
			lines[17] != fmt.Sprintf("mov x0, #%#x", v) || branch != 18*4 {
			t.Errorf("vector %d: %q", v, lines[:19])
		}
	}
	for v, tg := range targets {
		common := targets[0]
		if v == VecIRQLower64 && tg == common || v != VecIRQLower64 && tg != common {
			t.Errorf("vector %d branches to %#x (common path %#x)", v, tg, common)
		}
	}
}

func TestRegisterIDs(t *testing.T) {
	mpidr, _ := a64.Sys("MPIDR_EL1")
	for _, tc := range []struct {
		got, want uint64
	}{
		{RegX(0), 0x6030_0000_0010_0000},
		{RegX(30), 0x6030_0000_0010_003c},
		{RegSP, 0x6030_0000_0010_003e},
		{RegPC, 0x6030_0000_0010_0040},
		{RegPSTATE, 0x6030_0000_0010_0042},
		{RegSPEL1, 0x6030_0000_0010_0044},
		{RegELREL1, 0x6030_0000_0010_0046},
		{RegSPSR, 0x6030_0000_0010_0048},
		{RegSys(mpidr), 0x6030_0000_0013_c005},
	} {
		if tc.got != tc.want {
			t.Errorf("id %#x, want %#x", tc.got, tc.want)
		}
	}
}

// A handler for the lower-EL sync vector gets EL0's other SVCs, while
// ToEL1's SVC stays the runtime's.
func TestLowerELHandlerKeepsToEL1(t *testing.T) {
	g := modelGuest(t, Config{})
	must(t, g.Handle(Handler{Vector: VecSyncLower64, Body: func(p *Program, f Frame) {
		p.Ldr(a64.X1, f.ESR)
		p.Sync(8, a64.X1)
	}}))
	p := g.Program()
	p.ToEL0()
	p.Svc(5)
	p.ToEL1()
	p.Mrs(a64.X2, a64.SPSR_EL1) // only EL1 may: proves the move
	p.Sync(11)
	p.Done()
	loadModel(t, g, p)
	ucalls, _, err := runModel(t, g, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("SYNC [0x8 %#x];SYNC [0xb];DONE []", uint64(ECSVC64)<<26|1<<25|5)
	if got := strings.Join(ucallStrings(ucalls), ";"); got != want {
		t.Fatalf("ucalls %s, want %s", got, want)
	}
	if n, err := g.HandlerCount(0, VecSyncLower64); err != nil || n != 1 {
		t.Errorf("handler count %d, %v", n, err)
	}
}

func TestFlushTLBDecodes(t *testing.T) {
	g := modelGuest(t, Config{})
	p := g.Program()
	p.FlushTLB()
	code, err := p.Assemble()
	must(t, err)
	var got []string
	for off := 0; off < len(code); off += 4 {
		got = append(got, a64.Text(binary.LittleEndian.Uint32(code[off:]), 0))
	}
	if want := "dsb ishst;tlbi vmalle1is;dsb ish;isb"; strings.Join(got, ";") != want {
		t.Errorf("FlushTLB: %q, want %q", strings.Join(got, ";"), want)
	}
}

// A slot added beside slot 0 and mapped with MapIdentity is reachable
// from EL0 test code; mapping slot 0 again or the ucall page is refused.
func TestMapIdentityExtraSlot(t *testing.T) {
	for _, mode := range modelModes {
		t.Run(mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: mode, EL0: true})
			const base, size = 0x1000_0000, 2 << 20
			mem, err := hv.NewMemory(size, hv.Anonymous)
			must(t, err)
			defer mem.Close()
			must(t, g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: base, Size: size, Memory: mem}))
			must(t, g.MapIdentity(base, size, UserData))
			if g.PageSize() != mode.Granule.Size() {
				t.Errorf("page size %#x", g.PageSize())
			}
			if err := g.MapIdentity(base, size, UserData); err == nil {
				t.Error("mapped the slot twice")
			}
			if err := g.MapIdentity(UcallMMIOGPA, g.PageSize(), UserData); err == nil {
				t.Error("mapped over the ucall page")
			}
			if err := g.MapIdentity(base+8, g.PageSize(), UserData); err == nil {
				t.Error("unaligned mapping accepted")
			}
			p := g.Program()
			p.Mov(a64.X6, a64.Imm(base+size-8))
			p.Mov(a64.X7, a64.Imm(0x1234))
			p.Str(a64.X7, a64.Ptr(a64.X6, 0))
			p.Ldr(a64.X8, a64.Ptr(a64.X6, 0))
			p.Sync(1, a64.X8)
			p.Done()
			loadModel(t, g, p)
			ucalls, _, err := runModel(t, g, 0)
			must(t, err)
			if got := strings.Join(ucallStrings(ucalls), ";"); got != "SYNC [0x1 0x1234];DONE []" {
				t.Fatalf("ucalls %s", got)
			}
			if v := binary.LittleEndian.Uint64(mem.Bytes()[size-8:]); v != 0x1234 {
				t.Errorf("slot 1 holds %#x", v)
			}
		})
	}
}

// TestBootDecoded decodes the boot code with arm64asm (through a64.Text)
// and checks it instruction by instruction: which system registers are
// written in which order, the value each gets (constants followed through
// the MOV/MOVK sequences), and the barriers around the MMU switch.
func TestBootDecoded(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		el0  bool
	}{{DefaultMode, false}, {Mode{36, 47, Granule16K}, true}, {Mode{48, 42, Granule64K}, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: tc.mode, EL0: tc.el0})
			var lines []string
			for pc := g.rt.boot; ; pc += 4 {
				w := binary.LittleEndian.Uint32(g.rt.code[pc-RuntimeBase:])
				lines = append(lines, a64.Text(w, pc))
				if lines[len(lines)-1] == "eret" {
					break
				}
			}
			sys := func(name string) string {
				r, ok := a64.Sys(name)
				if !ok {
					t.Fatalf("no %s", name)
				}
				return r.Generic()
			}
			spsr := uint64(SPSRDAIF | SPSREL1t)
			if tc.el0 {
				spsr = SPSRDAIF | SPSREL0t
			}
			type write struct {
				reg   string
				value uint64
				known bool // the value is a constant the code builds
			}
			want := []write{
				{sys("SCTLR_EL1"), 0, false}, // the reset value with M cleared
				{sys("MAIR_EL1"), MAIR(), true},
				{sys("TCR_EL1"), tc.mode.TCR(false), true},
				{sys("TTBR0_EL1"), g.PT.Root, true},
				{sys("CPACR_EL1"), cpacrFPENNoTrap, true},
				{sys("VBAR_EL1"), RuntimeBase, true},
				{sys("SCTLR_EL1"), SCTLR(), true},
				{sys("TPIDR_EL1"), 0, false}, // computed from X0
				{sys("SP_EL0"), 0, false},
				{sys("ELR_EL1"), 0, false}, // X1, the host's entry
				{sys("SPSR_EL1"), spsr, true},
			}
			regs := map[string]uint64{}
			var got []write
			at := map[string][]int{} // line numbers of each write
			for i, l := range lines {
				op, args, _ := strings.Cut(l, " ")
				f := strings.Split(args, ", ")
				switch op {
				case "mov":
					if v, ok := immValue(f[1]); ok {
						regs[f[0]] = v
					} else {
						delete(regs, f[0])
					}
				case "movk":
					imm, _ := immValue(f[1])
					var sh uint64
					if len(f) > 2 {
						fmt.Sscanf(f[2], "lsl #%d", &sh)
					}
					regs[f[0]] = regs[f[0]]&^(0xffff<<sh) | imm<<sh
				case "msr":
					v, known := regs[f[1]]
					got = append(got, write{f[0], v, known})
					at[f[0]] = append(at[f[0]], i)
				default:
					if len(f) > 0 && op != "isb" && op != "dsb" && op != "tlbi" && op != "eret" {
						delete(regs, f[0])
					}
				}
			}
			if len(got) != len(want) {
				t.Fatalf("system register writes %v, want %v", got, want)
			}
			for i, w := range want {
				if got[i].reg != w.reg || w.known && (!got[i].known || got[i].value != w.value) {
					t.Errorf("write %d: %s = %#x (constant %v), want %s = %#x", i, got[i].reg, got[i].value, got[i].known, w.reg, w.value)
				}
			}
			// MMU off: AND clears only M, then an ISB.
			if lines[1] != "and x2, x2, #0xfffffffffffffffe" || lines[3] != "isb" {
				t.Errorf("MMU off: %q", lines[:4])
			}
			// MMU on: ISB, TLBI VMALLE1, DSB NSH, ISB after the last translation
			// register, only constants built before SCTLR, and an ISB right after it.
			vbar, on := at[sys("VBAR_EL1")][0], at[sys("SCTLR_EL1")][1]
			if strings.Join(lines[vbar+1:vbar+5], ";") != "isb;tlbi vmalle1;dsb nsh;isb" {
				t.Errorf("after VBAR: %q", lines[vbar+1:vbar+5])
			}
			for _, l := range lines[vbar+5 : on] {
				if !strings.HasPrefix(l, "mov") {
					t.Errorf("between the TLB flush and SCTLR: %q", l)
				}
			}
			if lines[on+1] != "isb" {
				t.Errorf("after SCTLR.M: %q", lines[on+1])
			}
		})
	}
}

// immValue parses an immediate operand of the GNU text ("#0x3c4").
func immValue(s string) (uint64, bool) {
	if !strings.HasPrefix(s, "#") {
		return 0, false
	}
	var v uint64
	if _, err := fmt.Sscanf(strings.TrimPrefix(s, "#"), "%v", &v); err != nil {
		var n int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(s, "#"), "%v", &n); err != nil {
			return 0, false
		}
		return uint64(n), true
	}
	return v, true
}
