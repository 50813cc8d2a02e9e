// Package a64guest is the arm64 guest runtime, the counterpart of
// harness/guest: it lays out a guest in slot 0, builds its stage-1 page
// tables in guest memory from host Go code (4K, 16K and 64K granules,
// blocks and pages, every attribute, and a walker that predicts the CPU's
// translation and faults), emits the boot code (MAIR, TCR, TTBR0, SCTLR
// with the barriers the architecture asks for), a VBAR_EL1 vector table
// whose entries report ESR, FAR, ELR, SPSR and the vector to the host or
// run installed handlers, test code at EL1 or EL0 with inline moves
// between them, and the kernel selftests' arm64 ucall ABI (the address
// of a ucall record stored to an unbacked MMIO page). All guest code is
// built with harness/a64.
package a64guest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Config shapes an arm64 guest.
type Config struct {
	// Mode is the stage-1 translation (zero: DefaultMode, or where
	// VM.ARM64Type asks for an IPA size, ModeForIPA's mode for it).
	Mode Mode
	// EL0 starts test code at EL0 (EL0t) instead of EL1 (EL1t).
	EL0     bool
	VCPUs   int    // default 1
	MemSize uint64 // slot 0 size, default DefaultMemSize
	Backing hv.Backing
	Layout  Layout
	VM      hv.VMConfig
	// HA turns on hardware Access flag management (TCR_EL1.HA): only
	// where the CPU has it (ID_AA64MMFR1_EL1.HAFDBS), which the spec checks.
	HA bool
	// HD adds hardware dirty state management (TCR_EL1.HD, with HA): a
	// write to a read-only page whose descriptor has DBM set clears its
	// AP[2]. Only where ID_AA64MMFR1_EL1.HAFDBS is 2 or more.
	HD bool
	// Output receives guest PRINTF lines (default: discarded).
	Output io.Writer
	// Features are the vCPUs' features (hv.ARM64VM.NewARM64VCPU); the
	// zero value creates them with NewVCPU. A PMUv3 vCPU needs its PMU
	// controls (and the vGIC) set up by the caller before the first Run.
	Features hv.ARM64VCPUFeatures
}

// Guest is one arm64 guest on a backend.
type Guest struct {
	HV    hv.Hypervisor
	VM    hv.VM
	Mem   *hv.Memory
	PT    *PageTables
	VCPUs []hv.VCPU

	cfg      Config
	phys     *guest.Allocator
	regs     []OneReg
	sites    sites
	handlers [NumVectors]*Handler
	rt       *runtime
	program  *a64.Assembler
	entry    uint64
}

// ErrNotARM64 is wrapped by New's error when the backend's vCPUs have no
// arm64 register access (every backend but KVM on an arm64 host).
var ErrNotARM64 = fmt.Errorf("a64guest: backend cannot run arm64 guests: %w", hv.ErrUnsupported)

// New builds the guest: memory, page tables, runtime and vCPUs at the
// boot code. Load a Program to run.
func New(h hv.Hypervisor, cfg Config) (*Guest, error) {
	g, err := newGuest(h, cfg)
	if err != nil {
		return nil, err
	}
	for i := 0; i < g.cfg.VCPUs; i++ {
		v, err := g.newVCPU(i)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.VCPUs = append(g.VCPUs, v)
		r, ok := v.(OneReg)
		if !ok {
			g.Close()
			return nil, fmt.Errorf("%w (%s vCPUs have no ONE_REG access)", ErrNotARM64, h.Name())
		}
		g.regs = append(g.regs, r)
	}
	return g, nil
}

// newVCPU creates vCPU i with the configured features.
func (g *Guest) newVCPU(i int) (hv.VCPU, error) {
	if g.cfg.Features == (hv.ARM64VCPUFeatures{}) {
		return g.VM.NewVCPU(i)
	}
	vm, ok := g.VM.(hv.ARM64VM)
	if !ok {
		return nil, fmt.Errorf("%w (%s VMs have no arm64 vCPU features)", ErrNotARM64, g.HV.Name())
	}
	return vm.NewARM64VCPU(i, g.cfg.Features)
}

// newGuest builds everything but the vCPUs: memory, page tables, runtime.
func newGuest(h hv.Hypervisor, cfg Config) (*Guest, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Guest{HV: h, cfg: cfg, phys: guest.NewAllocator(0, cfg.MemSize)}
	for _, r := range cfg.Layout.Regions() {
		if err := g.phys.Reserve(r.Base, r.Size, r.Owner); err != nil {
			return nil, err
		}
	}
	if g.VM, g.Mem, err = guest.NewVMWithRAM(h, cfg.VM, cfg.MemSize, cfg.Backing); err != nil {
		return nil, err
	}
	if err := g.build(); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Mode == (Mode{}) {
		cfg.Mode = DefaultMode
		if t := cfg.VM.ARM64Type; t&hv.ARM64IPASizeMask != 0 {
			m, err := ModeForIPA(t.IPABits())
			if err != nil {
				return cfg, err
			}
			cfg.Mode = m
		}
	}
	if err := cfg.Mode.Validate(); err != nil {
		return cfg, err
	}
	if cfg.HD && !cfg.HA {
		return cfg, fmt.Errorf("a64guest: hardware dirty state (HD) needs hardware Access flag management (HA): TCR_EL1.HD is ignored without HA")
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.VCPUs < 0 || cfg.VCPUs > MaxVCPUs {
		return cfg, fmt.Errorf("a64guest: %d vCPUs, at most %d", cfg.VCPUs, MaxVCPUs)
	}
	if cfg.MemSize == 0 {
		cfg.MemSize = DefaultMemSize
	}
	if cfg.MemSize > cfg.Mode.PALimit() {
		return cfg, fmt.Errorf("a64guest: %#x bytes of memory exceed mode %v", cfg.MemSize, cfg.Mode)
	}
	cfg.Layout = cfg.Layout.withDefaults()
	if err := cfg.Layout.check(cfg.MemSize); err != nil {
		return cfg, err
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	return cfg, nil
}

// Config returns the guest's configuration, defaults filled in.
func (g *Guest) Config() Config { return g.cfg }

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

// build lays out the identity map and the runtime.
func (g *Guest) build() error {
	l := g.cfg.Layout
	gran := g.cfg.Mode.Granule.Size()
	next, end := l.PageTables, l.PageTables+l.PageTableSize
	alloc := func() (uint64, error) {
		if next+gran > end {
			return 0, fmt.Errorf("the %#x-byte page-table area is full", l.PageTableSize)
		}
		t := next
		next += gran
		clear(g.Mem.Bytes()[t : t+gran])
		return t, nil
	}
	pt, err := NewPageTables(g.cfg.Mode, g.VM, alloc)
	if err != nil {
		return err
	}
	g.PT = pt
	type mapping struct {
		base, size uint64
		a          Attrs
	}
	maps := []mapping{
		{RuntimeBase, RuntimeSize, KernelCode},
		{l.PageTables, l.PageTableSize, KernelData},
		{l.Code, l.CodeSize, UserCode},
		{UcallMMIOGPA, gran, Device},
	}
	for i := 0; i < MaxVCPUs; i++ {
		maps = append(maps, mapping{l.EL1Block(i), el1HalfSize, KernelData},
			mapping{l.UserBlock(i), VCPUBlockSize - el1HalfSize, UserData})
	}
	// Free memory (test data) is user read/write: every granule page of
	// slot 0 that no area claims.
	for _, r := range g.freeRuns() {
		maps = append(maps, mapping{r.Base, r.Size, UserData})
	}
	for _, m := range maps {
		if err := pt.MapBlocks(m.base, m.base, m.size, m.a); err != nil {
			return err
		}
	}
	return g.writeRuntime()
}

// freeRuns are the ranges of slot 0 outside every area of the layout.
func (g *Guest) freeRuns() []guest.Region {
	var runs []guest.Region
	at := uint64(0)
	for _, r := range g.phys.Regions() {
		if r.Base > at {
			runs = append(runs, guest.Region{Base: at, Size: r.Base - at, Owner: "data"})
		}
		at = max(at, r.End())
	}
	if at < g.cfg.MemSize {
		runs = append(runs, guest.Region{Base: at, Size: g.cfg.MemSize - at, Owner: "data"})
	}
	return runs
}

// writeRuntime (re)builds the runtime with the installed handlers.
func (g *Guest) writeRuntime() error {
	rt, err := buildRuntime(runtimeSpec{mode: g.cfg.Mode, layout: g.cfg.Layout, ha: g.cfg.HA, hd: g.cfg.HD, el0: g.cfg.EL0,
		ttbr0: g.PT.Root, handlers: g.handlers}, g)
	if err != nil {
		return err
	}
	if err := g.sites.pending(); err != nil {
		return fmt.Errorf("a64guest runtime: %w", err)
	}
	if err := g.VM.WriteGPA(RuntimeBase, rt.code); err != nil {
		return err
	}
	g.rt = rt
	return nil
}

// Handle installs h for its vector, for every vCPU and every program
// loaded afterwards; installing a vector again replaces its handler. The
// runtime is rebuilt in guest memory: install handlers while no vCPU runs.
func (g *Guest) Handle(h Handler) error {
	if h.Vector < 0 || h.Vector >= NumVectors {
		return fmt.Errorf("a64guest handler: vector %d is not in [0, %d)", h.Vector, NumVectors)
	}
	old := g.handlers[h.Vector]
	g.handlers[h.Vector] = &h
	if err := g.writeRuntime(); err != nil {
		g.handlers[h.Vector] = old
		return fmt.Errorf("a64guest handler for %s: %w", VectorName(uint64(h.Vector)), err)
	}
	return nil
}

func (g *Guest) recordErr(err error) { g.sites.recordErr(err) }

// Alloc reserves size bytes of identity-mapped test data (user read/write)
// aligned to align (a power of two; below 8 means 8).
func (g *Guest) Alloc(size, align uint64) (uint64, error) {
	return g.phys.Alloc(size, max(align, 8), "data")
}

// Allocator is slot 0's guest-physical allocator.
func (g *Guest) Allocator() *guest.Allocator { return g.phys }

// Walker translates guest addresses as the guest's CPU does with the
// runtime's translation registers.
func (g *Guest) Walker() *Walker {
	return &Walker{Mode: g.cfg.Mode, TTBR0: g.PT.Root, Mem: g.VM, HA: g.cfg.HA, HD: g.cfg.HD}
}

// UserBlock is the guest address of vCPU i's user block (X28 in test code).
func (g *Guest) UserBlock(i int) uint64 { return g.cfg.Layout.UserBlock(i) }

// Load assembles p, copies it to the code area and puts every vCPU at the
// boot code with p's first instruction as the test entry.
func (g *Guest) Load(p *Program) error {
	if err := g.load(p); err != nil {
		return err
	}
	return g.resetAll()
}

// load puts p's code in place; the vCPUs are not touched.
func (g *Guest) load(p *Program) error {
	code, err := p.Assemble()
	if err != nil {
		return fmt.Errorf("a64guest program: %w", err)
	}
	if err := g.sites.pending(); err != nil {
		return fmt.Errorf("a64guest program: %w", err)
	}
	if uint64(len(code)) > g.cfg.Layout.CodeSize {
		return fmt.Errorf("a64guest program: %d bytes, the code area holds %d", len(code), g.cfg.Layout.CodeSize)
	}
	if err := g.VM.WriteGPA(g.cfg.Layout.Code, code); err != nil {
		return err
	}
	g.program = p.Assembler
	g.entry = g.cfg.Layout.Code
	return nil
}

// LoadFlat copies a flat binary into the code area at gpa and starts test
// code at entry, with the registers a Program gets. Its ucalls use site 0.
func (g *Guest) LoadFlat(gpa uint64, code []byte, entry uint64) error {
	l := g.cfg.Layout
	n := uint64(len(code))
	if n == 0 || gpa < l.Code || gpa-l.Code > l.CodeSize || n > l.CodeSize-(gpa-l.Code) {
		return fmt.Errorf("a64guest flat binary [%#x, +%#x): not inside the code area [%#x, +%#x)", gpa, n, l.Code, l.CodeSize)
	}
	if entry < gpa || entry-gpa >= n || entry%4 != 0 {
		return fmt.Errorf("a64guest flat binary [%#x, +%#x): entry %#x is outside it or unaligned", gpa, n, entry)
	}
	if err := g.VM.WriteGPA(gpa, code); err != nil {
		return err
	}
	g.program = nil
	g.entry = entry
	return g.resetAll()
}

func (g *Guest) resetAll() error {
	for i := range g.VCPUs {
		if err := g.ResetVCPU(i); err != nil {
			return err
		}
	}
	return nil
}

// ResetVCPU puts vCPU i at the boot code: EL1h, exceptions masked, X0 the
// vCPU index, X1 the test entry.
func (g *Guest) ResetVCPU(i int) error {
	r := g.regs[i]
	for _, set := range []struct{ id, v uint64 }{
		{RegPSTATE, ResetPSTATE}, {RegPC, g.rt.boot}, {RegX(0), uint64(i)}, {RegX(1), g.entry},
	} {
		if err := r.SetOneReg(set.id, set.v); err != nil {
			return fmt.Errorf("a64guest: vcpu %d: set register %#x: %w", i, set.id, err)
		}
	}
	return nil
}

// Source returns the Go file:line that emitted the instruction at pc.
func (g *Guest) Source(pc uint64) string {
	for _, a := range []*a64.Assembler{g.program, g.rt.asm} {
		if a == nil {
			continue
		}
		if f, l, ok := a.SourceAt(pc); ok {
			return fmt.Sprintf("%s:%d", f, l)
		}
	}
	return ""
}

// LastException is what the runtime recorded for vCPU i's last exception
// that ExpectException armed, and how many it recorded.
func (g *Guest) LastException(i int) (Exception, uint64, error) {
	b := make([]byte, ExcCount+8-ExcVector)
	if err := g.VM.ReadGPA(g.UserBlock(i)+ExcVector, b); err != nil {
		return Exception{}, 0, err
	}
	q := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off-ExcVector:]) }
	return Exception{Vector: q(ExcVector), ESR: q(ExcESR), FAR: q(ExcFAR), ELR: q(ExcELR), SPSR: q(ExcSPSR)}, q(ExcCount), nil
}

// HandlerCount is how many times vCPU i's installed handler for vector ran.
func (g *Guest) HandlerCount(i, vector int) (uint32, error) {
	if vector < 0 || vector >= NumVectors {
		return 0, fmt.Errorf("a64guest: handler count: vector %d is not in [0, %d)", vector, NumVectors)
	}
	return g.VM.Load32(g.UserBlock(i) + HandlerCounts + 4*uint64(vector))
}

// Event is what Run stopped for: a ucall, or an exit that is not one (the
// x86 runtime's type: the ucall is the same record on both).
type Event = guest.Event

// Run runs vCPU i until a SYNC or DONE ucall or an exit that is not a
// ucall. PRINTF goes to Config.Output and the guest continues. A failed
// ASSERT returns *guest.AssertError, an unexpected exception
// *ExceptionError, a malformed ucall *guest.UcallError, and the end of
// ctx *TimeoutError.
func (g *Guest) Run(ctx context.Context, i int) (Event, error) {
	return guest.RunOnThread(g.VCPUs[i], func() (Event, error) { return g.run(ctx, i) })
}

func (g *Guest) run(ctx context.Context, i int) (Event, error) {
	v := g.VCPUs[i]
	w := g.Walker()
	for {
		exit, err := v.Run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				te := &TimeoutError{VCPU: i, Err: err}
				if pc, rerr := g.regs[i].GetOneReg(RegPC); rerr == nil {
					te.PC, te.Source = pc, g.Source(pc)
				}
				return Event{}, te
			}
			return Event{}, err
		}
		e, ok := isUcallExit(exit)
		if !ok {
			return Event{Exit: exit}, nil
		}
		u, err := decodeUcall(e, i, w, g.sites.get)
		if err != nil {
			return Event{}, err
		}
		switch u.Cmd {
		case guest.UcallPrintf:
			g.printf(u)
			continue
		case guest.UcallAssert:
			return Event{Ucall: u}, &guest.AssertError{VCPU: i, Site: u.Site, Args: u.Args}
		case guest.UcallUnhandled:
			x := Exception{Vector: u.Args[0], ESR: u.Args[1], FAR: u.Args[2], ELR: u.Args[3], SPSR: u.Args[4]}
			return Event{Ucall: u}, &ExceptionError{VCPU: i, Exception: x, Source: g.Source(x.ELR)}
		case guest.UcallSync, guest.UcallDone:
			return Event{Ucall: u}, nil
		}
		return Event{Ucall: u}, &guest.UcallError{VCPU: i, Cmd: u.Cmd, Field: "command", Value: uint64(u.Cmd), Reason: "not handled by the run loop"}
	}
}

func (g *Guest) printf(u *guest.Ucall) {
	format := strings.TrimSpace(strings.Repeat("%#x ", len(u.Args)))
	if u.Site != nil {
		format = u.Site.Format
	}
	args := []any{u.VCPU}
	for _, a := range u.Args {
		args = append(args, a)
	}
	fmt.Fprintf(g.cfg.Output, "guest vcpu %d: "+format+"\n", args...)
}

// RunUntilDone runs vCPU i until DONE, calling onSync for each SYNC (nil:
// ignore). Any exit that is not a ucall is an *guest.UnexpectedExitError.
func (g *Guest) RunUntilDone(ctx context.Context, i int, onSync func(*guest.Ucall) error) error {
	for {
		ev, err := g.Run(ctx, i)
		if err != nil {
			return err
		}
		if ev.Exit != nil {
			return g.Unexpected(i, ev.Exit)
		}
		switch ev.Ucall.Cmd {
		case guest.UcallDone:
			return nil
		case guest.UcallSync:
			if onSync != nil {
				if err := onSync(ev.Ucall); err != nil {
					return err
				}
			}
		}
	}
}

// Unexpected builds the error for an exit the caller did not expect.
func (g *Guest) Unexpected(i int, exit hv.Exit) error {
	e := &guest.UnexpectedExitError{VCPU: i, Exit: exit.String()}
	if pc, err := g.regs[i].GetOneReg(RegPC); err == nil {
		e.Regs = fmt.Sprintf("pc %#x", pc)
		e.Source = g.Source(pc)
	}
	return e
}

// Reg is vCPU i's register access (KVM_GET_ONE_REG/KVM_SET_ONE_REG), for
// specs that read ID registers or set up what the runtime does not.
func (g *Guest) Reg(i int) OneReg { return g.regs[i] }

// PageSize is the guest's page size: the granule of its stage-1 tables
// (memslot_perf_test's guest page size).
func (g *Guest) PageSize() uint64 { return g.cfg.Mode.Granule.Size() }

// MapIdentity maps guest-physical [gpa, gpa+size) at the same virtual
// addresses with attributes a, in blocks where alignment allows: memory
// of slots the spec adds beside slot 0. Both ends must be page aligned.
// A running guest sees the mapping after its FlushTLB (new mappings of
// unmapped addresses need none: invalid entries are not cached).
func (g *Guest) MapIdentity(gpa, size uint64, a Attrs) error {
	ps := g.PageSize()
	if gpa%ps != 0 || size%ps != 0 || size == 0 {
		return fmt.Errorf("a64guest: map [%#x, +%#x): not aligned to the %v page", gpa, size, g.cfg.Mode.Granule)
	}
	if gpa < UcallMMIOGPA+ps && UcallMMIOGPA < gpa+size {
		return fmt.Errorf("a64guest: map [%#x, +%#x): overlaps the ucall page %#x", gpa, size, uint64(UcallMMIOGPA))
	}
	return g.PT.MapBlocks(gpa, gpa, size, a)
}

// MapPhys maps guest-physical [gpa, gpa+size) with attributes a where
// the guest can reach it, and returns the virtual address: gpa itself
// where the range fits the VA range (MapIdentity), else gpa's low
// VABits bits, for memory above 2^VABits such as the top of a 52-bit IPA
// space. Mapping over another mapping is refused, never done.
func (g *Guest) MapPhys(gpa, size uint64, a Attrs) (uint64, error) {
	m := g.cfg.Mode
	if gpa < m.VASize() && size <= m.VASize()-gpa {
		return gpa, g.MapIdentity(gpa, size, a)
	}
	ps := g.PageSize()
	if gpa%ps != 0 || size%ps != 0 || size == 0 {
		return 0, fmt.Errorf("a64guest: map [%#x, +%#x): not aligned to the %v page", gpa, size, m.Granule)
	}
	va := gpa & (m.VASize() - 1)
	if va+size > m.VASize() {
		return 0, fmt.Errorf("a64guest: map [%#x, +%#x): its %d-bit VA window [%#x, +%#x) wraps", gpa, size, m.VABits, va, size)
	}
	if err := g.PT.MapBlocks(va, gpa, size, a); err != nil {
		return 0, err
	}
	return va, nil
}

// RunAll runs every vCPU until DONE, concurrently, and returns the first
// failure (the others are then stopped). onSync may be called
// concurrently from the vCPUs' goroutines.
func (g *Guest) RunAll(ctx context.Context, onSync func(*guest.Ucall) error) error {
	return guest.RunConcurrently(ctx, len(g.VCPUs), func(ctx context.Context, i int) error {
		return g.RunUntilDone(ctx, i, onSync)
	})
}
