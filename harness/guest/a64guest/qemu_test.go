package a64guest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
)

// TestRuntimeUnderQEMU runs the runtime on QEMU's "max" CPU (its
// TCG, a CPU model this package did not write): QEMU's MMU walks the page
// tables the builder wrote, its exception entry fills ESR/FAR/ELR/SPSR,
// and the boot code, vectors, EL moves and the report path run as on
// hardware. QEMU has no KVM-style MMIO exit here, so RAM backs the ucall
// page and the test program copies each ucall record into a log the host
// parses from a memory dump; the walker's fault prediction is compared
// with the ESR QEMU produced. Skipped without qemu-system-aarch64.
func TestRuntimeUnderQEMU(t *testing.T) {
	qemu := qemuPath(t)
	for _, mode := range modelModes {
		for _, el0 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/el0=%v", mode, el0), func(t *testing.T) { qemuRun(t, qemu, mode, el0) })
		}
	}
}

func qemuRun(t *testing.T, qemu string, mode Mode, el0 bool) {
	g := modelGuest(t, Config{Mode: mode, EL0: el0})
	logBase, err := g.Alloc(0x1000, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	// logged copies the ucall record to the next log slot (X26 counts).
	p := g.Program()
	p.Mov(a64.X26, a64.Imm(int64(logBase)))
	logged := func(emit func()) {
		emit()
		for off := int64(0); off < guest.UcallRecordSize; off += 8 {
			p.Ldr(a64.X16, a64.Ptr(a64.X28, UcallRecord+off))
			p.Str(a64.X16, a64.Ptr(a64.X26, off))
		}
		p.Add(a64.X26, a64.X26, a64.Imm(0x80))
	}
	p.Mov(a64.X5, a64.Imm(0x55))
	logged(func() { p.Sync(1, a64.X0, a64.X28) })
	if !el0 {
		p.ToEL0()
	}
	logged(func() { p.Sync(2, a64.X5) })
	fix := p.NewLabel()
	p.ExpectException(fix)
	p.Sub(a64.X6, a64.X28, a64.Imm(el1HalfSize))
	p.Ldr(a64.X7, a64.Ptr(a64.X6, 0))
	logged(func() { p.Fail("EL0 read EL1 data") })
	p.Bind(fix)
	p.Ldr(a64.X8, a64.Ptr(a64.X28, ExcESR))
	p.Ldr(a64.X9, a64.Ptr(a64.X28, ExcFAR))
	logged(func() { p.Sync(3, a64.X8, a64.X9) })
	p.ToEL1()
	logged(func() { p.Sync(4, a64.X5) })
	brk := p.Here()
	p.Brk(7)
	loadModel(t, g, p)
	brkPC, _ := p.Addr(brk)

	mem, lastPtr := qemuBoot(t, qemu, g)
	el1 := g.UserBlock(0) - el1HalfSize

	var got []string
	for i := 0; i < 4; i++ {
		u, err := guest.ParseUcallRecord(mem[logBase+uint64(i)*0x80:], 0, unhandledArgs, g.sites.get)
		if err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		got = append(got, fmt.Sprintf("%s %#x", u.Cmd, u.Args))
	}
	u, err := guest.ParseUcallRecord(mem[el1+el1Record:], 0, unhandledArgs, g.sites.get)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, fmt.Sprintf("%s %#x", u.Cmd, u.Args))
	f := predictFault(t, g, el1, Access{EL: 0})
	want := []string{
		fmt.Sprintf("SYNC [0x1 0x0 %#x]", g.UserBlock(0)),
		"SYNC [0x2 0x55]",
		fmt.Sprintf("SYNC [0x3 %#x %#x]", uint64(ECDABTLower)<<26|1<<25|uint64(f.FSC()), el1),
		"SYNC [0x4 0x55]",
	}
	if strings.Join(got[:4], "\n") != strings.Join(want, "\n") {
		t.Fatalf("ucalls under QEMU:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The BRK report: vector, ESR (EC BRK, IL, imm 7), FAR (UNKNOWN for a
	// BRK: not compared), ELR, SPSR (EL1t, all masked).
	x := Exception{Vector: u.Args[0], ESR: u.Args[1], ELR: u.Args[3], SPSR: u.Args[4]}
	if u.Cmd != guest.UcallUnhandled || x.Vector != VecSyncEL1t || x.ESR != uint64(ECBRK64)<<26|1<<25|7 ||
		x.ELR != brkPC || x.SPSR&0x3ff != SPSRDAIF|SPSREL1t {
		t.Errorf("BRK report %v", u)
	}
	if lastPtr != el1+el1Record {
		t.Errorf("the last ucall pointer stored to the ucall page: %#x, want %#x", lastPtr, el1+el1Record)
	}
}

// qemuBoot runs vCPU 0 of g (memory, tables, runtime and a loaded
// program) on QEMU until the program's DONE or the runtime's UNHANDLED
// report, and returns guest memory and the last value stored to the
// ucall page.
func qemuBoot(t *testing.T, qemu string, g *Guest) ([]byte, uint64) {
	t.Helper()
	// QEMU starts the CPU at the loader's address with zeroed registers:
	// a trampoline passes the vCPU index and the entry as the host would.
	tramp, err := g.Alloc(0x1000, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	ta := a64.New(tramp)
	ta.Mov(a64.X0, a64.Imm(0))
	ta.Mov(a64.X1, a64.Imm(int64(g.entry)))
	ta.Mov(a64.X2, a64.Imm(int64(g.rt.boot)))
	ta.Br(a64.X2)
	tcode, err := ta.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	must(t, g.VM.WriteGPA(tramp, tcode))

	dir := t.TempDir()
	img, dump := filepath.Join(dir, "mem.bin"), filepath.Join(dir, "dump.bin")
	must(t, os.WriteFile(img, g.Mem.Bytes(), 0o600))
	cmd := exec.Command(qemu, "-M", "none", "-cpu", "max,has_el3=off,has_el2=off", "-m", "2G",
		"-display", "none", "-serial", "none", "-monitor", "none", "-qmp", "stdio", "-nodefaults",
		"-device", fmt.Sprintf("loader,file=%s,addr=0,force-raw=on", img),
		"-device", fmt.Sprintf("loader,addr=%#x,cpu-num=0", tramp))
	if log := os.Getenv("A64GUEST_QEMU_LOG"); log != "" {
		// Exceptions as QEMU takes them, for debugging a failure.
		cmd.Args = append(cmd.Args, "-d", "int", "-D", log)
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	qmpOut := bufio.NewScanner(out)
	qmpOut.Buffer(make([]byte, 1<<20), 1<<20)
	// qmp sends one command and returns its reply line (events skipped).
	qmp := func(command string) string {
		fmt.Fprintln(in, command)
		for qmpOut.Scan() {
			if l := qmpOut.Text(); strings.Contains(l, `"return"`) || strings.Contains(l, `"error"`) {
				return l
			}
		}
		t.Fatalf("QMP %s: %v", command, qmpOut.Err())
		return ""
	}
	save := func(addr, size uint64, path string) []byte {
		r := qmp(fmt.Sprintf(`{"execute":"pmemsave","arguments":{"val":%d,"size":%d,"filename":%q}}`, addr, size, path))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("pmemsave: %v (QMP: %s)", err, r)
		}
		return b
	}
	qmp(`{"execute":"qmp_capabilities"}`)
	el1 := g.UserBlock(0) - el1HalfSize
	var mem []byte
	ended := func() bool {
		return binary.LittleEndian.Uint64(mem[el1+el1Record:]) == uint64(guest.UcallUnhandled) ||
			binary.LittleEndian.Uint64(mem[g.UserBlock(0)+UcallRecord:]) == uint64(guest.UcallDone)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		mem = save(0, g.cfg.MemSize, dump)
		if ended() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest never ended (DONE or an UNHANDLED report); registers: %s",
				qmp(`{"execute":"human-monitor-command","arguments":{"command-line":"info registers"}}`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastPtr := binary.LittleEndian.Uint64(save(UcallMMIOGPA, 8, dump+".mmio"))
	qmp(`{"execute":"quit"}`)
	io.Copy(io.Discard, out)
	cmd.Wait()

	return mem, lastPtr
}

// qemuPath finds qemu-system-aarch64 or skips.
func qemuPath(t *testing.T) string {
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skip("qemu-system-aarch64 is not installed")
	}
	if testing.Short() {
		t.Skip("boots QEMU")
	}
	// make test installs QEMU for its arm64 stage while these tests may
	// run: a binary whose package is still being unpacked does not start.
	if out, err := exec.Command(qemu, "--version").CombinedOutput(); err != nil {
		t.Skipf("%s does not start (being installed?): %v: %s", qemu, err, bytes.TrimSpace(out))
	}
	return qemu
}

// probe is one access of the differential test.
type probe struct {
	name string
	va   uint64
	acc  Access
}

func (p probe) kind() ProbeKind {
	switch {
	case p.acc.Exec:
		return ProbeFetch
	case p.acc.Write:
		return ProbeWrite
	}
	return ProbeRead
}

// TestWalkerAgainstQEMU is a differential test of the walker: pages with
// every attribute set, a page without AF, an unmapped page, a block (4K),
// and a page under a table descriptor with APTable/UXNTable restrictions
// are probed with all six accesses by guest code on QEMU's MMU, and each
// outcome (success, or the abort's EC, fault status code and WnR) must be
// what the walker predicts.
func TestWalkerAgainstQEMU(t *testing.T) {
	qemu := qemuPath(t)
	for _, mode := range modelModes {
		t.Run(mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: mode})
			gs := mode.Granule.Size()
			const ret = 0xd65f03c0
			page := func(va uint64, a Attrs) {
				pa, err := g.Alloc(gs, gs)
				must(t, err)
				must(t, g.PT.Map(va, pa, gs, a))
				var b [4]byte
				binary.LittleEndian.PutUint32(b[:], ret)
				must(t, g.VM.WriteGPA(pa, b[:]))
			}
			var targets []probe
			base := uint64(0x4000_0000)
			for k, pc := range permCases {
				va := base + uint64(k)*gs
				page(va, pc.attrs)
				targets = append(targets, probe{name: pc.name, va: va})
			}
			noAF := base + 20*gs
			page(noAF, Attrs{AP: APRW, NoAF: true})
			targets = append(targets, probe{name: "no AF", va: noAF}, probe{name: "unmapped", va: base + 21*gs})
			if mode.Granule == Granule4K {
				bs := mode.LevelSize(2)
				pa, err := g.Alloc(bs, bs)
				must(t, err)
				must(t, g.PT.MapAt(2, base+bs, pa, Attrs{AP: APRO}))
				var b [4]byte
				binary.LittleEndian.PutUint32(b[:], ret)
				must(t, g.VM.WriteGPA(pa+bs/2, b[:]))
				targets = append(targets, probe{name: "block", va: base + bs + bs/2})
			}
			if mode.StartLevel() < 3 {
				va := uint64(0x8000_0000)
				page(va, Attrs{AP: APRW})
				steps, err := g.PT.Walk(va)
				must(t, err)
				s := steps[len(steps)-2]
				must(t, write64(g.VM, s.EntryGPA, s.Desc|TableAPRO|TableUXN))
				targets = append(targets, probe{name: "APTable RO, UXNTable", va: va})
			}
			var probes []probe
			for _, tg := range targets {
				for _, a := range accesses {
					p := probe{name: fmt.Sprintf("%s: %v", tg.name, a), va: tg.va, acc: a}
					if !a.Exec {
						p.va += 8 // keep the RET at the page start
					}
					probes = append(probes, p)
				}
			}
			logBase, err := g.Alloc(uint64(8*len(probes)), 8)
			must(t, err)

			p := g.Program()
			p.Mov(a64.X26, a64.Imm(int64(logBase)))
			for _, pr := range probes {
				p.Mov(a64.X6, a64.Imm(int64(pr.va)))
				if pr.acc.EL == 0 {
					p.ToEL0()
				}
				p.Probe(pr.kind(), a64.X6, a64.X8)
				if pr.acc.EL == 0 {
					p.ToEL1()
				}
				p.Str(a64.X8, a64.PostIndex(a64.X26, 8))
			}
			qemuDone(p)
			loadModel(t, g, p)
			mem, _ := qemuBoot(t, qemu, g)

			w := g.Walker()
			for i, pr := range probes {
				esr := binary.LittleEndian.Uint64(mem[logBase+8*uint64(i):])
				_, ferr := w.Translate(pr.va, pr.acc)
				var f *Fault
				switch {
				case ferr == nil && esr != 0:
					t.Errorf("%s: walker: allowed; QEMU: %v", pr.name, Exception{ESR: esr})
				case ferr != nil && !errors.As(ferr, &f):
					t.Fatalf("%s: %v", pr.name, ferr)
				case ferr != nil:
					ec := map[bool]uint32{false: ECDABTCurrent, true: ECIABTCurrent}[pr.acc.Exec]
					if pr.acc.EL == 0 {
						ec--
					}
					x := Exception{ESR: esr}
					wnr := esr&ESRWnR != 0 && !pr.acc.Exec
					if x.EC() != ec || x.FSC() != f.FSC() || wnr != pr.acc.Write {
						t.Errorf("%s: walker: %v (EC %#x FSC %#x); QEMU: esr %#x (EC %#x FSC %#x WnR %v)",
							pr.name, f, ec, f.FSC(), esr, x.EC(), x.FSC(), wnr)
					}
				}
			}
			if !t.Failed() {
				t.Logf("%d probes agree", len(probes))
			}
		})
	}
}

// TestHandlersUnderQEMU runs an installed BRK handler on QEMU: it skips
// the instruction by rewriting ELR in the frame, clobbers a register the
// return restores, and reports from its own ucall record.
func TestHandlersUnderQEMU(t *testing.T) {
	qemu := qemuPath(t)
	g := modelGuest(t, Config{Mode: Mode{40, 42, Granule64K}})
	must(t, g.Handle(Handler{Vector: VecSyncEL1t, Body: func(p *Program, f Frame) {
		p.Mov(a64.X5, a64.Imm(0))
		p.Ldr(a64.X0, f.ELR)
		p.Add(a64.X0, a64.X0, a64.Imm(4))
		p.Str(a64.X0, f.ELR)
		p.Ldr(a64.X1, f.ESR)
		p.Sync(9, a64.X1)
	}}))
	logAt, err := g.Alloc(8, 8)
	must(t, err)
	p := g.Program()
	p.Mov(a64.X5, a64.Imm(0x55))
	p.Brk(3)
	p.Brk(4)
	p.Mov(a64.X6, a64.Imm(int64(logAt)))
	p.Str(a64.X5, a64.Ptr(a64.X6, 0))
	qemuDone(p)
	loadModel(t, g, p)
	mem, _ := qemuBoot(t, qemu, g)
	ub := g.UserBlock(0)
	le := binary.LittleEndian
	if x5 := le.Uint64(mem[logAt:]); x5 != 0x55 {
		t.Errorf("x5 after the handlers %#x, want 0x55", x5)
	}
	if n := le.Uint32(mem[ub+HandlerCounts+4*VecSyncEL1t:]); n != 2 {
		t.Errorf("handler count %d, want 2", n)
	}
	u, err := guest.ParseUcallRecord(mem[ub+HandlerRecord:], 0, unhandledArgs, g.sites.get)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%v %#x", u.Cmd, u.Args), fmt.Sprintf("SYNC [0x9 %#x]", uint64(ECBRK64)<<26|1<<25|4); got != want {
		t.Errorf("handler record %s, want %s", got, want)
	}
}

// qemuDone ends a program run on QEMU: its ucall page is RAM, so DONE
// does not stop the CPU, which must not run on into what follows.
func qemuDone(p *Program) {
	p.Done()
	hang := p.Here()
	p.B(hang)
}

// TestHardwareAFUnderQEMU boots with TCR_EL1.HA (QEMU's max CPU has
// FEAT_HAFDBS): accesses to a page whose AF is clear succeed, as the
// walker with HA predicts, and the CPU sets AF in the descriptor.
func TestHardwareAFUnderQEMU(t *testing.T) {
	qemu := qemuPath(t)
	for _, mode := range modelModes {
		t.Run(mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: mode, HA: true})
			gs := mode.Granule.Size()
			pa, err := g.Alloc(gs, gs)
			must(t, err)
			const va = 0x4000_0000
			must(t, g.PT.Map(va, pa, gs, Attrs{AP: APRW, UXN: true, PXN: true, NoAF: true}))
			leaf, _, err := g.PT.Leaf(va)
			must(t, err)
			if _, err := g.Walker().Translate(va, Access{EL: 0, Write: true}); err != nil {
				t.Fatalf("walker with HA: %v", err)
			}
			logAt, err := g.Alloc(16, 8)
			must(t, err)
			p := g.Program()
			p.Mov(a64.X6, a64.Imm(va))
			p.Probe(ProbeRead, a64.X6, a64.X8)
			p.ToEL0()
			p.Probe(ProbeWrite, a64.X6, a64.X9)
			p.ToEL1()
			p.FlushTLB()
			p.Mov(a64.X6, a64.Imm(int64(logAt)))
			p.Stp(a64.X8, a64.X9, a64.Ptr(a64.X6, 0))
			qemuDone(p)
			loadModel(t, g, p)
			mem, _ := qemuBoot(t, qemu, g)
			le := binary.LittleEndian
			if r, w := le.Uint64(mem[logAt:]), le.Uint64(mem[logAt+8:]); r != 0 || w != 0 {
				t.Errorf("probes of a no-AF page with HA: read esr %#x, write esr %#x", r, w)
			}
			if d := le.Uint64(mem[leaf.EntryGPA:]); d&DescAF == 0 || d&^DescAF != leaf.Desc {
				t.Errorf("descriptor %#x after the access (before %#x): want only AF set", d, leaf.Desc)
			}
		})
	}
}

// TestHardwareDirtyUnderQEMU boots with TCR_EL1.HA and HD (QEMU's max CPU
// has FEAT_HAFDBS with dirty state): a read of a read-only page whose
// descriptor has DBM set leaves it alone, a write completes and the CPU
// clears AP[2] (writable-dirty), as the walker with HD predicts; without
// DBM the write is a permission fault (level 3, WnR) and the descriptor
// stays as it was.
func TestHardwareDirtyUnderQEMU(t *testing.T) {
	qemu := qemuPath(t)
	for _, mode := range modelModes {
		t.Run(mode.String(), func(t *testing.T) {
			g := modelGuest(t, Config{Mode: mode, HA: true, HD: true})
			gs := mode.Granule.Size()
			pa, err := g.Alloc(2*gs, gs)
			must(t, err)
			const va = 0x4000_0000
			must(t, g.PT.Map(va, pa, gs, Attrs{AP: APEL1RO, DBM: true, UXN: true, PXN: true}))
			must(t, g.PT.Map(va+gs, pa+gs, gs, Attrs{AP: APEL1RO, UXN: true, PXN: true}))
			dbm, _, err := g.PT.Leaf(va)
			must(t, err)
			plain, _, err := g.PT.Leaf(va + gs)
			must(t, err)
			if _, err := g.Walker().Translate(va, Access{EL: 1, Write: true}); err != nil {
				t.Fatalf("walker with HD, DBM page: %v", err)
			}
			var f *Fault
			if _, err := g.Walker().Translate(va+gs, Access{EL: 1, Write: true}); !errors.As(err, &f) || f.Kind != FaultPermission || f.Level != 3 {
				t.Fatalf("walker with HD, read-only page without DBM: %v, want a level-3 permission fault", err)
			}
			logAt, err := g.Alloc(32, 8)
			must(t, err)
			p := g.Program()
			p.Mov(a64.X6, a64.Imm(va))
			p.Probe(ProbeRead, a64.X6, a64.X7)
			p.Mov(a64.X10, a64.Imm(int64(logAt)))
			p.Str(a64.X7, a64.Ptr(a64.X10, 0))
			p.FlushTLB()
			p.Probe(ProbeWrite, a64.X6, a64.X8)
			p.Mov(a64.X6, a64.Imm(int64(va+gs)))
			p.Probe(ProbeWrite, a64.X6, a64.X9)
			p.FlushTLB()
			p.Mov(a64.X10, a64.Imm(int64(logAt)))
			p.Stp(a64.X8, a64.X9, a64.Ptr(a64.X10, 8))
			qemuDone(p)
			loadModel(t, g, p)
			mem, _ := qemuBoot(t, qemu, g)
			le := binary.LittleEndian
			if r, w := le.Uint64(mem[logAt:]), le.Uint64(mem[logAt+8:]); r != 0 || w != 0 {
				t.Errorf("probes of a DBM page with HD: read esr %#x, write esr %#x", r, w)
			}
			wantESR := uint64(ECDABTCurrent)<<ESRECShift | 1<<25 | ESRWnR | uint64((&Fault{Kind: FaultPermission, Level: 3}).FSC())
			if w := le.Uint64(mem[logAt+16:]); w != wantESR {
				t.Errorf("write to a read-only page without DBM: esr %#x, want %#x", w, wantESR)
			}
			if d := le.Uint64(mem[dbm.EntryGPA:]); d != dbm.Desc&^(2<<DescAPShift) {
				t.Errorf("DBM descriptor %#x after the read and the write (before %#x): want only AP[2] cleared", d, dbm.Desc)
			}
			if d := le.Uint64(mem[plain.EntryGPA:]); d != plain.Desc {
				t.Errorf("descriptor without DBM %#x after the faulting write (before %#x): want it unchanged", d, plain.Desc)
			}
		})
	}
}
