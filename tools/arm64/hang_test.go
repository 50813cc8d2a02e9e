package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// regsDump is `info registers -a` as QEMU 10.0.2 prints it for -cpu max
// (SVE state cut): CPU 0 in the host kernel at EL2 (VHE), CPU 1 in a
// nested guest at EL1.
const regsDump = `
CPU#0
 PC=ffff80008012a4c8 X00=0000000000000000 X01=0000000000000001
X28=ffff000003f2a000 X29=ffff800082b33d40 X30=ffff80008012a4b0  SP=ffff800082b33d40
PSTATE=604003c9 -ZC- EL2h  SVCR=00000000 --  BTYPE=0     FPCR=00000000 FPSR=00000000
P00=0000 P01=0000

CPU#1
 PC=0000000000400104 X00=0000000000000005 X01=0000000000000000
X29=0000000000000000 X30=0000000000400010  SP=0000000000480000
PSTATE=200003c5 --C- EL1h  SVCR=00000000 --  BTYPE=0     FPCR=00000000 FPSR=00000000
`

func TestParseRegisters(t *testing.T) {
	cpus, err := parseRegisters(regsDump)
	if err != nil {
		t.Fatal(err)
	}
	want := []cpuState{
		{Index: 0, PC: 0xffff80008012a4c8, LR: 0xffff80008012a4b0, FP: 0xffff800082b33d40, SP: 0xffff800082b33d40, EL: "EL2h", PSTATE: 0x604003c9},
		{Index: 1, PC: 0x400104, LR: 0x400010, SP: 0x480000, EL: "EL1h", PSTATE: 0x200003c5},
	}
	if len(cpus) != len(want) {
		t.Fatalf("%d CPUs, want %d", len(cpus), len(want))
	}
	for i, w := range want {
		c := cpus[i]
		if len(c.Regs) != 3 || !strings.HasPrefix(c.Regs[0], "PC=") || !strings.HasPrefix(c.Regs[2], "PSTATE=") {
			t.Errorf("CPU %d register lines %q", i, c.Regs)
		}
		c.haveFP, c.havePState, c.Regs = false, false, nil
		if !reflect.DeepEqual(c, w) {
			t.Errorf("CPU %d: %+v, want %+v", i, c, w)
		}
	}
	bad := []struct{ name, dump, want string }{
		{"empty", "", "no CPU"},
		{"x86 dump", "RAX=0000000000000000 RBX=0000000000000000\nRIP=000000000000fff0\n", "no CPU"},
		{"no PSTATE", "CPU#0\n PC=0000000000000000 X29=0000000000000000\n", "without X29, PSTATE"},
		{"no exception level", "CPU#0\n PC=0 X29=0\nPSTATE=600003c9 -ZC-\n", "without X29, PSTATE"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if _, err := parseRegisters(b.dump); err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("err %v, want %q", err, b.want)
			}
		})
	}
}

const kallsymsText = `ffff800080000000 T _text
ffff800080010000 t __do_softirq
ffff800080010400 T kvm_vcpu_run
ffff800080010000 D some_data
0000000000000000 T hidden
ffff800080020000 W weak_fn
ffff800081000000 T _etext
ffff8000c0000000 t mod_fn	[kvm]
`

func writeKallsyms(t *testing.T, gz bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kallsyms")
	data := []byte(kallsymsText)
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKallsymsNames(t *testing.T) {
	for _, gz := range []bool{false, true} {
		s, err := readKallsyms(writeKallsyms(t, gz))
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			a    uint64
			want string
		}{
			{0xffff800080010400, "kvm_vcpu_run+0x0"},
			{0xffff800080010404, "kvm_vcpu_run+0x4"},
			{0xffff8000800103fc, "__do_softirq+0x3fc"},
			{0xffff800080020010, "weak_fn+0x10"},
			{0xffff8000c0000020, "mod_fn [kvm]+0x20"},
			{0xffff7fffffffffff, ""},         // before the first symbol
			{0xffff800081000000 + 2<<20, ""}, // far past the last one
			{0x400104, ""},                   // a guest's address
			{0xffff8000c0000000 + maxSymbolSpan + 1, ""},
		}
		for _, c := range cases {
			if got := s.Name(c.a); got != c.want {
				t.Errorf("gz %v: Name(%#x) = %q, want %q", gz, c.a, got, c.want)
			}
		}
	}
	var none *symbols
	if none.Name(0xffff800080010400) != "" {
		t.Error("no table names an address")
	}
	p := filepath.Join(t.TempDir(), "bad.gz")
	os.WriteFile(p, []byte{0x1f, 0x8b, 0, 0}, 0o644)
	if _, err := readKallsyms(p); err == nil {
		t.Error("a corrupt gzip file read without error")
	}
}

// fakeMem is memory holding frame records.
type fakeMem map[uint64][2]uint64

func (m fakeMem) ReadU64Pair(cpu int, va uint64) (uint64, uint64, error) {
	r, ok := m[va]
	if !ok {
		return 0, 0, fmt.Errorf("cannot access 0x%x", va)
	}
	return r[0], r[1], nil
}

func TestWalkFrames(t *testing.T) {
	const base = 0xffff800082b30000
	cases := []struct {
		name    string
		mem     fakeMem
		fp      uint64
		want    []uint64
		wantErr bool
	}{
		{"three frames to a zero fp", fakeMem{base: {base + 0x40, 0xffff800080010410}, base + 0x40: {base + 0x80, 0xffff800080010020}, base + 0x80: {0, 0xffff800080020004}},
			base, []uint64{0xffff800080010410, 0xffff800080010020, 0xffff800080020004}, false},
		{"a record pointing down ends it", fakeMem{base + 0x40: {base, 0xffff800080010410}, base: {base + 0x40, 1}},
			base + 0x40, []uint64{0xffff800080010410}, false},
		{"a loop ends it", fakeMem{base: {base, 0xffff800080010410}}, base, []uint64{0xffff800080010410}, false},
		{"zero return address", fakeMem{base: {base + 0x40, 0}}, base, nil, false},
		{"user fp", fakeMem{}, 0x480000, nil, false},
		{"misaligned fp", fakeMem{}, base + 4, nil, false},
		{"unreadable record", fakeMem{base: {base + 0x40, 0xffff800080010410}}, base, []uint64{0xffff800080010410}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := walkFrames(c.mem, 0, c.fp, 52, nil)
			if (err != nil) != c.wantErr || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %x, %v; want %x, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
	// An endless chain up the stack stops at maxFrames.
	long := fakeMem{}
	for i := range uint64(100) {
		long[base+i*0x10] = [2]uint64{base + (i+1)*0x10, 0xffff800080010410}
	}
	if got, err := walkFrames(long, 0, base, 52, nil); err != nil || len(got) != maxFrames {
		t.Errorf("%d frames, %v; want %d", len(got), err, maxFrames)
	}
}

// Signed return addresses (QEMU's -cpu max has pointer authentication,
// Debian's kernel signs its LRs) name their function once stripped, for
// the kernel's VA size; a walk stops at a return address outside the text.
func TestPACStripped(t *testing.T) {
	cases := []struct {
		a      uint64
		vaBits uint
		want   uint64
	}{
		{0xb2ffb046e75602ec, 52, 0xffffb046e75602ec}, // measured on 6.12.95
		{0x44efb046e74d2b0c, 52, 0xffffb046e74d2b0c},
		{0xffffb046e75602ec, 52, 0xffffb046e75602ec},
		{0x3aff800080010410, 48, 0xffff800080010410},
		{0x3a00000000400010, 48, 0x400010}, // a user address
		{0x3a00000000400010, 0, 0x3a00000000400010},
	}
	for _, c := range cases {
		if got := stripPAC(c.a, c.vaBits); got != c.want {
			t.Errorf("stripPAC(%#x, %d) = %#x, want %#x", c.a, c.vaBits, got, c.want)
		}
	}
	const base = 0xffff800082b30000
	mem := fakeMem{base: {base + 0x40, 0x12ff800080010410}, base + 0x40: {base + 0x80, 0xfff0000005589280}, base + 0x80: {0, 0xffff800080020004}}
	text := func(a uint64) bool { return a>>32 == 0xffff8000 }
	got, err := walkFrames(mem, 0, base, 52, text)
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]uint64{0xffff800080010410, 0xfff0000005589280}) {
		t.Errorf("got %x, %v", got, err)
	}
}

func TestRunningSpec(t *testing.T) {
	const ts = "kvmspec: 2026-12-05T16:40:01.123Z "
	cases := []struct {
		name, console, want string
	}{
		{"none", "boot\n[ 1.0] random line\n", ""},
		{"ended", "[ 5.1] " + ts + "start [1/2] kvm-arm64/smoke/a (x)\n[ 5.2] " + ts + "passed [1/2] kvm-arm64/smoke/a (x) (0.100s)\n", ""},
		{"hung in the second", "[ 5.1] " + ts + "start [1/2] kvm-arm64/smoke/a\r\n[ 5.2] " + ts + "failed [1/2] kvm-arm64/smoke/a (0.100s)\r\n" +
			"[ 5.3] " + ts + "start [2/2] kvm-arm64/pmu/b [64-bit]\r\n[ 75.0] watchdog: CPU1: Watchdog detected hard LOCKUP on cpu 1\r\n", "kvm-arm64/pmu/b [64-bit]"},
		{"an end of another spec", ts + "start [3/9] emu/x\n" + ts + "passed [2/9] emu/y (1.000s)\n", "emu/x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := runningSpec(strings.NewReader(c.console))
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// fakeQEMU serves the monitor's protocol on a unix socket as QEMU does:
// a banner, each command echoed with line-editing escapes, its output,
// the prompt. Memory reads answer from mem as CPU cpu sees it.
func fakeQEMU(t *testing.T, regs string, mem fakeMem) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mon")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "QEMU 10.0.2 monitor - type 'help' for more information\r\n(qemu) ")
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimSpace(line)
			fmt.Fprintf(c, "%s\x1b[K\x1b[D%s\x1b[K\r\n", cmd[:1], cmd)
			switch {
			case cmd == "info registers -a":
				fmt.Fprint(c, strings.ReplaceAll(regs, "\n", "\r\n"))
			case strings.HasPrefix(cmd, "cpu "):
			case strings.HasPrefix(cmd, "x /2gx "):
				va, _ := strconv.ParseUint(strings.TrimPrefix(cmd, "x /2gx 0x"), 16, 64)
				if r, ok := mem[va]; ok {
					fmt.Fprintf(c, "%016x: 0x%016x 0x%016x\r\n", va, r[0], r[1])
				} else {
					fmt.Fprintf(c, "Cannot access memory\r\n")
				}
			default:
				fmt.Fprintf(c, "unknown command: '%s'\r\n", cmd)
			}
			fmt.Fprint(c, "(qemu) ")
		}
	}()
	return sock
}

// The whole report from a monitor: the spec from the console, CPU 0's
// kernel chain named, CPU 1 recognised as outside the kernel.
func TestHangReport(t *testing.T) {
	mem := fakeMem{
		0xffff800082b33d40: {0xffff800082b33d80, 0x5aff800080010410}, // signed
		0xffff800082b33d80: {0, 0xffff800080020004},
	}
	sock := fakeQEMU(t, regsDump, mem)
	console := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(console, []byte("[ 5.3] kvmspec: 2026-12-05T16:40:01.123Z start [2/2] kvm-arm64/pmu/b\n"), 0o644)
	var out bytes.Buffer
	err := cmdHang([]string{"-mon", sock, "-kallsyms", writeKallsyms(t, true), "-console", console,
		"-samples", "2", "-interval", "1ms", "-why", "hard LOCKUP", "-va-bits", "52"}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		": hard LOCKUP\n",
		"running spec: kvm-arm64/pmu/b\n",
		"sample 1 of 2", "sample 2 of 2",
		// more than maxSymbolSpan past weak_fn: unnamed
		"CPU#0 EL2h (kernel)\n    PC ffff80008012a4c8\n    LR ffff80008012a4b0\n",
		"#0  ffff800080010410 kvm_vcpu_run+0x10\n",
		"#1  ffff800080020004 weak_fn+0x4\n",
		"CPU#1 EL1h (not the kernel: a nested guest's or user code)\n    PC 0000000000400104\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "#1  ") != 2 {
		t.Errorf("want CPU 0's chain in both samples:\n%s", s)
	}
}

func TestHangErrors(t *testing.T) {
	var out bytes.Buffer
	if err := cmdHang(nil, &out); !errors.Is(err, errUsage) {
		t.Errorf("no -mon: %v", err)
	}
	if err := cmdHang([]string{"-mon", filepath.Join(t.TempDir(), "none")}, &out); err == nil || !strings.Contains(err.Error(), "monitor") {
		t.Errorf("missing socket: %v", err)
	}
	// A monitor that answers garbage: a clear error, not a hang.
	sock := fakeQEMU(t, "nothing like registers\n", nil)
	start := time.Now()
	if err := cmdHang([]string{"-mon", sock}, &out); err == nil || !strings.Contains(err.Error(), "no CPU") {
		t.Errorf("garbage dump: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("slow to give up")
	}
}

// As a watchdog (-wait), a QEMU that has ended by then leaves no report.
func TestHangWatchdogAfterQEMUEnded(t *testing.T) {
	var out bytes.Buffer
	if err := cmdHang([]string{"-wait", "1ms", "-mon", filepath.Join(t.TempDir(), "gone")}, &out); err != nil || out.Len() != 0 {
		t.Errorf("err %v, output %q", err, out.String())
	}
}
