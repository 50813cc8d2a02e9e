package a64guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/guest"
)

// The arm64 guest's physical layout. Slot 0 starts at guest-physical 0
// (as in the kernel selftests) and is identity-mapped (VA == PA) except
// its first 64 KiB, so a null pointer faults. Every area is 64 KiB
// aligned, so each gets its own attributes with any granule.
const (
	// RuntimeBase is where the vector table (VBAR_EL1, 2 KiB aligned),
	// the boot code and installed handlers live: EL1 read-only code.
	RuntimeBase = 0x10000
	RuntimeSize = 0xf0000

	// Each vCPU owns a 128 KiB block: a 64 KiB EL1 half (the handlers'
	// stack on SP_EL1 and their ucall record), then a 64 KiB user half
	// (test code's ucall record, exception state, handler counts,
	// scratch, and the test stack on SP_EL0).
	VCPUBlockBase  = 0x100000
	vcpuBlockShift = 17
	VCPUBlockSize  = 1 << vcpuBlockShift
	MaxVCPUs       = 32
	el1HalfSize    = 0x10000

	PageTableBase = 0x500000 // the page-table pool
	PageTableSize = 0x200000
	CodeBase      = 0x700000 // test code: read-only, executable at EL0 and EL1
	CodeSize      = 0x200000
	// DataBase is where free memory starts; Guest.Alloc hands it out.
	DataBase = 0x900000

	// DefaultMemSize is slot 0's size unless Config.MemSize says otherwise.
	DefaultMemSize = 16 << 20

	// UcallMMIOGPA is the unbacked page the ucall writes to (VA == PA),
	// mapped as device memory at both ELs. Memory must end below it.
	UcallMMIOGPA = 0x7ff00000

	// areaAlign is the alignment of every area: the largest granule.
	areaAlign = 0x10000
)

// Offsets in a vCPU block's user half (X28 in test code points at it).
const (
	// UcallRecord is test code's ucall record (guest.UcallRecordSize bytes).
	UcallRecord = 0x000
	// HandlerRecord is the record installed handlers' bodies use, so a
	// handler's Sync does not clobber a ucall the test code was building.
	HandlerRecord = 0x080
	// Exception state: ExpectException's fixup address (0: not armed), and
	// what the runtime recorded of the last exception it resumed from.
	ExcFixup  = 0x100
	ExcVector = 0x108
	ExcESR    = 0x110
	ExcFAR    = 0x118
	ExcELR    = 0x120
	ExcSPSR   = 0x128
	ExcCount  = 0x130
	// HandlerCounts are 16 32-bit counts, one per vector, of installed
	// handlers' runs.
	HandlerCounts = 0x200
	// UserScratch is free for tests, up to UserStackLimit.
	UserScratch = 0x800
	// UserStackLimit is the lowest address of the test stack; the stack's
	// top is the end of the block.
	UserStackLimit = 0x1000

	// The EL1 half: the runtime's own report record, then its stack.
	el1Record   = 0x000
	el1StackTop = el1HalfSize
)

// Layout places the movable areas in slot 0; zero fields take the
// defaults above.
type Layout struct {
	VCPUBlocks                uint64
	PageTables, PageTableSize uint64
	Code, CodeSize            uint64
}

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

// Regions are the layout's fixed areas.
func (l Layout) Regions() []guest.Region {
	return []guest.Region{
		{Base: 0, Size: RuntimeBase, Owner: "null guard"},
		{Base: RuntimeBase, Size: RuntimeSize, Owner: "runtime"},
		{Base: l.VCPUBlocks, Size: MaxVCPUs * VCPUBlockSize, Owner: "vCPU blocks"},
		{Base: l.PageTables, Size: l.PageTableSize, Owner: "page tables"},
		{Base: l.Code, Size: l.CodeSize, Owner: "code area"},
	}
}

// check validates a layout filled by withDefaults against the memory size.
func (l Layout) check(memSize uint64) error {
	if memSize == 0 || memSize%areaAlign != 0 || memSize > UcallMMIOGPA {
		return fmt.Errorf("a64guest: memory size %#x must be a multiple of 64 KiB up to %#x", memSize, UcallMMIOGPA)
	}
	a := guest.NewAllocator(0, memSize)
	for _, r := range l.Regions() {
		if r.Base%areaAlign != 0 || r.Size%areaAlign != 0 {
			return fmt.Errorf("a64guest: layout: %v is not 64 KiB aligned", r)
		}
		if err := a.Reserve(r.Base, r.Size, r.Owner); err != nil {
			return fmt.Errorf("a64guest: layout: %w", err)
		}
	}
	return nil
}

// EL1Block is the guest address of vCPU i's EL1 half; UserBlock of its
// user half (X28 in test code).
func (l Layout) EL1Block(i int) uint64  { return l.VCPUBlocks + uint64(i)*VCPUBlockSize }
func (l Layout) UserBlock(i int) uint64 { return l.EL1Block(i) + el1HalfSize }
