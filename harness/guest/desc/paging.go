package desc

// Page-table entry bits of x86-64 4-level paging (SDM vol. 3A, 4.5),
// the one definition the guest's page-table builder and the emulator's
// page walk both use.
const (
	PTEPresent  = 1 << 0
	PTEWrite    = 1 << 1
	PTEUser     = 1 << 2
	PTEPWT      = 1 << 3
	PTEPCD      = 1 << 4
	PTEAccessed = 1 << 5
	PTEDirty    = 1 << 6
	PTEHuge     = 1 << 7 // PS: a 2 MiB or 1 GiB leaf
	PTEGlobal   = 1 << 8
	PTENX       = 1 << 63
)

// Page-fault error code bits (SDM vol. 3A, 4.7).
const (
	PFPresent  = 1 << 0 // the page was present (a protection violation)
	PFWrite    = 1 << 1
	PFUser     = 1 << 2
	PFReserved = 1 << 3 // a reserved bit was set in a paging entry
	PFFetch    = 1 << 4 // an instruction fetch
)
