package emu

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest/desc"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Layout of the hand-built test guest (guest-physical = guest-virtual).
const (
	gdtGPA    = 0x0000
	pml4GPA   = 0x1000
	pdptGPA   = 0x2000
	pdGPA     = 0x3000
	idtGPA    = 0x4000
	tssGPA    = 0x5000 // 0x68 bytes + 8 KiB I/O bitmap + terminator
	stubGPA   = 0x8000 // 16 bytes per vector
	ptGPA     = 0x9000 // spare page tables for 4 KiB mappings
	kstackTop = 0x80000
	codeGPA   = 0x100000
	ustackTop = 0x1ff000
	dataGPA   = 0x200000
	guestMem  = 8 << 20

	selCode0 = 0x08
	selData0 = 0x10
	selCode3 = 0x18 | 3
	selData3 = 0x20 | 3
	selTSS   = 0x28

	portExc  = 0xfe // exception stubs report the vector here
	portDone = 0xf0 // test programs end with out portDone, al
	tssLimit = 0x68 + 8192
)

// testGuest is a minimal long-mode VM built by hand, usable on any
// backend: identity-mapped 1 GiB with 2 MiB user pages, flat ring-0 and
// ring-3 segments, a TSS with an allow-all I/O bitmap, and an IDT whose
// stubs report the vector on port portExc.
type testGuest struct {
	h    hv.Hypervisor
	vm   hv.VM
	mem  *hv.Memory
	vcpu hv.VCPU
	user bool
}

type guestOpt struct {
	cfg      hv.VMConfig
	user     bool // run the code at CPL3
	noBitmap bool // TSS without an I/O bitmap (limit 0x67)
	memSize  uint64
	slotFlag hv.MemFlags
	backing  hv.Backing // zero: anonymous
}

func put64(b []byte, off uint64, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func get64(b []byte, off uint64) uint64    { return binary.LittleEndian.Uint64(b[off:]) }

func newTestGuest(tb testing.TB, h hv.Hypervisor, o guestOpt, code []byte) *testGuest {
	tb.Helper()
	vm, err := h.NewVM(o.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	size := o.memSize
	if size == 0 {
		size = guestMem
	}
	mem, err := hv.NewMemory(size, o.backing)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		vm.Close()
		mem.Close()
	})
	b := mem.Bytes()
	// GDT: null, code0, data0, code3, data3, TSS (16 bytes).
	put64(b, gdtGPA+0x08, 0x00af9a000000ffff)
	put64(b, gdtGPA+0x10, 0x00cf92000000ffff)
	put64(b, gdtGPA+0x18, 0x00affa000000ffff)
	put64(b, gdtGPA+0x20, 0x00cff2000000ffff)
	limit := uint64(tssLimit)
	if o.noBitmap {
		limit = 0x67
	}
	put64(b, gdtGPA+0x28, limit&0xffff|(tssGPA&0xffffff)<<16|0x89<<40|(limit>>16&0xf)<<48|(tssGPA>>24&0xff)<<56)
	put64(b, gdtGPA+0x30, tssGPA>>32)
	// TSS: RSP0 and the I/O bitmap right after the fixed part.
	put64(b, tssGPA+4, kstackTop)
	binary.LittleEndian.PutUint16(b[tssGPA+0x66:], 0x68)
	b[tssGPA+0x68+8192] = 0xff
	// Page tables: 1 GiB identity map with 2 MiB user pages.
	put64(b, pml4GPA, pdptGPA|7)
	put64(b, pdptGPA, pdGPA|7)
	for i := uint64(0); i < 512; i++ {
		put64(b, pdGPA+8*i, i<<21|0x87)
	}
	// IDT: interrupt gates, DPL 3 (so INT n works from ring 3), to stubs
	// "mov al, vec; out portExc, al; hlt; jmp $".
	for v := uint64(0); v < 256; v++ {
		stub := stubGPA + 16*v
		copy(b[stub:], []byte{0xb0, byte(v), 0xe6, portExc, 0xf4, 0xeb, 0xfe})
		lo := stub&0xffff | selCode0<<16 | uint64(0xee)<<40 | (stub>>16&0xffff)<<48
		put64(b, idtGPA+16*v, lo)
		put64(b, idtGPA+16*v+8, stub>>32)
	}
	copy(b[codeGPA:], code)
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: size, Memory: mem, Flags: o.slotFlag}); err != nil {
		tb.Fatal(err)
	}
	v, err := vm.NewVCPU(0)
	if err != nil {
		tb.Fatal(err)
	}
	g := &testGuest{h: h, vm: vm, mem: mem, vcpu: v, user: o.user}
	g.setup(tb, v, codeGPA)
	return g
}

// setup puts a vCPU in long mode at rip with this guest's tables.
func (g *testGuest) setup(tb testing.TB, v hv.VCPU, rip uint64) {
	tb.Helper()
	s, err := v.Sregs()
	if err != nil {
		tb.Fatal(err)
	}
	code0 := hv.Segment{Selector: selCode0, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data0 := hv.Segment{Selector: selData0, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS, s.DS, s.ES, s.FS, s.GS, s.SS = code0, data0, data0, data0, data0, data0
	rsp := uint64(kstackTop)
	if g.user {
		code3, data3 := code0, data0
		code3.Selector, code3.DPL = selCode3, 3
		data3.Selector, data3.DPL = selData3, 3
		s.CS, s.DS, s.ES, s.FS, s.GS, s.SS = code3, data3, data3, data3, data3, data3
		rsp = ustackTop
	}
	s.TR = hv.Segment{Base: tssGPA, Limit: tssLimit, Selector: selTSS, Type: 11, Present: 1}
	if b := g.mem.Bytes(); binary.LittleEndian.Uint16(b[gdtGPA+0x28:]) == 0x67 {
		s.TR.Limit = 0x67
	}
	s.GDT = hv.DTable{Base: gdtGPA, Limit: 0x37}
	s.IDT = hv.DTable{Base: idtGPA, Limit: 0xfff}
	s.CR3 = pml4GPA
	s.CR4 = hv.CR4PAE
	s.CR0 = hv.CR0PE | hv.CR0MP | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0AM | hv.CR0PG
	s.EFER = hv.EFERLME | hv.EFERLMA | hv.EFERNXE
	if err := v.SetSregs(&s); err != nil {
		tb.Fatal(err)
	}
	if err := v.SetRegs(&hv.Regs{RIP: rip, RSP: rsp, RFLAGS: hv.FlagsFixed}); err != nil {
		tb.Fatal(err)
	}
}

// run runs the vCPU once with a watchdog.
func (g *testGuest) run(tb testing.TB) hv.Exit {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := g.vcpu.Run(ctx)
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return e
}

// runIO runs until a port write and returns it (failing on anything else).
func (g *testGuest) runIO(tb testing.TB) *hv.IOExit {
	tb.Helper()
	e := g.run(tb)
	io, ok := e.(*hv.IOExit)
	if !ok {
		r, _ := g.vcpu.Regs()
		tb.Fatalf("exit %v, want port I/O; regs %v", e, r)
	}
	return io
}

// runDone runs until the program's "out portDone" and returns registers.
func (g *testGuest) runDone(tb testing.TB) hv.Regs {
	tb.Helper()
	io := g.runIO(tb)
	if io.Port != portDone {
		r, _ := g.vcpu.Regs()
		tb.Fatalf("exit %v, want out to port %#x; regs %v", io, portDone, r)
	}
	r, err := g.vcpu.Regs()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// excFrame is what the CPU pushed for an exception.
type excFrame struct {
	vec              uint8
	code             uint64
	rip, cs, rflags  uint64
	rsp, ss          uint64
	handlerRSP       uint64
	errorCodePresent bool
}

func hasErrorCode(v uint8) bool { return desc.HasErrorCode(int(v)) }

// runException runs until an exception stub reports and decodes the frame.
func (g *testGuest) runException(tb testing.TB) excFrame {
	tb.Helper()
	io := g.runIO(tb)
	if io.Port != portExc {
		r, _ := g.vcpu.Regs()
		tb.Fatalf("exit %v, want an exception report; regs %v", io, r)
	}
	r, err := g.vcpu.Regs()
	if err != nil {
		tb.Fatal(err)
	}
	f := excFrame{vec: uint8(io.Value()), handlerRSP: r.RSP}
	b := g.mem.Bytes()
	sp := r.RSP
	if hasErrorCode(f.vec) {
		f.code = get64(b, sp)
		f.errorCodePresent = true
		sp += 8
	}
	f.rip, f.cs, f.rflags, f.rsp, f.ss = get64(b, sp), get64(b, sp+8), get64(b, sp+16), get64(b, sp+24), get64(b, sp+32)
	return f
}

// assemble builds a program at codeGPA with the harness assembler.
func assemble(tb testing.TB, build func(a *asm.Assembler)) []byte {
	tb.Helper()
	a := asm.New(codeGPA)
	build(a)
	code, err := a.Assemble()
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// done ends a test program: out portDone, al.
func done(a *asm.Assembler) { a.Out(asm.Imm(portDone), asm.AL) }

func newEmu(tb testing.TB) hv.Hypervisor {
	return New(Options{})
}
