package guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/guest/desc"
)

// The standard guest's physical layout. Everything below MemSize is slot 0
// and identity-mapped (guest virtual == guest physical), page 0 excepted so
// that a null dereference faults. The system area (the first MiB: GDT, IDT
// and runtime code) is fixed; the other areas are where Config.Layout puts
// them, by default at the addresses below.
const (
	GDTBase     = 0x1000
	IDTBase     = 0x2000
	RuntimeBase = 0x10000 // IDT stubs, handlers and the common exception handler (CPL0)
	RuntimeSize = 0xf0000
	// SystemSize is the fixed system area [0, SystemSize).
	SystemSize = RuntimeBase + RuntimeSize

	// Each vCPU owns a 64 KiB block: the exception handler finds its block
	// from RSP (the IST stack lives inside it), so a test that clobbers
	// every register still gets its exceptions reported.
	VCPUBlockBase = 0x100000
	VCPUBlockSize = 0x10000
	MaxVCPUs      = 64

	blockTSS       = 0x0000 // TSS with a full I/O permission bitmap (3 pages)
	blockUcall     = 0x3000 // ucall page (user accessible)
	blockISTBottom = 0x4000
	blockIST2Top   = 0x6000 // IST2 stack top: installed handlers run here
	blockISTTop    = 0x8000 // IST1 stack top: the reporting stubs run here
	blockUserStack = 0x10000

	PageTableBase = 0x500000 // first chunk of the page-table pool
	PageTableSize = 0x200000
	CodeBase      = 0x700000 // test code
	CodeSize      = 0x200000
	// DataBase is where free memory starts in the default layout: the
	// first Guest.Alloc returns it.
	DataBase = 0x900000

	// DefaultMemSize is the size of slot 0 unless Config.MemSize says otherwise.
	DefaultMemSize = 16 << 20

	// UcallPort is the I/O port of the PIO ucall.
	UcallPort = 0xf5
	// UcallMMIOGPA is the unbacked guest-physical page of the MMIO ucall;
	// it is within 2 GiB of the ucall pages so code can address it
	// relative to R15.
	UcallMMIOGPA = 0x7ff00000

	// The TSS: header, I/O bitmap right after it, the terminating 0xff byte.
	tssIOPB = desc.TSSHeaderSize
	tssSize = tssIOPB + desc.IOBitmapSize + 1

	istStubs    = 1 // the reporting stubs' stack
	istHandlers = 2 // installed handlers' stack, so a fault in one is reported intact
)

// Selectors of the standard GDT, in table order; the descriptors behind
// them are standardGDT's.
const (
	SelKernelCode desc.Selector = 0x08
	SelKernelData desc.Selector = 0x10
	SelUserCode   desc.Selector = 0x18 | 3
	SelUserData   desc.Selector = 0x20 | 3
	selTSS0       desc.Selector = 0x28 // 16-byte TSS descriptors, one per vCPU
)

// The segments of the standard GDT.
var (
	kernelCode = desc.Code64(0)
	kernelData = desc.Data(0)
	userCode   = desc.Code64(3)
	userData   = desc.Data(3)
)

// Ucall page layout (offsets from R15).
const (
	ucCmd      = 0x00
	ucSite     = 0x08
	ucNArgs    = 0x10
	ucArgs     = 0x18 // MaxUcallArgs quadwords
	ucExcFix   = 0x100
	ucExcVec   = 0x108
	ucExcErr   = 0x110
	ucExcRIP   = 0x118
	ucExcCR2   = 0x120
	ucExcCnt   = 0x128
	ucIntCount = 0x400 // 256 32-bit counts, one per vector, of installed handlers' runs
	ucUser     = 0x800 // free for tests: Guest.UcallPage(i)[ucUser:]

	// MaxUcallArgs is how many arguments a ucall carries.
	MaxUcallArgs = 8
)

// The ucall ABI for code not built with Program (a flat binary): store
// the command, site 0, the argument count and the arguments at these
// offsets from R15, then write any byte to UcallPort (or, with
// Config.UcallMMIO, to the vCPU's page of the MMIO window).
const (
	UcallCmdOffset   = ucCmd
	UcallSiteOffset  = ucSite
	UcallNArgsOffset = ucNArgs
	UcallArgsOffset  = ucArgs
)

// UserScratch is the offset from R15 of a per-vCPU scratch area tests may use.
const UserScratch = ucUser

// Layout places the movable areas of the standard guest in slot 0. A zero
// field takes its default (the package constant of the same name), so the
// zero Layout is the layout every suite was written for. Free memory (for
// Guest.Alloc, page tables beyond the first chunk, and flat binaries) is
// whatever the areas leave.
type Layout struct {
	// VCPUBlocks is where the MaxVCPUs 64 KiB per-vCPU blocks (TSS, ucall
	// page, exception stack, stack) start; 64 KiB aligned.
	VCPUBlocks uint64
	// PageTables and PageTableSize are the first chunk of the page-table
	// pool; the pool grows from free memory when it runs out.
	PageTables, PageTableSize uint64
	// Code and CodeSize are the area Programs are assembled for and loaded into.
	Code, CodeSize uint64
}

// withDefaults fills the zero fields.
func (l Layout) withDefaults() Layout {
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.VCPUBlocks, VCPUBlockBase)
	def(&l.PageTables, PageTableBase)
	def(&l.PageTableSize, PageTableSize)
	def(&l.Code, CodeBase)
	def(&l.CodeSize, CodeSize)
	return l
}

// areas are the layout's fixed regions, for the allocator and the map.
func (l Layout) areas() []Region {
	return []Region{
		{Base: 0, Size: SystemSize, Owner: "system area"},
		{Base: l.VCPUBlocks, Size: MaxVCPUs * VCPUBlockSize, Owner: "vCPU blocks"},
		{Base: l.PageTables, Size: l.PageTableSize, Owner: "page tables"},
		{Base: l.Code, Size: l.CodeSize, Owner: "code area"},
	}
}

// check validates a layout filled by withDefaults against the memory size.
func (l Layout) check(memSize uint64, ucallMMIO bool) error {
	if l.VCPUBlocks%VCPUBlockSize != 0 {
		// The exception handler finds its block by masking RSP.
		return fmt.Errorf("guest layout: vCPU blocks at %#x are not %#x-aligned", l.VCPUBlocks, VCPUBlockSize)
	}
	if l.PageTables%Page4K != 0 || l.PageTableSize%Page4K != 0 || l.Code%Page4K != 0 || l.CodeSize%Page4K != 0 {
		return fmt.Errorf("guest layout %+v: areas must be page-aligned", l)
	}
	if ucallMMIO {
		// Code reaches its MMIO ucall page as R15 + disp32.
		if d := int64(UcallMMIOGPA) - int64(l.VCPUBlocks); d != int64(int32(d)) {
			return fmt.Errorf("guest layout: vCPU blocks at %#x are beyond 2 GiB of the MMIO ucall window", l.VCPUBlocks)
		}
	}
	// Overlaps and bounds: the allocator says which areas collide.
	a := NewAllocator(0, memSize)
	for _, r := range l.areas() {
		if err := a.Reserve(r.Base, r.Size, r.Owner); err != nil {
			return fmt.Errorf("guest layout: %w", err)
		}
	}
	return nil
}

func (l Layout) vcpuBlock(i int) uint64 { return l.VCPUBlocks + uint64(i)*VCPUBlockSize }

func vcpuBlock(i int) uint64 { return VCPUBlockBase + uint64(i)*VCPUBlockSize }
