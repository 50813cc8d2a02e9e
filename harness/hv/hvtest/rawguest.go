package hvtest

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// RawGuest is a minimal 64-bit guest built with raw hv calls, the same on
// every backend: 4 GiB identity-mapped with 2 MiB supervisor pages (the
// APIC pages included), flat ring-0 segments, a TSS, and an IDT whose
// stubs report the vector on port RawPortVec. Exception stubs (vectors
// below 32) then halt; interrupt stubs write the local APIC's EOI register
// and return, so a test counts deliveries by counting port exits.
type RawGuest struct {
	VM   hv.VM
	Mem  *hv.Memory
	VCPU hv.VCPU
}

// Layout of a RawGuest (guest-physical = guest-virtual).
const (
	rawGDT      = 0x0000
	rawPML4     = 0x1000
	rawPDPT     = 0x2000
	rawPD       = 0x3000 // four pages: 4 GiB of 2 MiB pages
	rawIDT      = 0x7000
	rawStubs    = 0x8000 // 32 bytes per vector
	rawTSS      = 0xa000
	rawStackTop = 0x80000
	// RawCodeGPA is where the program runs from.
	RawCodeGPA = 0x100000
	// RawDataGPA is free memory for the program's data.
	RawDataGPA = 0x200000
	// RawMemSize is the guest's RAM, slot 0 at GPA 0.
	RawMemSize = 4 << 20
	// RawPortVec receives the vector number from every IDT stub.
	RawPortVec = 0xfe
	// RawPortDone is where a program reports it is done (RawDone).
	RawPortDone = 0xf0

	rawSelCode = 0x08
	rawSelData = 0x10
	rawSelTSS  = 0x18
)

// RawDone ends a program: out RawPortDone, al.
func RawDone(a *asm.Assembler) { a.Out(asm.Imm(RawPortDone), asm.AL) }

// NewRawGuest creates a VM with cfg, its RAM, one vCPU in long mode at
// RawCodeGPA, and the program build assembles there. Everything is closed
// when the test ends.
func NewRawGuest(t testing.TB, h hv.Hypervisor, cfg hv.VMConfig, build func(a *asm.Assembler)) *RawGuest {
	t.Helper()
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	mem, err := hv.NewMemory(RawMemSize, hv.Anonymous)
	if err != nil {
		vm.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Close()
		mem.Close()
	})
	b := mem.Bytes()
	if err := layoutRaw(b, cfg.IRQChip); err != nil {
		t.Fatal(err)
	}
	a := asm.New(RawCodeGPA)
	build(a)
	code, err := a.Assemble()
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	copy(b[RawCodeGPA:], code)
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: RawMemSize, Memory: mem}); err != nil {
		t.Fatal(err)
	}
	v, err := vm.NewVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	g := &RawGuest{VM: vm, Mem: mem, VCPU: v}
	if err := g.Reset(RawCodeGPA); err != nil {
		t.Fatal(err)
	}
	return g
}

func put64(b []byte, off, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// layoutRaw writes the GDT, TSS, page tables, IDT and stubs.
func layoutRaw(b []byte, eoi bool) error {
	put64(b, rawGDT+rawSelCode, 0x00af9a000000ffff)
	put64(b, rawGDT+rawSelData, 0x00cf92000000ffff)
	const lim = 0x67
	put64(b, rawGDT+rawSelTSS, lim|(rawTSS&0xffffff)<<16|0x89<<40|(rawTSS>>24&0xff)<<56)
	put64(b, rawGDT+rawSelTSS+8, 0)
	binary.LittleEndian.PutUint16(b[rawTSS+0x66:], 0x68) // no I/O bitmap
	put64(b, rawPML4, rawPDPT|3)
	for i := uint64(0); i < 4; i++ {
		put64(b, rawPDPT+8*i, (rawPD+i*0x1000)|3)
	}
	for i := uint64(0); i < 4*512; i++ {
		put64(b, rawPD+8*i, i<<21|0x83)
	}
	for v := uint64(0); v < 256; v++ {
		stub := rawStubs + 32*v
		a := asm.New(stub)
		if v >= 32 && eoi {
			a.Push(asm.RAX)
			a.Mov(asm.AL, asm.Imm(int64(v)))
			a.Out(asm.Imm(RawPortVec), asm.AL)
			a.Mov(asm.EAX, asm.Imm(hv.LAPICBase+0xb0))
			a.Mov(asm.D(asm.RAX, 0), asm.Imm(0))
			a.Pop(asm.RAX)
			a.Iretq()
		} else {
			a.Mov(asm.AL, asm.Imm(int64(v)))
			a.Out(asm.Imm(RawPortVec), asm.AL)
			l := a.Here()
			a.Hlt()
			a.Jmp(l)
		}
		code, err := a.Assemble()
		if err != nil {
			return err
		}
		copy(b[stub:stub+32], code)
		put64(b, rawIDT+16*v, stub&0xffff|rawSelCode<<16|uint64(0x8e)<<40|(stub>>16&0xffff)<<48)
		put64(b, rawIDT+16*v+8, stub>>32)
	}
	return nil
}

// Reset puts the vCPU in long mode at rip with a fresh stack.
func (g *RawGuest) Reset(rip uint64) error {
	s, err := g.VCPU.Sregs()
	if err != nil {
		return err
	}
	code := hv.Segment{Selector: rawSelCode, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data := hv.Segment{Selector: rawSelData, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS, s.DS, s.ES, s.FS, s.GS, s.SS = code, data, data, data, data, data
	s.TR = hv.Segment{Selector: rawSelTSS, Base: rawTSS, Limit: 0x67, Type: 11, Present: 1}
	s.LDT = hv.Segment{Unusable: 1, Type: 2, Present: 1}
	s.GDT = hv.DTable{Base: rawGDT, Limit: rawSelTSS + 15}
	s.IDT = hv.DTable{Base: rawIDT, Limit: 256*16 - 1}
	s.CR0 = hv.CR0PE | hv.CR0MP | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0PG
	s.CR3 = rawPML4
	s.CR4 = hv.CR4PAE
	s.EFER = hv.EFERLME | hv.EFERLMA | hv.EFERNXE
	if err := g.VCPU.SetSregs(&s); err != nil {
		return err
	}
	return g.VCPU.SetRegs(&hv.Regs{RIP: rip, RSP: rawStackTop, RFLAGS: hv.FlagsFixed})
}

// Run runs the vCPU once with a deadline.
func (g *RawGuest) Run(t testing.TB, d time.Duration) (hv.Exit, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.VCPU.Run(ctx)
}

// RunPort runs until a port write and returns port and value; anything
// else fails the test.
func (g *RawGuest) RunPort(t testing.TB) (uint16, uint64) {
	t.Helper()
	e, err := g.Run(t, 10*time.Second)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	io, ok := e.(*hv.IOExit)
	if !ok || io.In {
		r, _ := g.VCPU.Regs()
		t.Fatalf("exit %v, want a port write; rip %#x", e, r.RIP)
	}
	return io.Port, io.Value()
}

// RunDone runs until RawDone, failing the test on anything else.
func (g *RawGuest) RunDone(t testing.TB) {
	t.Helper()
	if p, v := g.RunPort(t); p != RawPortDone {
		t.Fatalf("port %#x value %#x before the program was done", p, v)
	}
}
