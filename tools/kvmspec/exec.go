package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites"
)

// Limits of `kvmspec exec`, so that a bad layout file cannot ask for the
// host's memory or an endless run.
const (
	maxExecConfig  = 1 << 20
	maxExecBinary  = 64 << 20
	maxExecDump    = 1 << 20 // bytes shown per dump range; larger ones are hashed only
	maxExecTrace   = 1000    // exits kept in the trace
	defaultExits   = 100000
	defaultExecFor = 10 * time.Second
)

// num is a JSON number or a string in Go syntax ("0x700000", "16<<20" not
// accepted): addresses read best in hex.
type num uint64

func (n *num) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
	if err != nil {
		return fmt.Errorf("want a number such as 4096 or \"0x1000\", got %s", b)
	}
	*n = num(v)
	return nil
}

func (n num) MarshalJSON() ([]byte, error) { return json.Marshal(fmt.Sprintf("%#x", uint64(n))) }

// execConfig is the layout file of `kvmspec exec`.
type execConfig struct {
	Binary  string `json:"binary"` // flat binary, relative to the layout file
	Load    num    `json:"load"`   // guest-physical (= virtual) load address; default the code area
	Entry   *num   `json:"entry"`  // default: Load
	Mode    string `json:"mode"`   // "cpl0" or "cpl3"; default the backend's
	MemSize num    `json:"mem_size"`
	// Layout moves the standard guest's areas (harness/guest Layout).
	Layout struct {
		VCPUBlocks    num `json:"vcpu_blocks"`
		PageTables    num `json:"page_tables"`
		PageTableSize num `json:"page_table_size"`
		Code          num `json:"code"`
		CodeSize      num `json:"code_size"`
	} `json:"layout"`
	UcallMMIO bool `json:"ucall_mmio"`
	// Slots are memory slots beyond slot 0 (which is mem_size at 0).
	Slots []struct {
		Slot     uint32 `json:"slot"`
		GPA      num    `json:"gpa"`
		Size     num    `json:"size"`
		ReadOnly bool   `json:"read_only"`
	} `json:"slots"`
	// Map maps gva → gpa with permissions, or, without gpa, changes the
	// permissions of the identity map over [gva, gva+size).
	Map []struct {
		GVA  num    `json:"gva"`
		GPA  *num   `json:"gpa"`
		Size num    `json:"size"`
		Perm string `json:"perm"` // letters of "rwxu"; "" unmaps
	} `json:"map"`
	Regs map[string]num `json:"regs"` // initial registers: rax … r15, rip, rflags
	End  struct {
		Port      *num   `json:"port"`      // an OUT to this port ends the run
		HLT       bool   `json:"hlt"`       // HLT ends the run (otherwise it is stepped over)
		Exception bool   `json:"exception"` // an exception is the expected end
		MaxExits  int    `json:"max_exits"` // exits before giving up; default 100000
		Timeout   string `json:"timeout"`   // Go duration; default 10s
	} `json:"end"`
	Dump []struct {
		GPA   num  `json:"gpa"`
		Size  num  `json:"size"`
		Bytes bool `json:"bytes"` // include the bytes in hex, not just the hash
	} `json:"dump"`
}

// execExit is one exit of the trace.
type execExit struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	RIP    num    `json:"rip"`
}

type execDump struct {
	GPA    num    `json:"gpa"`
	Size   num    `json:"size"`
	SHA256 string `json:"sha256"`
	Hex    string `json:"hex,omitempty"`
}

// execResult is what `kvmspec exec` prints.
type execResult struct {
	Backend string `json:"backend"`
	Mode    string `json:"mode"`
	// End is why the run stopped: port, hlt, exception, shutdown,
	// exit-limit, timeout, done (a DONE ucall), or error.
	End       string         `json:"end"`
	Expected  bool           `json:"expected"` // End is one of the layout's end conditions
	Detail    string         `json:"detail,omitempty"`
	Exception *execException `json:"exception,omitempty"`
	Exits     int            `json:"exits"`
	Trace     []execExit     `json:"trace"`
	Regs      map[string]num `json:"regs"`
	Flags     []string       `json:"flags"`
	Memory    []execDump     `json:"memory,omitempty"`
}

type execException struct {
	Vector    num `json:"vector"`
	ErrorCode num `json:"error_code"`
	RIP       num `json:"rip"`
	CR2       num `json:"cr2"`
}

var execCmd = &command{
	name: "exec", args: "[--backend B] LAYOUT.json",
	summary: "run a flat binary on a backend and print its exits and final state",
	description: `Loads the flat binary the layout file names into a standard guest laid out
as the file says (load address, memory size, extra slots, page-table
mappings and permissions, ring, initial registers), runs it until an end
condition (an OUT to a port, HLT, an exception, an exit count or a time
limit) and prints the exit trace and the final state as JSON: registers,
decoded flags, and the chosen memory ranges as SHA-256 and bytes. See
docs/exec.md for the file format and examples.`,
	exits: []string{
		"0  the run ended by one of the layout's end conditions",
		"1  it ended otherwise (exit or time limit, unexpected exception, shutdown)",
		"2  bad usage: unreadable or invalid layout or binary, unavailable backend",
	},
	flags: func(fs *flag.FlagSet) any {
		return fs.String("backend", "auto", "backend: kvm, emu or auto (kvm if usable, else emu)")
	},
	run: func(c *command, state any, pos []string, stdout, stderr io.Writer) int {
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "kvmspec exec: want one layout file (see kvmspec help exec)\n")
			return exitUsage
		}
		cfg, img, err := readExecConfig(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "kvmspec exec: %v\n", err)
			return exitUsage
		}
		res, err := execute(*state.(*string), cfg, img)
		if err != nil {
			fmt.Fprintf(stderr, "kvmspec exec: %v\n", err)
			return exitUsage
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "kvmspec exec: %v\n", err)
			return exitFailed
		}
		if !res.Expected {
			return exitFailed
		}
		return exitOK
	},
}

// readExecConfig reads and checks the layout file and its binary.
func readExecConfig(path string) (*execConfig, *execImage, error) {
	b, err := suites.ReadCapped(path, maxExecConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("layout: %w", err)
	}
	var cfg execConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, nil, fmt.Errorf("layout %s: %w", path, err)
	}
	if cfg.Binary == "" {
		return nil, nil, fmt.Errorf("layout %s: no \"binary\"", path)
	}
	bin := cfg.Binary
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(filepath.Dir(path), bin)
	}
	raw, err := suites.ReadCapped(bin, maxExecBinary)
	if err != nil {
		return nil, nil, fmt.Errorf("binary: %w", err)
	}
	img := &execImage{code: raw}
	if bytes.HasPrefix(raw, []byte(elf.ELFMAG)) {
		if img, err = loadELF(raw); err != nil {
			return nil, nil, fmt.Errorf("binary %s: %w", bin, err)
		}
		if cfg.Load != 0 {
			return nil, nil, fmt.Errorf("layout %s: \"load\" is set by the ELF's segments; remove it", path)
		}
	}
	if cfg.Mode != "" && cfg.Mode != "cpl0" && cfg.Mode != "cpl3" {
		return nil, nil, fmt.Errorf("layout %s: mode %q: want cpl0 or cpl3", path, cfg.Mode)
	}
	if cfg.End.Timeout != "" {
		if d, err := time.ParseDuration(cfg.End.Timeout); err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("layout %s: end.timeout %q: want a positive duration such as 2s", path, cfg.End.Timeout)
		}
	}
	if cfg.End.MaxExits < 0 {
		return nil, nil, fmt.Errorf("layout %s: end.max_exits %d: want a positive count", path, cfg.End.MaxExits)
	}
	for _, p := range cfg.Map {
		if strings.Trim(p.Perm, "rwxu") != "" {
			return nil, nil, fmt.Errorf("layout %s: map perm %q: want letters of rwxu", path, p.Perm)
		}
	}
	for name := range cfg.Regs {
		if _, ok := regField(&hv.Regs{}, name); !ok {
			return nil, nil, fmt.Errorf("layout %s: regs: unknown register %q", path, name)
		}
	}
	if cfg.End.Port != nil && *cfg.End.Port > 0xffff {
		return nil, nil, fmt.Errorf("layout %s: end.port %#x: not a port", path, uint64(*cfg.End.Port))
	}
	return &cfg, img, nil
}

// execImage is what exec loads: a flat binary, or an ELF64 executable's
// segments laid out as one image from its lowest segment.
type execImage struct {
	code        []byte
	elf         bool
	base, entry uint64 // ELF only: where code goes, and e_entry
}

// loadELF lays out the PT_LOAD segments of an x86-64 ELF64 executable as
// one image (file bytes, then zeros up to each segment's memory size) at
// the lowest segment's physical address, since the guest maps GVA = GPA.
func loadELF(raw []byte) (*execImage, error) {
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("elf: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("elf: %v %v %v, want an ELFCLASS64 EM_X86_64 ET_EXEC executable", f.Class, f.Machine, f.Type)
	}
	var loads []*elf.Prog
	lo, hi := uint64(1<<64-1), uint64(0)
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		end := p.Paddr + p.Memsz
		if p.Filesz > p.Memsz || end < p.Paddr {
			return nil, fmt.Errorf("elf: segment at %#x: file size %#x, memory size %#x", p.Paddr, p.Filesz, p.Memsz)
		}
		loads = append(loads, p)
		lo, hi = min(lo, p.Paddr), max(hi, end)
	}
	if len(loads) == 0 {
		return nil, errors.New("elf: no PT_LOAD segment")
	}
	if hi-lo > maxExecBinary {
		return nil, fmt.Errorf("elf: segments span [%#x, %#x), more than %d bytes", lo, hi, maxExecBinary)
	}
	img := make([]byte, hi-lo)
	for _, p := range loads {
		if _, err := io.ReadFull(p.Open(), img[p.Paddr-lo:p.Paddr-lo+p.Filesz]); err != nil {
			return nil, fmt.Errorf("elf: segment at %#x: %w", p.Paddr, err)
		}
	}
	return &execImage{code: img, elf: true, base: lo, entry: f.Entry}, nil
}

var regNames = []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"}

func regField(r *hv.Regs, name string) (*uint64, bool) {
	m := map[string]*uint64{"rax": &r.RAX, "rbx": &r.RBX, "rcx": &r.RCX, "rdx": &r.RDX,
		"rsi": &r.RSI, "rdi": &r.RDI, "rsp": &r.RSP, "rbp": &r.RBP,
		"r8": &r.R8, "r9": &r.R9, "r10": &r.R10, "r11": &r.R11,
		"r12": &r.R12, "r13": &r.R13, "r14": &r.R14, "r15": &r.R15,
		"rip": &r.RIP, "rflags": &r.RFLAGS}
	p, ok := m[name]
	return p, ok
}

var flagNames = []struct {
	bit  uint64
	name string
}{{hv.FlagCF, "CF"}, {hv.FlagPF, "PF"}, {hv.FlagAF, "AF"}, {hv.FlagZF, "ZF"}, {hv.FlagSF, "SF"},
	{hv.FlagTF, "TF"}, {hv.FlagIF, "IF"}, {hv.FlagDF, "DF"}, {hv.FlagOF, "OF"}, {hv.FlagRF, "RF"}}

// execute builds the guest, runs it and collects the result.
func execute(backend string, cfg *execConfig, img *execImage) (*execResult, error) {
	if backend == "auto" {
		backend = "kvm"
		if h, err := suites.OpenBackend("kvm"); err != nil {
			backend = "emu"
		} else {
			h.Close()
		}
	}
	h, err := suites.OpenBackend(backend)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", backend, err)
	}
	defer h.Close()
	mode := guest.DefaultMode(h.Caps())
	switch cfg.Mode {
	case "cpl0":
		mode = guest.CPL0
	case "cpl3":
		mode = guest.CPL3
	}
	l := cfg.Layout
	g, err := guest.New(h, guest.Config{Mode: mode, MemSize: uint64(cfg.MemSize), UcallMMIO: cfg.UcallMMIO,
		Layout: guest.Layout{VCPUBlocks: uint64(l.VCPUBlocks), PageTables: uint64(l.PageTables),
			PageTableSize: uint64(l.PageTableSize), Code: uint64(l.Code), CodeSize: uint64(l.CodeSize)}})
	if err != nil {
		return nil, err // guest.New names itself
	}
	defer g.Close()
	for _, s := range cfg.Slots {
		mem, err := hv.NewMemory(uint64(s.Size), hv.Backing(0))
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", s.Slot, err)
		}
		defer mem.Close()
		ms := hv.Memslot{Slot: s.Slot, GPA: uint64(s.GPA), Size: uint64(s.Size), Memory: mem}
		if s.ReadOnly {
			ms.Flags = hv.MemReadOnly
		}
		if err := g.VM.SetMemslot(ms); err != nil {
			return nil, fmt.Errorf("slot %d: %w", s.Slot, err)
		}
	}
	load := uint64(cfg.Load)
	if load == 0 {
		load = g.Config().Layout.Code
	}
	entry := load
	if img.elf {
		load, entry = img.base, img.entry
	}
	if cfg.Entry != nil {
		entry = uint64(*cfg.Entry)
	}
	if err := g.LoadFlat(load, img.code, entry); err != nil {
		return nil, err
	}
	for _, m := range cfg.Map {
		if err := applyMap(g, uint64(m.GVA), m.GPA, uint64(m.Size), m.Perm); err != nil {
			return nil, err
		}
	}
	if len(cfg.Regs) > 0 {
		r, err := g.VCPUs[0].Regs()
		if err != nil {
			return nil, err
		}
		for name, v := range cfg.Regs {
			p, _ := regField(&r, name)
			*p = uint64(v)
		}
		if err := g.VCPUs[0].SetRegs(&r); err != nil {
			return nil, fmt.Errorf("initial registers: %w", err)
		}
	}
	res := &execResult{Backend: backend, Mode: mode.String(), Trace: []execExit{}}
	runExec(g, cfg, res)
	r, err := g.VCPUs[0].Regs()
	if err != nil {
		return nil, fmt.Errorf("final registers: %w", err)
	}
	res.Regs = map[string]num{}
	for _, name := range regNames {
		p, _ := regField(&r, name)
		res.Regs[name] = num(*p)
	}
	res.Flags = []string{}
	for _, f := range flagNames {
		if r.RFLAGS&f.bit != 0 {
			res.Flags = append(res.Flags, f.name)
		}
	}
	res.Flags = append(res.Flags, fmt.Sprintf("IOPL=%d", r.RFLAGS&hv.FlagIOPL>>12))
	for _, d := range cfg.Dump {
		b, err := dumpBytes(g, uint64(d.GPA), uint64(d.Size))
		if err != nil {
			return nil, fmt.Errorf("dump [%#x, +%#x): %w", uint64(d.GPA), uint64(d.Size), err)
		}
		sum := sha256.Sum256(b)
		out := execDump{GPA: d.GPA, Size: d.Size, SHA256: hex.EncodeToString(sum[:])}
		if d.Bytes {
			out.Hex = hex.EncodeToString(b[:min(len(b), maxExecDump)])
		}
		res.Memory = append(res.Memory, out)
	}
	return res, nil
}

// applyMap maps or re-protects a range of the guest's page tables.
func applyMap(g *guest.Guest, gva uint64, gpa *num, size uint64, perm string) error {
	flags := uint64(0)
	if perm != "" {
		flags = guest.PTEPresent
	}
	if strings.Contains(perm, "w") {
		flags |= guest.PTEWrite
	}
	if strings.Contains(perm, "u") {
		flags |= guest.PTEUser
	}
	if perm != "" && !strings.Contains(perm, "x") {
		flags |= guest.PTENX
	}
	var err error
	switch {
	case perm == "":
		err = g.PT.Unmap(gva, size)
	case gpa != nil:
		err = g.PT.Map(gva, uint64(*gpa), size, flags)
	default:
		err = g.PT.Protect(gva, size, flags, guest.PTEPresent|guest.PTEWrite|guest.PTEUser|guest.PTENX)
	}
	if err != nil {
		return fmt.Errorf("map [%#x, +%#x) %q: %w", gva, size, perm, err)
	}
	return nil
}

// dumpBytes reads guest-physical memory from slot 0 or an extra slot.
func dumpBytes(g *guest.Guest, gpa, size uint64) ([]byte, error) {
	if size == 0 || size > maxExecBinary {
		return nil, fmt.Errorf("size: want 1 to %d bytes", maxExecBinary)
	}
	if gpa < g.Config().MemSize {
		return g.Bytes(gpa, int(size))
	}
	return nil, errors.New("outside slot 0 (extra slots are not dumped yet)")
}

// runExec runs vCPU 0 until an end condition and records how it ended.
func runExec(g *guest.Guest, cfg *execConfig, res *execResult) {
	timeout := defaultExecFor
	if cfg.End.Timeout != "" {
		timeout, _ = time.ParseDuration(cfg.End.Timeout) // checked by readExecConfig
	}
	maxExits := cfg.End.MaxExits
	if maxExits == 0 {
		maxExits = defaultExits
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	end := func(reason string, expected bool, detail string) {
		res.End, res.Expected, res.Detail = reason, expected, detail
	}
	for {
		ev, err := g.Run(ctx, 0)
		var xe *guest.ExceptionError
		var te *guest.TimeoutError
		switch {
		case errors.As(err, &xe):
			x := xe.Exception
			res.Exception = &execException{Vector: num(x.Vector), ErrorCode: num(x.ErrorCode), RIP: num(x.RIP), CR2: num(x.CR2)}
			end("exception", cfg.End.Exception, x.String())
			return
		case errors.As(err, &te):
			end("timeout", false, fmt.Sprintf("after %v", timeout))
			return
		case err != nil:
			end("error", false, err.Error())
			return
		case ev.Ucall != nil:
			end("done", true, fmt.Sprintf("ucall %v", ev.Ucall.Cmd))
			return
		}
		res.Exits++
		rip := uint64(0)
		if r, err := g.VCPUs[0].Regs(); err == nil {
			rip = r.RIP
		}
		if len(res.Trace) < maxExecTrace {
			res.Trace = append(res.Trace, execExit{Kind: ev.Exit.Kind().String(), Detail: ev.Exit.String(), RIP: num(rip)})
		}
		switch x := ev.Exit.(type) {
		case *hv.IOExit:
			if !x.In && cfg.End.Port != nil && uint64(x.Port) == uint64(*cfg.End.Port) {
				end("port", true, x.String())
				return
			}
			if x.In {
				x.SetValue(0) // an IN from nowhere reads 0
			}
		case *hv.MMIOExit:
			if !x.Write {
				clear(x.Data)
			}
		case *hv.HaltExit:
			if cfg.End.HLT {
				end("hlt", true, "")
				return
			}
		default:
			end(ev.Exit.Kind().String(), false, ev.Exit.String())
			return
		}
		if res.Exits >= maxExits {
			end("exit-limit", false, fmt.Sprintf("%d exits", res.Exits))
			return
		}
	}
}
