package guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest/desc"
	"github.com/kvmspec/kvmspec/harness/hv"
)

func (g *Guest) build() error {
	root, err := g.pool.alloc()
	if err != nil {
		return err
	}
	g.PT = &PageTables{Root: root, mem: g.Bytes, alloc: g.pool.alloc}
	if err := g.identityMap(); err != nil {
		return fmt.Errorf("guest page tables: %w", err)
	}
	if err := g.buildGDT(); err != nil {
		return err
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

// identityMap maps slot 0 with 4 KiB pages (page 0 left out). System
// areas are supervisor-only; the ucall pages, user stacks, code and free
// memory are user-accessible so CPL3 code can use them.
func (g *Guest) identityMap() error {
	sup := uint64(PTEWrite)
	usr := uint64(PTEWrite | PTEUser)
	type area struct{ base, size, flags uint64 }
	l := g.cfg.Layout
	maps := []area{
		{Page4K, SystemSize - Page4K, sup},
		{l.PageTables, l.PageTableSize, sup},
		{l.Code, l.CodeSize, usr},
	}
	for i := 0; i < MaxVCPUs; i++ {
		b := l.vcpuBlock(i)
		maps = append(maps,
			area{b, blockUcall, sup},
			area{b + blockUcall, hv.PageSize, usr},
			area{b + blockISTBottom, blockISTTop - blockISTBottom, sup},
			area{b + blockISTTop, blockUserStack - blockISTTop, usr})
	}
	// Free memory is whatever the areas leave, before anything else
	// (page-table chunks among them) is allocated from it.
	start := uint64(0)
	for _, r := range g.phys.Regions() {
		if r.Base > start {
			maps = append(maps, area{start, r.Base - start, usr})
		}
		start = r.End()
	}
	if start < g.cfg.MemSize {
		maps = append(maps, area{start, g.cfg.MemSize - start, usr})
	}
	for _, m := range maps {
		if err := g.PT.Map(m.base, m.base, m.size, m.flags); err != nil {
			return err
		}
	}
	// The local APIC page, uncached; CPL3 test code signals EOI itself.
	apic := uint64(PTEWrite | PTEPCD | PTEPWT)
	if g.cfg.Mode == CPL3 {
		apic |= PTEUser
	}
	if err := g.PT.Map(APICBase, APICBase, hv.PageSize, apic); err != nil {
		return err
	}
	if g.cfg.UcallMMIO {
		for i := 0; i < g.cfg.VCPUs; i++ {
			gpa := UcallMMIOGPA + uint64(i)*VCPUBlockSize
			if err := g.PT.Map(gpa, gpa, hv.PageSize, usr); err != nil {
				return err
			}
		}
	}
	// Chunks the pool took from free memory while mapping it were mapped
	// for the user above; page tables are the supervisor's.
	g.booted = true
	for _, r := range g.pool.grown {
		if err := g.ptGrew(r); err != nil {
			return err
		}
	}
	return nil
}

// buildGDT writes the standard GDT (null, kernel code and data, user code
// and data, one TSS descriptor per vCPU) and each vCPU's TSS.
func (g *Guest) buildGDT() error {
	gdt := desc.NewGDT()
	for _, e := range []struct {
		d    desc.Descriptor
		want desc.Selector
	}{{kernelCode, SelKernelCode}, {kernelData, SelKernelData}, {userCode, SelUserCode}, {userData, SelUserData}} {
		if sel := gdt.Add(e.d); sel != e.want {
			return fmt.Errorf("guest GDT: descriptor at %v, its selector constant says %v", sel, e.want)
		}
	}
	for i := 0; i < g.cfg.VCPUs; i++ {
		if sel := gdt.AddTSS(g.tssDescriptor(i)); sel != g.trSelector(i) {
			return fmt.Errorf("guest GDT: TSS of vcpu %d at %v, want %v", i, sel, g.trSelector(i))
		}
		// RSP0 and IST1 at the top of the block's exception stack, IST2
		// below it; the I/O bitmap right after the header, all ports
		// allowed (zero bits), and the 0xff byte the CPU reads past the
		// last port.
		block := g.cfg.Layout.vcpuBlock(i)
		var tss desc.TSS
		tss.RSP[0] = block + blockISTTop
		tss.IST[istStubs-1] = block + blockISTTop
		tss.IST[istHandlers-1] = block + blockIST2Top
		tss.IOPBBase = tssIOPB
		b, err := g.Bytes(g.tssDescriptor(i).Base, tssSize)
		if err != nil {
			return err
		}
		clear(b)
		if err := tss.Put(b); err != nil {
			return err
		}
		b[tssSize-1] = 0xff
	}
	if gdt.Len() > IDTBase-GDTBase {
		return fmt.Errorf("guest GDT: %d bytes overrun the IDT", gdt.Len())
	}
	dst, err := g.Bytes(GDTBase, gdt.Len())
	if err != nil {
		return err
	}
	copy(dst, gdt.Bytes())
	g.gdtr = gdt.DTable(GDTBase)
	return nil
}

func (g *Guest) tssDescriptor(i int) desc.TSSDescriptor {
	return desc.NewTSSDescriptor(g.cfg.Layout.vcpuBlock(i)+blockTSS, tssSize)
}

func (g *Guest) trSelector(i int) desc.Selector { return selTSS0 + desc.Selector(16*i) }

// buildRuntime assembles the IDT stubs and the common handler and fills the IDT.
func (g *Guest) buildRuntime() error {
	a := asm.New(RuntimeBase)
	common := a.NewLabel()
	stubs := make([]*asm.Label, 256)
	for v := 0; v < 256; v++ {
		stubs[v] = a.Here()
		if !desc.HasErrorCode(v) {
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
		a.Mov(asm.B(asm.RBX, g.ucallMMIODisp()), asm.AL)
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
	dst, err := g.Bytes(RuntimeBase, len(code))
	if err != nil {
		return err
	}
	copy(dst, code)
	for v := 0; v < desc.IDTVectors; v++ {
		addr, _ := a.Addr(stubs[v])
		g.idt[v] = desc.InterruptGate(addr, SelKernelCode, istStubs, gateDPL(v))
	}
	g.runtimeEnd = RuntimeBase + uint64(len(code))
	return g.writeIDT()
}

func (g *Guest) setSregs(i int) error {
	v := g.VCPUs[i]
	s, err := v.Sregs()
	if err != nil {
		return err
	}
	code, data, cs, ds := kernelCode, kernelData, SelKernelCode, SelKernelData
	if g.cfg.Mode == CPL3 {
		code, data, cs, ds = userCode, userData, SelUserCode, SelUserData
	}
	s.CS = code.Segment(cs)
	d := data.Segment(ds)
	s.DS, s.ES, s.FS, s.GS, s.SS = d, d, d, d, d
	s.TR = g.tssDescriptor(i).TR(g.trSelector(i))
	s.LDT = desc.UnusableLDT()
	s.GDT = g.gdtr
	s.IDT = g.idt.DTable(IDTBase)
	s.CR0 = hv.CR0PE | hv.CR0MP | hv.CR0ET | hv.CR0NE | hv.CR0WP | hv.CR0PG
	s.CR3 = g.PT.Root
	s.CR4 = hv.CR4PAE | hv.CR4OSFXSR | hv.CR4OSXMMEXCPT
	s.EFER = hv.EFERLME | hv.EFERLMA | hv.EFERNXE | hv.EFERSCE
	return v.SetSregs(&s)
}

// gateDPL lets ring-3 software reach #BP (int3), #OF (into) and the
// non-exception vectors (int n), as a usual OS does.
func gateDPL(v int) uint8 {
	if v == desc.VectorBP || v == desc.VectorOF || v >= desc.FirstExternalVector {
		return 3
	}
	return 0
}

// writeIDT copies the IDT into guest memory.
func (g *Guest) writeIDT() error {
	b := g.idt.Bytes()
	dst, err := g.Bytes(IDTBase, len(b))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// ucallMMIODisp is the displacement from a vCPU's ucall page (R15) to its
// page of the MMIO ucall window.
func (g *Guest) ucallMMIODisp() int32 {
	return int32(UcallMMIOGPA - g.cfg.Layout.VCPUBlocks - blockUcall)
}
