package a64guest

import (
	"bufio"
	"encoding/binary"
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
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skip("qemu-system-aarch64 is not installed")
	}
	if testing.Short() {
		t.Skip("boots QEMU")
	}
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

	// Monitor arguments are unquoted: keep '=' and spaces of the test's
	// name out of the paths.
	dir, err := os.MkdirTemp("", "a64guest-qemu")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img, dump := filepath.Join(dir, "mem.bin"), filepath.Join(dir, "dump.bin")
	must(t, os.WriteFile(img, g.Mem.Bytes(), 0o600))
	cmd := exec.Command(qemu, "-M", "none", "-cpu", "max,has_el3=off,has_el2=off", "-m", "2G",
		"-display", "none", "-serial", "none", "-monitor", "none", "-qmp", "stdio", "-nodefaults",
		"-device", fmt.Sprintf("loader,file=%s,addr=0,force-raw=on", img),
		"-device", fmt.Sprintf("loader,addr=%#x,cpu-num=0", tramp))
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
	for deadline := time.Now().Add(20 * time.Second); ; {
		mem = save(0, g.cfg.MemSize, dump)
		if binary.LittleEndian.Uint64(mem[el1+el1Record:]) == uint64(guest.UcallUnhandled) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest never reported its BRK; registers: %s",
				qmp(`{"execute":"human-monitor-command","arguments":{"command-line":"info registers"}}`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastPtr := binary.LittleEndian.Uint64(save(UcallMMIOGPA, 8, dump+".mmio"))
	qmp(`{"execute":"quit"}`)
	io.Copy(io.Discard, out)
	cmd.Wait()

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
