package guest

// The standard guest's physical layout. Everything below MemSize is slot 0
// and identity-mapped (guest virtual == guest physical), page 0 excepted so
// that a null dereference faults.
const (
	GDTBase     = 0x1000
	IDTBase     = 0x2000
	RuntimeBase = 0x10000 // IDT stubs and the common exception handler (CPL0)
	RuntimeSize = 0xf0000

	// Each vCPU owns a 64 KiB block: the exception handler finds its block
	// from RSP (the IST stack lives inside it), so a test that clobbers
	// every register still gets its exceptions reported.
	VCPUBlockBase = 0x100000
	VCPUBlockSize = 0x10000
	MaxVCPUs      = 64

	blockTSS       = 0x0000 // TSS with a full I/O permission bitmap (3 pages)
	blockUcall     = 0x3000 // ucall page (user accessible)
	blockISTBottom = 0x4000
	blockISTTop    = 0x8000 // IST1 stack top: every exception runs here
	blockUserStack = 0x10000

	PageTableBase = 0x500000 // page-table page pool
	PageTableSize = 0x200000
	CodeBase      = 0x700000 // test code
	CodeSize      = 0x200000
	DataBase      = 0x900000 // test data, allocated with Guest.Alloc

	// DefaultMemSize is the size of slot 0 unless Config.MemSize says otherwise.
	DefaultMemSize = 16 << 20

	// UcallPort is the I/O port of the PIO ucall.
	UcallPort = 0xf5
	// UcallMMIOGPA is the unbacked guest-physical page of the MMIO ucall;
	// it is within 2 GiB of the ucall pages so code can address it
	// relative to R15.
	UcallMMIOGPA = 0x7ff00000

	tssSize  = 0x68 + 8192 + 1 // header, I/O bitmap, the terminating 0xff byte
	tssLimit = tssSize - 1
)

// Selectors of the standard GDT.
const (
	SelKernelCode = 0x08
	SelKernelData = 0x10
	SelUserCode   = 0x18 | 3
	SelUserData   = 0x20 | 3
	selTSS0       = 0x28 // 16-byte TSS descriptors, one per vCPU
)

// Ucall page layout (offsets from R15).
const (
	ucCmd     = 0x00
	ucSite    = 0x08
	ucNArgs   = 0x10
	ucArgs    = 0x18 // MaxUcallArgs quadwords
	ucExcFix  = 0x100
	ucExcVec  = 0x108
	ucExcErr  = 0x110
	ucExcRIP  = 0x118
	ucExcCR2  = 0x120
	ucExcCnt  = 0x128
	ucExcSave = 0x140 // scratch for the handler's saved registers
	ucUser    = 0x800 // free for tests: Guest.UcallPage(i)[ucUser:]

	// MaxUcallArgs is how many arguments a ucall carries.
	MaxUcallArgs = 8
)

// UserScratch is the offset from R15 of a per-vCPU scratch area tests may use.
const UserScratch = ucUser

func vcpuBlock(i int) uint64 { return VCPUBlockBase + uint64(i)*VCPUBlockSize }
