// Package guest lays out the standard guest on any hv backend: long mode,
// identity-mapped page tables in guest memory, a GDT with ring 0 and ring 3
// segments, a TSS per vCPU with an allow-all I/O bitmap, an IDT whose stubs
// report exceptions to the host, stacks, and the ucall ABI.
package guest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest/desc"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Mode is the privilege level test code runs at.
type Mode int

// Modes. Exception handlers always run at CPL0.
const (
	CPL3 Mode = 3
	CPL0 Mode = 0
)

func (m Mode) String() string { return fmt.Sprintf("cpl%d", int(m)) }

// DefaultMode is the faster mode for a backend: CPL3 where the hypervisor
// emulates supervisor code (kvm-pvm), CPL0 where it runs natively.
func DefaultMode(c hv.Caps) Mode {
	if c.Has(hv.CapCPL0Native) && c.Backend != "emu" {
		return CPL0
	}
	return CPL3
}

// Config shapes a standard guest.
type Config struct {
	Mode      Mode
	VCPUs     int    // default 1
	MemSize   uint64 // slot 0 size, default DefaultMemSize
	Backing   hv.Backing
	UcallMMIO bool // ucalls by MMIO write instead of port I/O
	// Layout places the vCPU blocks, page tables and code area; the zero
	// value is the default layout.
	Layout Layout
	VM     hv.VMConfig
	// Output receives guest PRINTF lines (default: discarded).
	Output io.Writer
}

// Guest is one standard guest on a backend.
type Guest struct {
	HV    hv.Hypervisor
	VM    hv.VM
	Mem   *hv.Memory
	PT    *PageTables
	VCPUs []hv.VCPU

	cfg    Config
	phys   *Allocator
	pool   ptPool
	booted bool // the identity map exists: page-table chunks are protected as they come
	gdtr   hv.DTable
	idt    desc.IDT
	// runtimeEnd is the first free byte of the runtime area, where
	// installed handlers go.
	runtimeEnd uint64
	handlers   []*asm.Assembler // installed handlers, for Source
	flat       []Region         // ranges flat binaries reserved
	mu         sync.Mutex
	sites      []*Site
	errs       []error
	program    *asm.Assembler
	entry      uint64
}

// New builds the standard guest: memory, page tables, descriptor tables,
// runtime code and vCPUs in their initial state. Load a Program to run.
func New(h hv.Hypervisor, cfg Config) (*Guest, error) {
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.VCPUs > MaxVCPUs {
		return nil, fmt.Errorf("guest: %d vCPUs, at most %d", cfg.VCPUs, MaxVCPUs)
	}
	if cfg.MemSize == 0 {
		cfg.MemSize = DefaultMemSize
	}
	if cfg.MemSize%Page2M != 0 || cfg.MemSize > UcallMMIOGPA {
		return nil, fmt.Errorf("guest: memory size %#x must be a multiple of 2 MiB up to %#x", cfg.MemSize, UcallMMIOGPA)
	}
	cfg.Layout = cfg.Layout.withDefaults()
	if err := cfg.Layout.check(cfg.MemSize, cfg.UcallMMIO); err != nil {
		return nil, err
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	g := &Guest{HV: h, cfg: cfg, phys: NewAllocator(0, cfg.MemSize)}
	for _, r := range cfg.Layout.areas() {
		if err := g.phys.Reserve(r.Base, r.Size, r.Owner); err != nil {
			return nil, err // check() saw the same reservations succeed
		}
	}
	g.pool = ptPool{next: cfg.Layout.PageTables, end: cfg.Layout.PageTables + cfg.Layout.PageTableSize,
		phys: g.phys, mem: g.Bytes, grew: g.ptGrew}
	var err error
	if g.VM, g.Mem, err = NewVMWithRAM(h, cfg.VM, cfg.MemSize, cfg.Backing); err != nil {
		return nil, err
	}
	if err := g.build(); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Config returns the guest's configuration.
func (g *Guest) Config() Config { return g.cfg }

// Mode is the privilege level of test code.
func (g *Guest) Mode() Mode { return g.cfg.Mode }

// Close frees the VM and the guest memory.
func (g *Guest) Close() error {
	var errs []error
	if g.VM != nil {
		errs = append(errs, g.VM.Close())
	}
	if g.Mem != nil {
		errs = append(errs, g.Mem.Close())
	}
	return errors.Join(errs...)
}

// Alloc reserves size bytes of identity-mapped, user-accessible test data
// aligned to align (a power of two; below 8 means 8) from free memory and
// returns its address. It fails when memory runs out.
func (g *Guest) Alloc(size, align uint64) (uint64, error) {
	return g.phys.Alloc(size, max(align, 8), "data")
}

// Allocator is the guest-physical allocator of slot 0, for callers that
// reserve fixed ranges or want to list what is where.
func (g *Guest) Allocator() *Allocator { return g.phys }

// UcallPage is the guest address of vCPU i's ucall page (R15 in its code)
// in the default layout; Guest.UcallPage follows Config.Layout.
func UcallPage(i int) uint64 { return vcpuBlock(i) + blockUcall }

// UserScratchAddr is the guest address of vCPU i's scratch area in the
// default layout.
func UserScratchAddr(i int) uint64 { return UcallPage(i) + UserScratch }

// StackTop is the initial RSP of vCPU i in the default layout.
func StackTop(i int) uint64 { return vcpuBlock(i) + blockUserStack }

// UcallPage is the guest address of vCPU i's ucall page (R15 in its code).
func (g *Guest) UcallPage(i int) uint64 { return g.cfg.Layout.vcpuBlock(i) + blockUcall }

// UserScratchAddr is the guest address of vCPU i's scratch area.
func (g *Guest) UserScratchAddr(i int) uint64 { return g.UcallPage(i) + UserScratch }

// StackTop is the initial RSP of vCPU i.
func (g *Guest) StackTop(i int) uint64 { return g.cfg.Layout.vcpuBlock(i) + blockUserStack }

// ptGrew keeps a page-table chunk the pool took from free memory out of
// reach of CPL3 code, once the identity map that covers it exists.
func (g *Guest) ptGrew(r Region) error {
	if !g.booted {
		return nil // build protects the chunks it grew when it is done
	}
	return g.PT.Protect(r.Base, r.Size, 0, PTEUser)
}

func (g *Guest) addSite(cmd UcallCmd, file string, line int, msg, format string) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &Site{ID: uint64(len(g.sites) + 1), Cmd: cmd, File: file, Line: line, Msg: msg, Format: format}
	g.sites = append(g.sites, s)
	return s.ID
}

func (g *Guest) site(id uint64) *Site {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id == 0 || id > uint64(len(g.sites)) {
		return nil
	}
	return g.sites[id-1]
}

// pendingErrs are the errors recorded while emitting guest code.
func (g *Guest) pendingErrs() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

func (g *Guest) recordErr(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs = append(g.errs, err)
}

// Load assembles p, copies it to the code area and puts every vCPU at its
// entry (the first instruction) in the configured mode.
func (g *Guest) Load(p *Program) error {
	return g.LoadAt(p, nil)
}

// LoadAt is Load with the entry point at label l (nil: the first byte).
func (g *Guest) LoadAt(p *Program, l *asm.Label) error {
	code, err := p.Assemble()
	if err != nil {
		return fmt.Errorf("guest program: %w", err)
	}
	if err := g.pendingErrs(); err != nil {
		return fmt.Errorf("guest program: %w", err)
	}
	if uint64(len(code)) > g.cfg.Layout.CodeSize {
		return fmt.Errorf("guest program: %d bytes, the code area holds %d", len(code), g.cfg.Layout.CodeSize)
	}
	copy(g.Mem.Bytes()[g.cfg.Layout.Code:], code)
	g.program = p.Assembler
	g.entry = g.cfg.Layout.Code
	if l != nil {
		a, ok := p.Addr(l)
		if !ok {
			return fmt.Errorf("guest program: entry label not bound")
		}
		g.entry = a
	}
	for i := range g.VCPUs {
		if err := g.ResetVCPU(i); err != nil {
			return err
		}
	}
	return nil
}

// LoadFlat copies a flat binary to guest-physical gpa and puts every vCPU
// at entry, which must lie inside it, in the configured mode, with the
// registers a Program gets (R15 the ucall page, RSP the stack, RDI the
// vCPU index). The range must be free memory or inside the code area; it
// is identity-mapped and user-accessible like test data. Code not built
// with Program makes ucalls with site 0 (no Go source to name).
func (g *Guest) LoadFlat(gpa uint64, code []byte, entry uint64) error {
	n := uint64(len(code))
	if n == 0 {
		return fmt.Errorf("guest flat binary at %#x: empty", gpa)
	}
	if entry < gpa || entry-gpa >= n {
		return fmt.Errorf("guest flat binary [%#x, +%#x): entry %#x is outside it", gpa, n, entry)
	}
	l := g.cfg.Layout
	// The code area, or a range an earlier flat binary reserved, may be
	// loaded again; anything else must be free memory.
	reserved := within(gpa, n, Region{Base: l.Code, Size: l.CodeSize})
	for _, r := range g.flat {
		reserved = reserved || within(gpa, n, r)
	}
	if !reserved {
		if err := g.phys.Reserve(gpa, n, "flat binary"); err != nil {
			return fmt.Errorf("guest flat binary: %w", err)
		}
		g.flat = append(g.flat, Region{Base: gpa, Size: n, Owner: "flat binary"})
	}
	dst, err := g.Bytes(gpa, len(code))
	if err != nil {
		return fmt.Errorf("guest flat binary: %w", err)
	}
	copy(dst, code)
	g.program = nil
	g.entry = entry
	for i := range g.VCPUs {
		if err := g.ResetVCPU(i); err != nil {
			return err
		}
	}
	return nil
}

// within reports whether [gpa, gpa+n) lies inside r.
func within(gpa, n uint64, r Region) bool {
	return gpa >= r.Base && gpa-r.Base <= r.Size && n <= r.Size-(gpa-r.Base)
}

// ResetVCPU puts vCPU i back at the program entry with its initial
// registers. CPL3 code gets IOPL 3 so it may use cli, sti and port I/O
// (the TSS bitmap allows every port anyway): its tests drive interrupts.
func (g *Guest) ResetVCPU(i int) error {
	flags := uint64(hv.FlagsFixed)
	if g.cfg.Mode == CPL3 {
		flags |= hv.FlagIOPL
	}
	r := hv.Regs{RIP: g.entry, RSP: g.StackTop(i), RDI: uint64(i), R15: g.UcallPage(i), RFLAGS: flags}
	if err := g.VCPUs[i].SetRegs(&r); err != nil {
		return err
	}
	return g.setSregs(i)
}

// Source returns the Go file:line that emitted the test-code or handler
// instruction at rip.
func (g *Guest) Source(rip uint64) string {
	for _, a := range append([]*asm.Assembler{g.program}, g.handlers...) {
		if a == nil {
			continue
		}
		if f, l, ok := a.SourceAt(rip); ok {
			return fmt.Sprintf("%s:%d", f, l)
		}
	}
	return ""
}

// Listing is the loaded program, one line per instruction.
func (g *Guest) Listing() []asm.Line {
	if g.program == nil {
		return nil
	}
	l, _ := g.program.Listing()
	return l
}

// LastException is what the runtime recorded for vCPU i's last caught exception.
func (g *Guest) LastException(i int) (Exception, uint64, error) {
	b, err := g.Bytes(g.UcallPage(i)+ucExcVec, 40)
	if err != nil {
		return Exception{}, 0, err
	}
	le := binary.LittleEndian
	return Exception{Vector: le.Uint64(b[0:]), ErrorCode: le.Uint64(b[8:]), RIP: le.Uint64(b[16:]), CR2: le.Uint64(b[24:])}, le.Uint64(b[32:]), nil
}

// Event is what Run stopped for: a ucall, or an exit that is not one.
type Event struct {
	Ucall *Ucall
	Exit  hv.Exit
}

// Run runs vCPU i until a SYNC or DONE ucall or an exit that is not a
// ucall. PRINTF is written to Config.Output and the guest continues. A
// failed ASSERT returns *AssertError, an unexpected exception
// *ExceptionError, and the end of ctx *TimeoutError.
func (g *Guest) Run(ctx context.Context, i int) (Event, error) {
	return RunOnThread(g.VCPUs[i], func() (Event, error) { return g.run(ctx, i) })
}

// RunOnThread calls loop, a run loop of v, on v's own thread (hv.VCPU.Do),
// so that the loop has no thread hand-off per exit; both guest runtimes'
// Run use it.
func RunOnThread(v hv.VCPU, loop func() (Event, error)) (Event, error) {
	var ev Event
	var err error
	if derr := v.Do(func() error {
		ev, err = loop()
		return nil
	}); derr != nil {
		return Event{}, derr
	}
	return ev, err
}

func (g *Guest) run(ctx context.Context, i int) (Event, error) {
	v := g.VCPUs[i]
	for {
		exit, err := v.Run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				te := &TimeoutError{VCPU: i, Err: err}
				if r, rerr := v.Regs(); rerr == nil {
					te.RIP = r.RIP
					te.Source = g.Source(r.RIP)
				}
				return Event{}, te
			}
			return Event{}, err
		}
		if !g.isUcall(i, exit) {
			return Event{Exit: exit}, nil
		}
		u, err := g.readUcall(i)
		if err != nil {
			return Event{}, err
		}
		switch u.Cmd {
		case UcallPrintf:
			g.printf(u)
			continue
		case UcallAssert:
			return Event{Ucall: u}, &AssertError{VCPU: i, Site: u.Site, Args: u.Args}
		case UcallUnhandled:
			x := Exception{}
			if len(u.Args) >= 4 {
				x = Exception{Vector: u.Args[0], ErrorCode: u.Args[1], RIP: u.Args[2], CR2: u.Args[3]}
			}
			return Event{Ucall: u}, &ExceptionError{VCPU: i, Exception: x, Source: g.Source(x.RIP)}
		case UcallSync, UcallDone:
			return Event{Ucall: u}, nil
		}
		// parseUcall admits only the commands above.
		return Event{Ucall: u}, &UcallError{VCPU: i, Cmd: u.Cmd, Field: "command", Value: uint64(u.Cmd), Reason: "not handled by the run loop"}
	}
}

func (g *Guest) printf(u *Ucall) {
	// An anonymous PRINTF (site 0) has no format: print the values.
	format := strings.TrimSpace(strings.Repeat("%#x ", len(u.Args)))
	if u.Site != nil {
		format = u.Site.Format
	}
	args := make([]any, len(u.Args))
	for i, a := range u.Args {
		args[i] = a
	}
	fmt.Fprintf(g.cfg.Output, "guest vcpu %d: "+format+"\n", append([]any{u.VCPU}, args...)...)
}

func (g *Guest) isUcall(i int, exit hv.Exit) bool {
	switch e := exit.(type) {
	case *hv.IOExit:
		return !g.cfg.UcallMMIO && e.Port == UcallPort && !e.In
	case *hv.MMIOExit:
		return g.cfg.UcallMMIO && e.Write && e.GPA == UcallMMIOGPA+uint64(i)*VCPUBlockSize
	}
	return false
}

func (g *Guest) readUcall(i int) (*Ucall, error) {
	b, err := g.Bytes(g.UcallPage(i), ucArgs+8*MaxUcallArgs)
	if err != nil {
		return nil, err
	}
	return parseUcall(b, i, g.site)
}

// parseUcall decodes a ucall page. The page is guest-written, so every
// field is untrusted: a command the ABI does not define, a site the host
// never issued (or issued for another command), or an argument count the
// command does not take is a *UcallError naming the bad value.
func parseUcall(b []byte, vcpu int, site func(uint64) *Site) (*Ucall, error) {
	return ParseUcallRecord(b, vcpu, 4, site)
}

// UcallRecordSize is the size of a ucall record: command, site, argument
// count and MaxUcallArgs argument quadwords, at the Ucall*Offset offsets.
const UcallRecordSize = ucArgs + 8*MaxUcallArgs

// ParseUcallRecord decodes a guest-written ucall record b (at least
// UcallRecordSize bytes) as parseUcall does, for a runtime whose UNHANDLED
// report carries unhandledArgs values (the x86 runtime's carries 4; the
// arm64 runtime in a64guest shares the record layout and this parser).
// site resolves site ids the host issued (nil: only site 0 is valid).
func ParseUcallRecord(b []byte, vcpu int, unhandledArgs uint64, site func(uint64) *Site) (*Ucall, error) {
	if site == nil {
		site = func(uint64) *Site { return nil }
	}
	if len(b) < ucArgs+8*MaxUcallArgs {
		return nil, fmt.Errorf("vcpu %d: ucall page of %d bytes is short", vcpu, len(b))
	}
	le := binary.LittleEndian
	cmd := UcallCmd(le.Uint64(b[ucCmd:]))
	id := le.Uint64(b[ucSite:])
	n := le.Uint64(b[ucNArgs:])
	bad := func(field string, value uint64, why string) error {
		return &UcallError{VCPU: vcpu, Cmd: cmd, Field: field, Value: value, Reason: why}
	}
	lo, hi, known := cmd.argRange()
	if cmd == UcallUnhandled {
		lo, hi = unhandledArgs, unhandledArgs
	}
	if !known {
		return nil, bad("command", uint64(cmd), "not a command of the ucall ABI")
	}
	if n > MaxUcallArgs {
		return nil, bad("argument count", n, fmt.Sprintf("a ucall carries at most %d", MaxUcallArgs))
	}
	if n < lo || n > hi {
		return nil, bad("argument count", n, fmt.Sprintf("%s takes %d to %d", cmd, lo, hi))
	}
	u := &Ucall{VCPU: vcpu, Cmd: cmd}
	// Site 0 is anonymous: the runtime's own reports and flat binaries,
	// which have no Go source, use it. Any other site must be one the host
	// issued, for this command.
	if id != 0 {
		u.Site = site(id)
		if u.Site == nil {
			return nil, bad("site", id, "the host never issued it")
		}
		if u.Site.Cmd != cmd {
			return nil, bad("site", id, fmt.Sprintf("it was issued for %s at %s", u.Site.Cmd, u.Site))
		}
	}
	for k := uint64(0); k < n; k++ {
		u.Args = append(u.Args, le.Uint64(b[ucArgs+8*k:]))
	}
	return u, nil
}

// RunUntilDone runs vCPU i until DONE, calling onSync for each SYNC (nil:
// ignore). Any exit that is not a ucall is an *UnexpectedExitError.
func (g *Guest) RunUntilDone(ctx context.Context, i int, onSync func(*Ucall) error) error {
	for {
		ev, err := g.Run(ctx, i)
		if err != nil {
			return err
		}
		if ev.Exit != nil {
			return g.unexpected(i, ev.Exit)
		}
		switch ev.Ucall.Cmd {
		case UcallDone:
			return nil
		case UcallSync:
			if onSync != nil {
				if err := onSync(ev.Ucall); err != nil {
					return err
				}
			}
		}
	}
}

func (g *Guest) unexpected(i int, exit hv.Exit) error {
	e := &UnexpectedExitError{VCPU: i, Exit: exit.String()}
	if r, err := g.VCPUs[i].Regs(); err == nil {
		e.Regs = r.String()
		e.Source = g.Source(r.RIP)
	}
	return e
}

// Unexpected builds the error for an exit the caller did not expect.
func (g *Guest) Unexpected(i int, exit hv.Exit) error { return g.unexpected(i, exit) }

// NewVMWithRAM creates a VM of h and size bytes of guest memory of kind
// backing in slot 0 at GPA 0, the start of both guest runtimes; on an
// error nothing is left open.
func NewVMWithRAM(h hv.Hypervisor, cfg hv.VMConfig, size uint64, backing hv.Backing) (hv.VM, *hv.Memory, error) {
	vm, err := h.NewVM(cfg)
	if err != nil {
		return nil, nil, err
	}
	mem, err := hv.NewMemory(size, backing)
	if err != nil {
		vm.Close()
		return nil, nil, err
	}
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: size, Memory: mem}); err != nil {
		vm.Close()
		mem.Close()
		return nil, nil, err
	}
	return vm, mem, nil
}

// RunAll runs every vCPU until DONE, concurrently, and returns the first
// failure (the others are stopped). onSync may be called concurrently.
func (g *Guest) RunAll(ctx context.Context, onSync func(*Ucall) error) error {
	return RunConcurrently(ctx, len(g.VCPUs), func(ctx context.Context, i int) error {
		return g.RunUntilDone(ctx, i, onSync)
	})
}

// RunConcurrently calls run for 0..n-1 on n goroutines and returns the
// first error; that error cancels the context the others run with (their
// later errors are mostly that cancellation, and are dropped).
func RunConcurrently(ctx context.Context, n int, run func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := run(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		}(i)
	}
	wg.Wait()
	return first
}
