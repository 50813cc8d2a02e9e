package guest_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

func TestLayoutErrors(t *testing.T) {
	h := backends(t)[0]
	cases := []struct {
		name    string
		cfg     guest.Config
		wantErr string
	}{
		{"code over the vCPU blocks", guest.Config{Layout: guest.Layout{Code: 0x200000}}, "code area [0x200000, +0x200000): overlaps vCPU blocks [0x100000, 0x500000)"},
		{"vCPU blocks in the system area", guest.Config{Layout: guest.Layout{VCPUBlocks: 0x80000}}, "overlaps system area"},
		{"unaligned vCPU blocks", guest.Config{Layout: guest.Layout{VCPUBlocks: 0x2001000}}, "not 0x10000-aligned"},
		{"unaligned code", guest.Config{Layout: guest.Layout{Code: 0x2000800}}, "page-aligned"},
		{"code beyond memory", guest.Config{Layout: guest.Layout{Code: 0x1000000}}, "code area [0x1000000, +0x200000): outside guest memory [0x0, 0x1000000)"},
		{"memory not a multiple of 2 MiB", guest.Config{MemSize: 17 << 20}, "multiple of 2 MiB"},
		{"memory too small for the areas", guest.Config{MemSize: 8 << 20}, "code area"},
		{"MMIO ucalls out of reach", guest.Config{MemSize: 1 << 30, UcallMMIO: true, Layout: guest.Layout{VCPUBlocks: 0x1000000}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := guest.New(h, c.cfg)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				g.Close()
				return
			}
			if err == nil {
				g.Close()
				t.Fatalf("guest.New succeeded, want %q", c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

// TestMovedLayout runs a program with every movable area moved, on both
// ucall transports, and checks the registers it starts with.
func TestMovedLayout(t *testing.T) {
	moved := guest.Layout{VCPUBlocks: 0x2000000, PageTables: 0x2800000, PageTableSize: 0x100000, Code: 0x100000, CodeSize: 0x10000}
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		for _, mmio := range []bool{false, true} {
			g := newGuest(t, h, guest.Config{Mode: mode, VCPUs: 2, MemSize: 64 << 20, UcallMMIO: mmio, Layout: moved})
			p := g.Program()
			next := p.NewLabel()
			p.Call(next) // pushes the address of next: where the code really runs
			p.Bind(next)
			p.Pop(asm.RAX)
			p.Sync(1, asm.RAX, asm.RSP, asm.R15, asm.RDI)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			var got []uint64
			if err := g.RunUntilDone(ctx(t), 1, func(u *guest.Ucall) error { got = u.Args; return nil }); err != nil {
				t.Fatal(err)
			}
			if got[1]&^0xffff != 0x100000 || got[2] != g.StackTop(1) || got[2] != 0x2020000 || got[3] != g.UcallPage(1) || got[4] != 1 {
				t.Fatalf("mmio %v: rip %#x rsp %#x r15 %#x rdi %d; want code at 0x100000, vCPU 1's block at 0x2010000", mmio, got[1], got[2], got[3], got[4])
			}
		}
	})
}

// TestPageTablePoolGrows maps 1 GiB with 4 KiB pages, which needs more
// tables than the first chunk holds (512 tables used to be the limit), and
// checks that the chunks the pool took from free memory are the
// supervisor's and that the guest can use its last page.
func TestPageTablePoolGrows(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		const mem = 1 << 30
		g := newGuest(t, h, guest.Config{Mode: mode, MemSize: mem})
		var chunks []guest.Region
		for _, r := range g.Allocator().Regions() {
			if r.Owner == "page tables" && r.Base != guest.PageTableBase {
				chunks = append(chunks, r)
			}
		}
		if len(chunks) == 0 {
			t.Fatal("no page-table chunk beyond the first: the pool did not grow")
		}
		for _, c := range chunks {
			leaf, ok, err := g.PT.Leaf(c.Base)
			if err != nil || !ok || leaf.Entry&guest.PTEUser != 0 {
				t.Fatalf("chunk %v: leaf %#x ok %v err %v, want present and supervisor-only", c, leaf.Entry, ok, err)
			}
		}
		p := g.Program()
		p.MovAbs(asm.RAX, mem-8)
		p.Mov(asm.Q(asm.RAX, 0), asm.Imm(0x5a))
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		if err := g.RunUntilDone(ctx(t), 0, nil); err != nil {
			t.Fatal(err)
		}
		if v, _ := g.Load64(mem - 8); v != 0x5a {
			t.Fatalf("last quadword %#x, want 0x5a", v)
		}
	})
}

// TestPageTablePoolExhausted: when free memory runs out the pool says so.
func TestPageTablePoolExhausted(t *testing.T) {
	g := newGuest(t, backends(t)[0], guest.Config{MemSize: 10 << 20, Layout: guest.Layout{PageTableSize: guest.Page4K * 16}})
	var err error
	for k := uint64(1); k < 512 && err == nil; k++ {
		// Each PML4 slot needs a PDPT, a PD and a PT of its own.
		err = g.PT.Map(k<<39, guest.DataBase, guest.Page4K, guest.PTEWrite)
	}
	if err == nil || !strings.Contains(err.Error(), "page-table pool after") || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("err = %v, want the pool to report exhausted memory", err)
	}
}

// flatBinary assembles code at base that reports SYNC(7, 42) and DONE
// through the raw ucall ABI, after 16 bytes of data; its entry is base+16.
func flatBinary(t *testing.T, base uint64) []byte {
	a := asm.New(base)
	a.Space(16, 0)
	ucall := func(cmd guest.UcallCmd, args ...int64) {
		for i, v := range args {
			a.Mov(asm.Q(asm.R15, int32(guest.UcallArgsOffset+8*i)), asm.Imm(v))
		}
		a.Mov(asm.Q(asm.R15, guest.UcallNArgsOffset), asm.Imm(int64(len(args))))
		a.Mov(asm.Q(asm.R15, guest.UcallSiteOffset), asm.Imm(0))
		a.Mov(asm.Q(asm.R15, guest.UcallCmdOffset), asm.Imm(int64(cmd)))
		a.Out(asm.Imm(guest.UcallPort), asm.AL)
	}
	ucall(guest.UcallSync, 7, 42)
	ucall(guest.UcallDone)
	code, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestLoadFlat(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		// 1 MiB, where flat binaries like to live, is free once the vCPU
		// blocks move.
		g := newGuest(t, h, guest.Config{Mode: mode, MemSize: 64 << 20, Layout: guest.Layout{VCPUBlocks: 0x2000000}})
		const base = 0x100000
		code := flatBinary(t, base)
		for range 2 { // loading it again reuses its range
			if err := g.LoadFlat(base, code, base+16); err != nil {
				t.Fatal(err)
			}
		}
		var got []uint64
		if err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error { got = u.Args; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 7 || got[1] != 42 {
			t.Fatalf("sync %v, want [7 42]", got)
		}
		if _, err := g.Alloc(8, 8); err != nil {
			t.Fatal(err)
		}
		for _, r := range g.Allocator().Regions() {
			if r.Owner == "data" && r.Base < base+uint64(len(code)) && r.End() > base {
				t.Fatalf("Alloc handed out %v inside the flat binary", r)
			}
		}
	})
}

func TestLoadFlatErrors(t *testing.T) {
	g := newGuest(t, backends(t)[0], guest.Config{})
	code := flatBinary(t, 0x100000)
	cases := []struct {
		name       string
		gpa, entry uint64
		code       []byte
		wantErr    string
	}{
		{"over the vCPU blocks", 0x100000, 0x100010, code, "flat binary [0x100000, +0x"},
		{"over the system area", 0x1000, 0x1010, code, "overlaps system area"},
		{"beyond memory", guest.DefaultMemSize - 8, guest.DefaultMemSize, code, "outside guest memory"},
		{"entry outside", guest.DataBase, guest.DataBase + uint64(len(code)), code, "entry 0x"},
		{"empty", guest.DataBase, guest.DataBase, nil, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := g.LoadFlat(c.gpa, c.code, c.entry)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
	// Inside the code area a flat binary replaces the program, no reservation needed, twice.
	for range 2 {
		if err := g.LoadFlat(guest.CodeBase, flatBinary(t, guest.CodeBase), guest.CodeBase+16); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDescriptorTables reads back what the CPU was given: GDTR and IDTR
// (sgdt/sidt), the selectors in CS and SS, and exceptions from CPL3
// landing on the TSS's IST1 stack.
func TestDescriptorTables(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode, VCPUs: 3})
		buf, err := g.Alloc(32, 16)
		if err != nil {
			t.Fatal(err)
		}
		p := g.Program()
		p.MovAbs(asm.RBX, buf)
		p.Sgdt(asm.Q(asm.RBX, 0))
		p.Sidt(asm.Q(asm.RBX, 16))
		fix := p.NewLabel()
		p.ExpectException(fix)
		p.Int3()
		p.Bind(fix)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		if err := g.RunUntilDone(ctx(t), 2, nil); err != nil {
			t.Fatal(err)
		}
		b, _ := g.Bytes(buf, 32)
		le := binary.LittleEndian
		if lim, base := le.Uint16(b), le.Uint64(b[2:]); lim != 0x28+3*16-1 || base != guest.GDTBase {
			t.Fatalf("GDTR limit %#x base %#x", lim, base)
		}
		if lim, base := le.Uint16(b[16:]), le.Uint64(b[18:]); lim != 0xfff || base != guest.IDTBase {
			t.Fatalf("IDTR limit %#x base %#x", lim, base)
		}
		s, err := g.VCPUs[2].Sregs()
		if err != nil {
			t.Fatal(err)
		}
		wantCS, wantSS := guest.SelKernelCode, guest.SelKernelData
		if mode == guest.CPL3 {
			wantCS, wantSS = guest.SelUserCode, guest.SelUserData
		}
		if s.CS.Selector != uint16(wantCS) || s.SS.Selector != uint16(wantSS) || s.CS.L != 1 || s.TR.Selector != 0x28+2*16 || s.TR.Type != 11 {
			t.Fatalf("CS %+v SS %+v TR %+v", s.CS, s.SS, s.TR)
		}
	})
}
