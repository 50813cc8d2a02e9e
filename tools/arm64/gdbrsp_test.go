package main

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRSPUnescape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"a}\x5db", "a}b"}, // '}' escaped
		{"}\x03", "#"},
		{"x}", "x}"}, // a lone escape at the end is kept
	}
	for _, c := range cases {
		if got := rspUnescape([]byte(c.in)); got != c.want {
			t.Errorf("rspUnescape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRegNumbers(t *testing.T) {
	target := `<target><xi:include href="core.xml"/><xi:include href="sys.xml"/></target>`
	files := map[string]string{
		"core.xml": `<feature><reg name="x0" bitsize="64"/><reg name="x1" bitsize="64"/><reg name="pc" bitsize="64" regnum="32"/><reg name="cpsr" bitsize="32"/></feature>`,
		"sys.xml":  `<feature><reg name="ESR_EL2" bitsize="64" regnum="90" type="int"/><reg name="FAR_EL2" bitsize="64"/></feature>`,
	}
	nums, err := regNumbers(target, func(f string) (string, error) {
		x, ok := files[f]
		if !ok {
			return "", fmt.Errorf("no %s", f)
		}
		return x, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"x0": 0, "x1": 1, "pc": 32, "cpsr": 33, "ESR_EL2": 90, "FAR_EL2": 91}
	if fmt.Sprint(nums) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", nums, want)
	}
	if _, err := regNumbers(`<xi:include href="missing.xml"/>`, func(string) (string, error) { return "", fmt.Errorf("E01") }); err == nil {
		t.Error("a missing feature file is no error")
	}
}

// fakeStub serves the packets vcpuSysregs sends as QEMU's gdbstub does:
// two threads, a target description in chunks with binary escapes,
// registers little-endian.
func fakeStub(t *testing.T, badChecksum bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "gdb")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	target := `<target><xi:include href="sys.xml"/></target>`
	sys := `<feature><reg name="ESR_EL2" bitsize="64" regnum="90"/><reg name="FAR_EL2" bitsize="64"/></feature>`
	regs := map[string]map[string]string{
		"p01.01": {"5a": "0800009600000000", "5b": "efbeadde00000000"},
		"p01.02": {"5a": "0000005e00000000", "5b": "0000000000000000"},
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		thread := ""
		for {
			if _, err := r.ReadString('$'); err != nil {
				return
			}
			body, err := r.ReadString('#')
			if err != nil {
				return
			}
			r.Discard(2)
			cmd := strings.TrimSuffix(body, "#")
			var rep string
			switch {
			case strings.HasPrefix(cmd, "qSupported"):
				rep = "PacketSize=1000;qXfer:features:read+;multiprocess+"
			case cmd == "?":
				rep = "T05thread:p01.01;"
			case strings.HasPrefix(cmd, "qXfer:features:read:"):
				var annex string
				var off, n int
				parts := strings.Split(strings.TrimPrefix(cmd, "qXfer:features:read:"), ":")
				annex = parts[0]
				fmt.Sscanf(parts[1], "%x,%x", &off, &n)
				doc := map[string]string{"target.xml": target, "sys.xml": sys}[annex]
				end := min(off+20, len(doc)) // small chunks
				chunk := strings.ReplaceAll(doc[off:end], "}", "}]")
				if end == len(doc) {
					rep = "l" + chunk
				} else {
					rep = "m" + chunk
				}
			case cmd == "qfThreadInfo":
				rep = "mp01.01,p01.02"
			case cmd == "qsThreadInfo":
				rep = "l"
			case strings.HasPrefix(cmd, "Hg"):
				thread, rep = strings.TrimPrefix(cmd, "Hg"), "OK"
			case strings.HasPrefix(cmd, "p"):
				rep = regs[thread][strings.TrimPrefix(cmd, "p")]
				if rep == "" {
					rep = "E22"
				}
			case cmd == "D":
				rep = "OK"
			}
			frame := rspFrame(rep)
			if badChecksum {
				frame = frame[:len(frame)-2] + "00"
			}
			fmt.Fprintf(c, "+%s", frame)
		}
	}()
	return sock
}

func TestVCPUSysregs(t *testing.T) {
	ids, regs, err := vcpuSysregs(fakeStub(t, false), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[p01.01 p01.02]" {
		t.Errorf("threads %v", ids)
	}
	if regs[0]["ESR_EL2"] != 0x96000008 || regs[0]["FAR_EL2"] != 0xdeadbeef || regs[1]["ESR_EL2"] != 0x5e000000 {
		t.Errorf("registers %x", regs)
	}
	if got := esrString(regs[0]["ESR_EL2"]); got != "EC 0x25 data abort at this EL, FSC 0x08" && !strings.Contains(got, "access flag") {
		t.Errorf("esrString = %q", got)
	}
	if _, _, err := vcpuSysregs(fakeStub(t, true), 5*time.Second); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a bad checksum: %v", err)
	}
}

func TestESRString(t *testing.T) {
	cases := []struct {
		esr  uint64
		want string
	}{
		{0x96000045, "EC 0x25 data abort at this EL, translation fault level 1, write"},
		{0x9600004f, "EC 0x25 data abort at this EL, permission fault level 3, write"},
		{0x8600000b, "EC 0x21 instruction abort at this EL, access flag fault level 3"},
		{0x93c08006, "EC 0x24 data abort from a lower EL, translation fault level 2"},
		{0x5e000000, "EC 0x17 SMC"},
		{0xbe000000, "EC 0x2f SError"},
		{0xfc000000, "EC 0x3f"},
	}
	for _, c := range cases {
		if got := esrString(c.esr); got != c.want {
			t.Errorf("esrString(%#x) = %q, want %q", c.esr, got, c.want)
		}
	}
}
