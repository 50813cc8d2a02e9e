package guest

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// vectorHasErrorCode marks the exceptions for which the CPU pushes an error code.
var vectorHasErrorCode = map[int]bool{8: true, 10: true, 11: true, 12: true, 13: true, 14: true, 17: true, 21: true, 29: true, 30: true}

func (g *Guest) build() error {
	mem := g.Mem.Bytes()
	le := binary.LittleEndian
	root, err := g.allocPT()
	if err != nil {
		return err
	}
	g.PT = &PageTables{Root: root, mem: g.Bytes, alloc: g.allocPT}

	// Identity map slot 0 with 4 KiB pages (page 0 left out). System areas
	// are supervisor-only; the ucall pages, user stacks, code and data are
	// user-accessible so CPL3 code can use them.
	sup := uint64(PTEWrite)
	usr := uint64(PTEWrite | PTEUser)
	maps := []struct{ base, size, flags uint64 }{
		{0x1000, RuntimeBase - 0x1000, sup},
		{RuntimeBase, RuntimeSize, sup},
		{PageTableBase, PageTableSize, sup},
		{CodeBase, CodeSize, usr},
		{DataBase, g.cfg.MemSize - DataBase, usr},
	}
	for i := 0; i < MaxVCPUs; i++ {
		b := vcpuBlock(i)
		maps = append(maps,
			struct{ base, size, flags uint64 }{b, blockUcall, sup},
			struct{ base, size, flags uint64 }{b + blockUcall, hv.PageSize, usr},
			struct{ base, size, flags uint64 }{b + blockISTBottom, blockISTTop - blockISTBottom, sup},
			struct{ base, size, flags uint64 }{b + blockISTTop, blockUserStack - blockISTTop, usr})
	}
	for _, m := range maps {
		if err := g.PT.Map(m.base, m.base, m.size, m.flags); err != nil {
			return fmt.Errorf("guest page tables: %w", err)
		}
	}
	if g.cfg.UcallMMIO {
		for i := 0; i < g.cfg.VCPUs; i++ {
			gpa := UcallMMIOGPA + uint64(i)*VCPUBlockSize
			if err := g.PT.Map(gpa, gpa, hv.PageSize, usr); err != nil {
				return err
			}
		}
	}

	// GDT: null, kernel code/data, user code/data, one TSS per vCPU.
	gdt := mem[GDTBase : GDTBase+hv.PageSize]
	le.PutUint64(gdt[SelKernelCode:], 0x00af9b000000ffff) // 64-bit code, DPL0
	le.PutUint64(gdt[SelKernelData:], 0x00cf93000000ffff) // data, DPL0
	le.PutUint64(gdt[SelUserCode&^3:], 0x00affb000000ffff)
	le.PutUint64(gdt[SelUserData&^3:], 0x00cff3000000ffff)
	for i := 0; i < g.cfg.VCPUs; i++ {
		base := vcpuBlock(i) + blockTSS
		off := selTSS0 + 16*i
		lo := uint64(tssLimit&0xffff) | (base&0xffffff)<<16 | uint64(0x89)<<40 | uint64(tssLimit>>16&0xf)<<48 | (base>>24&0xff)<<56
		le.PutUint64(gdt[off:], lo)
		le.PutUint64(gdt[off+8:], base>>32)
		// TSS: RSP0 and IST1 at the top of the block's IST stack; I/O
		// bitmap right after the header, all ports allowed.
		tss := mem[base : base+tssSize]
		clear(tss)
		le.PutUint64(tss[4:], vcpuBlock(i)+blockISTTop)
		le.PutUint64(tss[36:], vcpuBlock(i)+blockISTTop)
		le.PutUint16(tss[102:], 0x68)
		tss[tssSize-1] = 0xff
	}
	if err := g.buildRuntime(); err != nil {
		return err
	}
	for i := 0; i < g.cfg.VCPUs; i++ {
		v, err := g.VM.NewVCPU(i)
		if err != nil {
			return err
		}
		g.VCPUs = append(g.VCPUs, v)
		if err := g.setSregs(i); err != nil {
			return err
		}
	}
	return nil
}

// buildRuntime assembles the IDT stubs and the common handler and fills the IDT.
func (g *Guest) buildRuntime() error {
	a := asm.New(RuntimeBase)
	common := a.NewLabel()
	stubs := make([]*asm.Label, 256)
	for v := 0; v < 256; v++ {
		stubs[v] = a.Here()
		if !vectorHasErrorCode[v] {
			a.Push(asm.Imm(0))
		}
		a.Push(asm.Imm(int64(v)))
		a.Jmp(common)
	}
	// Stack: vector, error code, then the CPU's frame (RIP, CS, RFLAGS, RSP, SS).
	a.Bind(common)
	a.Push(asm.RAX)
	a.Push(asm.RBX)
	// The IST stack lies inside this vCPU's block: find the ucall page
	// from RSP, whatever the test code left in its registers.
	a.Mov(asm.RBX, asm.RSP)
	a.And(asm.RBX, asm.Imm(-VCPUBlockSize))
	a.Add(asm.RBX, asm.Imm(blockUcall))
	for i, off := range []int32{ucExcVec, ucExcErr, ucExcRIP} {
		a.Mov(asm.RAX, asm.Q(asm.RSP, int32(16+8*i)))
		a.Mov(asm.Q(asm.RBX, off), asm.RAX)
	}
	a.MovFromCR(asm.RAX, asm.CR2)
	a.Mov(asm.Q(asm.RBX, ucExcCR2), asm.RAX)
	a.Inc(asm.Q(asm.RBX, ucExcCnt))
	a.Mov(asm.RAX, asm.Q(asm.RBX, ucExcFix))
	a.Test(asm.RAX, asm.RAX)
	unhandled := a.NewLabel()
	a.Jcc(asm.CondE, unhandled)
	a.Mov(asm.Q(asm.RBX, ucExcFix), asm.Imm(0))
	a.Mov(asm.Q(asm.RSP, 32), asm.RAX) // resume at the fixup
	a.Pop(asm.RBX)
	a.Pop(asm.RAX)
	a.Add(asm.RSP, asm.Imm(16))
	a.Iretq()

	a.Bind(unhandled)
	for i, off := range []int32{ucExcVec, ucExcErr, ucExcRIP, ucExcCR2} {
		a.Mov(asm.RAX, asm.Q(asm.RBX, off))
		a.Mov(asm.Q(asm.RBX, int32(ucArgs+8*i)), asm.RAX)
	}
	a.Mov(asm.Q(asm.RBX, ucNArgs), asm.Imm(4))
	a.Mov(asm.Q(asm.RBX, ucSite), asm.Imm(0))
	a.Mov(asm.Q(asm.RBX, ucCmd), asm.Imm(int64(UcallUnhandled)))
	if g.cfg.UcallMMIO {
		a.Mov(asm.B(asm.RBX, int32(UcallMMIOGPA-VCPUBlockBase-blockUcall)), asm.AL)
	} else {
		a.Out(asm.Imm(UcallPort), asm.AL)
	}
	stop := a.Here()
	a.Hlt()
	a.Jmp(stop)

	code, err := a.Assemble()
	if err != nil {
		return fmt.Errorf("guest runtime: %w", err)
	}
	if len(code) > RuntimeSize {
		return fmt.Errorf("guest runtime: %d bytes do not fit", len(code))
	}
	mem := g.Mem.Bytes()
	copy(mem[RuntimeBase:], code)
	le := binary.LittleEndian
	for v := 0; v < 256; v++ {
		addr, _ := a.Addr(stubs[v])
		dpl := uint64(0)
		// Software interrupts from ring 3 are allowed for #BP, #OF and the
		// non-exception vectors, as a usual OS does.
		if v == 3 || v == 4 || v >= 32 {
			dpl = 3
		}
		lo := addr&0xffff | uint64(SelKernelCode)<<16 | 1<<32 /* IST1 */ | (0x8e|dpl<<5)<<40 | (addr>>16&0xffff)<<48
		le.PutUint64(mem[IDTBase+16*v:], lo)
		le.PutUint64(mem[IDTBase+16*v+8:], addr>>32)
	}
	return nil
}

func seg(sel uint16, code bool, dpl uint8) hv.Segment {
	s := hv.Segment{Selector: sel, Limit: 0xffffffff, Present: 1, S: 1, G: 1, DPL: dpl}
	if code {
		s.Type, s.L = 11, 1
	} else {
		s.Type, s.DB = 3, 1
	}
	return s
}

func (g *Guest) setSregs(i int) error {
	v := g.VCPUs[i]
	s, err := v.Sregs()
	if err != nil {
		return err
	}
	if g.cfg.Mode == CPL3 {
		s.CS = seg(SelUserCode, true, 3)
		d := seg(SelUserData, false, 3)
		s.DS, s.ES, s.FS, s.GS, s.SS = d, d, d, d, d
	} else {
		s.CS = seg(SelKernelCode, true, 0)
		d := seg(SelKernelData, false, 0)
		s.DS, s.ES, s.FS, s.GS, s.SS = d, d, d, d, d
	}
	s.TR = hv.Segment{Selector: uint16(selTSS0 + 16*i), Base: vcpuBlock(i) + blockTSS, Limit: tssLimit, Type: 11, Present: 1}
	s.LDT = hv.Segment{Unusable: 1, Type: 2, Present: 1}
	s.GDT = hv.DTable{Base: GDTBase, Limit: uint16(selTSS0 + 16*g.cfg.VCPUs - 1)}
	s.IDT = hv.DTable{Base: IDTBase, Limit: 256*16 - 1}
	s.CR0 = hv.CR0PE | hv.CR0MP | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0PG
	s.CR3 = g.PT.Root
	s.CR4 = hv.CR4PAE | hv.CR4OSFXSR | hv.CR4OSXMMEXCPT
	s.EFER = hv.EFERLME | hv.EFERLMA | hv.EFERNXE | hv.EFERSCE
	return v.SetSregs(&s)
}
