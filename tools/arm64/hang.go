package main

// arm64 hang: what a hung arm64 guest kernel was doing, read from outside.
//
// When the guest kernel under QEMU stops making progress (a hard lockup,
// RCU stalls, a run that never ends), nothing comes back through the
// results port and a CPU spinning with interrupts masked prints no
// backtrace. QEMU still knows every vCPU's registers and memory: through
// its human monitor (HMP, a unix socket run.sh opens) this reads each
// CPU's PC, LR, SP, frame pointer and exception level a few times, walks
// the frame-pointer chain of those in the kernel, names every kernel
// address with the guest's own /proc/kallsyms (sent through the
// kvmspec.early port at boot), and names the spec the run was in from
// the console's --progress-file lines.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hmp is a connection to QEMU's human monitor.
type hmp struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

const hmpPrompt = "(qemu) "

// maxHMPReply bounds one reply: `info registers -a` of 8 CPUs with SVE
// state is about 30 KiB.
const maxHMPReply = 4 << 20

func dialHMP(path string, timeout time.Duration) (*hmp, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	m := &hmp{conn: c, r: bufio.NewReader(c), timeout: timeout}
	if _, err := m.readReply(); err != nil { // the banner
		c.Close()
		return nil, fmt.Errorf("monitor banner: %w", err)
	}
	return m, nil
}

func (m *hmp) Close() error { return m.conn.Close() }

// readReply reads up to the next prompt and returns what came before it.
func (m *hmp) readReply() (string, error) {
	if err := m.conn.SetReadDeadline(time.Now().Add(m.timeout)); err != nil {
		return "", err
	}
	var b []byte
	for !bytes.HasSuffix(b, []byte(hmpPrompt)) {
		c, err := m.r.ReadByte()
		if err != nil {
			return "", err
		}
		if b = append(b, c); len(b) > maxHMPReply {
			return "", fmt.Errorf("monitor reply over %d bytes", maxHMPReply)
		}
	}
	return string(b[:len(b)-len(hmpPrompt)]), nil
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// Do runs one command and returns its output: the monitor's echo of the
// command (its first line, drawn with terminal escapes) is dropped.
func (m *hmp) Do(cmd string) (string, error) {
	if err := m.conn.SetWriteDeadline(time.Now().Add(m.timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(m.conn, cmd+"\n"); err != nil {
		return "", err
	}
	out, err := m.readReply()
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	} else {
		out = ""
	}
	out = ansiEscape.ReplaceAllString(out, "")
	return strings.ReplaceAll(out, "\r", ""), nil
}

// cpuState is one CPU of `info registers -a`.
type cpuState struct {
	Index              int
	PC, LR, FP, SP     uint64
	EL                 string // "EL2h", "EL1h", "EL0t", ...
	PSTATE             uint64
	Regs               []string // the general-register lines as QEMU printed them
	haveFP, havePState bool
}

var (
	cpuHeader = regexp.MustCompile(`^CPU#(\d+)\s*$`)
	regField  = regexp.MustCompile(`\b(PC|X29|X30|SP|PSTATE)=([0-9a-fA-F]+)`)
	elField   = regexp.MustCompile(`\bEL([0-3])([th])\b`)
)

// parseRegisters reads the CPUs of an AArch64 `info registers -a`.
func parseRegisters(s string) ([]cpuState, error) {
	var cpus []cpuState
	var cur *cpuState
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, " ")
		if m := cpuHeader.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			cpus = append(cpus, cpuState{Index: n})
			cur = &cpus[len(cpus)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "PC=") || strings.HasPrefix(t, "X") || strings.HasPrefix(t, "PSTATE=") {
			cur.Regs = append(cur.Regs, t)
		}
		for _, m := range regField.FindAllStringSubmatch(line, -1) {
			v, err := strconv.ParseUint(m[2], 16, 64)
			if err != nil {
				return nil, fmt.Errorf("CPU#%d %s=%s: %w", cur.Index, m[1], m[2], err)
			}
			switch m[1] {
			case "PC":
				cur.PC = v
			case "X29":
				cur.FP, cur.haveFP = v, true
			case "X30":
				cur.LR = v
			case "SP":
				cur.SP = v
			case "PSTATE":
				cur.PSTATE, cur.havePState = v, true
			}
		}
		if strings.HasPrefix(line, "PSTATE=") {
			if m := elField.FindStringSubmatch(line); m != nil {
				cur.EL = "EL" + m[1] + m[2]
			}
		}
	}
	if len(cpus) == 0 {
		return nil, errors.New("no CPU in the registers dump")
	}
	for _, c := range cpus {
		if !c.haveFP || !c.havePState || c.EL == "" {
			return nil, fmt.Errorf("CPU#%d: registers dump without X29, PSTATE or exception level", c.Index)
		}
	}
	return cpus, nil
}

// symbols are the text symbols of a kernel, sorted by address.
type symbols struct{ syms []ksym }

type ksym struct {
	addr uint64
	name string
}

// kernelVA says whether a is in the upper (TTBR1) half: a kernel address.
func kernelVA(a uint64) bool { return a>>52 == 0xfff }

// stripPAC removes a pointer authentication code from a return address:
// the PAC sits in the bits above the kernel's VA size (bit 55 excepted,
// which selects the half), so they are set back to bit 55's value.
func stripPAC(a uint64, vaBits uint) uint64 {
	if vaBits == 0 || vaBits >= 56 {
		return a
	}
	mask := ^uint64(0) << vaBits
	if a>>55&1 == 1 {
		return a | mask
	}
	return a &^ mask
}

// readKallsyms reads /proc/kallsyms (gzipped or not): text symbols only.
// Addresses of 0 (kptr_restrict) leave the table empty.
func readKallsyms(path string) (*symbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	s := &symbols{}
	sc := bufio.NewScanner(io.LimitReader(r, 256<<20))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || !strings.ContainsAny(fs[1], "tTwW") {
			continue
		}
		a, err := strconv.ParseUint(fs[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		n := fs[2]
		if len(fs) > 3 { // a module's: "name\t[module]"
			n += " " + fs[3]
		}
		s.syms = append(s.syms, ksym{a, n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sort.SliceStable(s.syms, func(i, j int) bool { return s.syms[i].addr < s.syms[j].addr })
	return s, nil
}

// maxSymbolSpan: an address further than this past the nearest symbol is
// not named (it is past the end of the text, or not code).
const maxSymbolSpan = 1 << 20

// Name gives "symbol+0xoff" for a kernel text address, "" when unknown.
func (s *symbols) Name(a uint64) string {
	if s == nil || !kernelVA(a) {
		return ""
	}
	i := sort.Search(len(s.syms), func(i int) bool { return s.syms[i].addr > a }) - 1
	if i < 0 || a-s.syms[i].addr > maxSymbolSpan {
		return ""
	}
	return fmt.Sprintf("%s+0x%x", s.syms[i].name, a-s.syms[i].addr)
}

// memReader reads guest virtual memory as one CPU sees it.
type memReader interface {
	ReadU64Pair(cpu int, va uint64) (uint64, uint64, error)
}

// hmpMem reads through `cpu N` and `x /2gx VA`.
type hmpMem struct{ m *hmp }

var xLine = regexp.MustCompile(`^([0-9a-fA-F]+):\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)`)

func (h hmpMem) ReadU64Pair(cpu int, va uint64) (uint64, uint64, error) {
	if _, err := h.m.Do(fmt.Sprintf("cpu %d", cpu)); err != nil {
		return 0, 0, err
	}
	out, err := h.m.Do(fmt.Sprintf("x /2gx 0x%x", va))
	if err != nil {
		return 0, 0, err
	}
	m := xLine.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return 0, 0, fmt.Errorf("x /2gx 0x%x: %q", va, strings.TrimSpace(out))
	}
	a, _ := strconv.ParseUint(m[2], 16, 64)
	b, _ := strconv.ParseUint(m[3], 16, 64)
	return a, b, nil
}

// maxFrames bounds a frame-pointer walk.
const maxFrames = 24

// walkFrames follows the AArch64 frame records from fp: each is
// {previous fp, return address}; the chain ends at a zero or non-kernel
// fp, a record that does not move up the stack, a return address that is
// not kernel text (when isText knows), or maxFrames. Return addresses
// are given with their PAC removed.
func walkFrames(mem memReader, cpu int, fp uint64, vaBits uint, isText func(uint64) bool) (rets []uint64, err error) {
	for range maxFrames {
		if fp == 0 || !kernelVA(fp) || fp%8 != 0 {
			return rets, nil
		}
		next, lr, err := mem.ReadU64Pair(cpu, fp)
		if err != nil {
			return rets, err
		}
		if lr == 0 {
			return rets, nil
		}
		lr = stripPAC(lr, vaBits)
		rets = append(rets, lr)
		if next <= fp || (isText != nil && !isText(lr)) {
			return rets, nil
		}
		fp = next
	}
	return rets, nil
}

// describe writes one CPU's state: where it is, and its kernel call chain.
func describe(w io.Writer, c cpuState, syms *symbols, mem memReader, vaBits uint) {
	name := func(a uint64) string {
		if n := syms.Name(a); n != "" {
			return fmt.Sprintf("%016x %s", a, n)
		}
		return fmt.Sprintf("%016x", a)
	}
	where := "kernel"
	if !kernelVA(c.PC) {
		where = "not the kernel: a nested guest's or user code"
	}
	fmt.Fprintf(w, "  CPU#%d %s (%s)\n    PC %s\n    LR %s\n    SP %016x FP %016x\n", c.Index, c.EL, where, name(c.PC), name(stripPAC(c.LR, vaBits)), c.SP, c.FP)
	if !kernelVA(c.PC) || mem == nil {
		return
	}
	var isText func(uint64) bool
	if syms != nil && len(syms.syms) > 0 {
		isText = func(a uint64) bool { return syms.Name(a) != "" }
	}
	rets, err := walkFrames(mem, c.Index, c.FP, vaBits, isText)
	for i, a := range rets {
		fmt.Fprintf(w, "    #%-2d %s\n", i, name(a))
	}
	if err != nil {
		fmt.Fprintf(w, "    (frame walk stopped: %v)\n", err)
	}
}

var (
	progressStart = regexp.MustCompile(`kvmspec: \S+ start \[(\d+)/(\d+)\] (.*)$`)
	progressEnd   = regexp.MustCompile(`kvmspec: \S+ (\w+) \[(\d+)/(\d+)\] (.*) \(\d+\.\d+s\)$`)
)

// runningSpec reads the console's progress lines (kvmspec run
// --progress-file) and returns the spec that started and did not end,
// with its start line; "" when every spec that started ended.
func runningSpec(console io.Reader) (spec, line string) {
	sc := bufio.NewScanner(console)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if m := progressEnd.FindStringSubmatch(l); m != nil && m[1] != "start" {
			if m[4] == spec {
				spec, line = "", ""
			}
			continue
		}
		if m := progressStart.FindStringSubmatch(l); m != nil {
			spec, line = m[3], l
		}
	}
	return spec, line
}

func cmdHang(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("hang", flag.ContinueOnError)
	mon := fs.String("mon", "", "QEMU human monitor unix socket")
	kallsyms := fs.String("kallsyms", "", "the guest's /proc/kallsyms, gzipped or not (optional)")
	console := fs.String("console", "", "the guest console log with kvmspec progress lines (optional)")
	samples := fs.Int("samples", 3, "register samples")
	interval := fs.Duration("interval", 2*time.Second, "time between samples")
	why := fs.String("why", "", "what made run.sh look (printed first)")
	gdb := fs.String("gdb", "", "QEMU gdbstub unix socket: each vCPU's exception registers (optional)")
	vaBits := fs.Uint("va-bits", 48, "the guest kernel's CONFIG_ARM64_VA_BITS (where return addresses' PACs begin)")
	wait := fs.Duration("wait", 0, "first wait this long; then report only if QEMU still answers (a watchdog)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mon == "" || fs.NArg() != 0 || *samples < 1 {
		return fmt.Errorf("%w: hang -mon SOCKET [-kallsyms FILE] [-console FILE] [-samples N] [-interval D] [-why TEXT]", errUsage)
	}
	if *wait > 0 {
		time.Sleep(*wait)
		m, err := dialHMP(*mon, 10*time.Second)
		if err != nil {
			return nil // QEMU has ended: nothing hung
		}
		m.Close()
	}
	w := stdout
	fmt.Fprintf(w, "=== hang report at %s", time.Now().UTC().Format(time.RFC3339))
	if *why != "" {
		fmt.Fprintf(w, ": %s", *why)
	}
	fmt.Fprintln(w)
	if *console != "" {
		if f, err := os.Open(*console); err != nil {
			fmt.Fprintf(w, "console: %v\n", err)
		} else {
			spec, line := runningSpec(f)
			f.Close()
			if spec != "" {
				fmt.Fprintf(w, "running spec: %s\n  (%s)\n", spec, strings.TrimSpace(line))
			} else {
				fmt.Fprintln(w, "running spec: none (no progress line of a spec that did not end)")
			}
		}
	}
	var syms *symbols
	if *kallsyms != "" {
		var err error
		if syms, err = readKallsyms(*kallsyms); err != nil {
			fmt.Fprintf(w, "kallsyms: %v (addresses unnamed)\n", err)
		} else if len(syms.syms) == 0 {
			fmt.Fprintln(w, "kallsyms: no addresses (kptr_restrict?); addresses unnamed")
		}
	}
	m, err := dialHMP(*mon, 10*time.Second)
	if err != nil {
		return fmt.Errorf("monitor %s: %w", *mon, err)
	}
	defer m.Close()
	for i := range *samples {
		if i > 0 {
			time.Sleep(*interval)
		}
		out, err := m.Do("info registers -a")
		if err != nil {
			return err
		}
		cpus, err := parseRegisters(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "sample %d of %d at %s\n", i+1, *samples, time.Now().UTC().Format("15:04:05.000"))
		for _, c := range cpus {
			describe(w, c, syms, hmpMem{m}, *vaBits)
			if i == 0 {
				fmt.Fprintf(w, "    %s\n", strings.Join(c.Regs, "\n    "))
			}
		}
	}
	if *gdb != "" {
		ids, regs, err := vcpuSysregs(*gdb, 10*time.Second)
		if err != nil {
			fmt.Fprintf(w, "system registers: %v\n", err)
			return nil
		}
		fmt.Fprintln(w, "system registers (gdbstub):")
		for i, id := range ids {
			fmt.Fprintf(w, "  CPU#%d (thread %s)\n", i, id)
			for _, name := range hangSysregs {
				v, ok := regs[i][name]
				if !ok {
					continue
				}
				fmt.Fprintf(w, "    %-9s %016x", name, v)
				if strings.HasPrefix(name, "ELR") || strings.HasPrefix(name, "VBAR") {
					if n := syms.Name(v); n != "" {
						fmt.Fprintf(w, " %s", n)
					}
				}
				if strings.HasPrefix(name, "ESR") {
					fmt.Fprintf(w, " %s", esrString(v))
				}
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}

// esrString names an ESR_ELx value's exception class and, for aborts,
// the fault status code.
func esrString(esr uint64) string {
	ec := esr >> 26 & 0x3f
	iss := esr & 0x1ffffff
	names := map[uint64]string{0x00: "unknown", 0x01: "WFx", 0x07: "FP/SIMD access", 0x0e: "illegal execution state",
		0x15: "SVC", 0x16: "HVC", 0x17: "SMC", 0x18: "MSR/MRS trap", 0x20: "instruction abort from a lower EL",
		0x21: "instruction abort at this EL", 0x22: "PC alignment", 0x24: "data abort from a lower EL",
		0x25: "data abort at this EL", 0x26: "SP alignment", 0x2f: "SError", 0x30: "breakpoint from a lower EL",
		0x31: "breakpoint at this EL", 0x32: "step from a lower EL", 0x33: "step at this EL",
		0x34: "watchpoint from a lower EL", 0x35: "watchpoint at this EL", 0x3c: "BRK"}
	s := fmt.Sprintf("EC 0x%02x", ec)
	if n, ok := names[ec]; ok {
		s += " " + n
	}
	if ec >= 0x20 && ec <= 0x25 {
		fsc := iss & 0x3f
		lvl := fsc & 3
		switch fsc &^ 3 {
		case 0x04:
			s += fmt.Sprintf(", translation fault level %d", lvl)
		case 0x08:
			s += fmt.Sprintf(", access flag fault level %d", lvl)
		case 0x0c:
			s += fmt.Sprintf(", permission fault level %d", lvl)
		default:
			s += fmt.Sprintf(", FSC 0x%02x", fsc)
		}
		if ec >= 0x24 && iss>>6&1 == 1 {
			s += ", write"
		}
	}
	return s
}
