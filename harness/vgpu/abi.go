// Package vgpu is a backend-neutral model of an Intel GVT-g virtual GPU
// with the paravirtual (PV) workload submission of the "enhanced i915
// vgpu with PV feature support" series (v2, Oct 2020): the PVINFO page in
// MMIO BAR0, capability negotiation, the shared page with its command
// transport buffer (CTB), the per-engine submission area, and, for
// comparison, the legacy execlist path (four ELSP writes, context-status
// buffer, context-switch interrupt). Engines run a small command stream
// from the submitted context on their own goroutines.
//
// The model attaches to any backend through harness/hv: it is an
// hv.Device on one MMIO region (BAR0), reaches guest memory through
// hv.GuestMemory and raises interrupts through hv.Interrupts. Every value
// the guest writes is untrusted: a malformed descriptor, ring index or
// length sets an error status the guest can read (the CTB status word, or
// the model's ERROR register) and never makes the device touch memory
// outside the structure it names, nor panic.
//
// ABI facts and their sources are in ../shared/reference/devices.md part
// (a); where the series leaves a value open (the numeric PV command
// codes, the packing of the submission area, the GGTT) the model's choice
// is stated at the constant.
package vgpu

// PVINFO page (drivers/gpu/drm/i915/i915_pvinfo.h, struct vgt_if, packed;
// offsets relative to PVInfoBase).
const (
	// PVInfoBase is VGT_PVINFO_PAGE, the page's offset in BAR0.
	PVInfoBase = 0x78000
	// PVInfoSize is VGT_PVINFO_SIZE, sizeof(struct vgt_if).
	PVInfoSize = 0x1000

	OffMagic        = 0x000 // u64 VGT_MAGIC
	OffVersionMajor = 0x008 // u16
	OffVersionMinor = 0x00a // u16
	OffVGTID        = 0x00c // u32
	OffVGTCaps      = 0x010 // u32
	OffDisplayReady = 0x804 // u32
	OffG2VNotify    = 0x818 // u32
	OffPVCaps       = 0x860 // u32, PV series
	OffSharedPage   = 0x864 // u64, PV series, unaligned in the packed struct

	// Magic is VGT_MAGIC, "vGTvGTvG".
	Magic = 0x4776544776544776
	// VersionMajor and VersionMinor are the PVINFO interface version.
	VersionMajor = 1
	VersionMinor = 0
)

// vgt_caps bits.
const (
	VGTCapsFullPPGTT     = 1 << 2
	VGTCapsHWSPEmulation = 1 << 3
	VGTCapsHugeGTT       = 1 << 4
	VGTCapsPV            = 1 << 5 // the PV series' addition
)

// pv_caps bits (enum pv_caps).
const (
	PVPPGTT      = 1 << 0
	PVGGTT       = 1 << 1
	PVSubmission = 1 << 2
	// HostPVCaps is what populate_pvinfo_page offers with patch 12/12.
	HostPVCaps = PVPPGTT | PVGGTT | PVSubmission
)

// g2v_notify values (enum vgt_g2v_type; the PV series appends the last two).
const (
	G2VPPGTTL3Create          = 2
	G2VPPGTTL3Destroy         = 3
	G2VPPGTTL4Create          = 4
	G2VPPGTTL4Destroy         = 5
	G2VExeclistContextCreate  = 6
	G2VExeclistContextDestroy = 7
	G2VSharedPageRegister     = 8
	G2VPVSendTrigger          = 9
)

// Shared page layout (v1 03/12: offsets derived from PAGE_SIZE).
const (
	SharedPageSize = 4096
	PVMajor        = 0                    // shared-page protocol version written at byte 0
	PVMinor        = 1                    // ... and at byte 2
	PVDescOff      = SharedPageSize / 256 // CTB descriptor
	PVRsvdOff      = SharedPageSize / 8
	PVSubOff       = SharedPageSize / 4 // where the guest driver puts the submission area
	PVCmdOff       = SharedPageSize / 2 // CTB ring
	CTBSize        = SharedPageSize / 2 // ring bytes the guest driver uses
)

// CTB descriptor fields: struct {u32 addr, size, head, tail, fence, status}
// packed, at PVDescOff in the shared page.
const (
	CTBDescAddr   = 0
	CTBDescSizeOf = 4 // the size field
	CTBDescHead   = 8
	CTBDescTail   = 12
	CTBDescFence  = 16
	CTBDescStatus = 20
	CTBDescLen    = 24
)

// CTB message header (DW0): len in dwords, write-fence flag, action code.
const (
	CTBLenMask          = 0x1f
	CTBWriteFenceToDesc = 1 << 8
	CTBActionShift      = 16
	// CTBMaxData is the host's u32 data[32] buffer: len-1 ≤ 30 dwords fit.
	CTBMaxData = 32
)

// PV commands (enum pv_cmds). The series' ppgtt/ggtt patches give the
// first five in order; REGISTER_CAP_GPA and SUBMIT_WORKLOAD follow them in
// this model (their values are unverified, devices.md).
const (
	PVCmdDefault        = 0
	PVCmdBindPPGTT      = 1
	PVCmdUnbindPPGTT    = 2
	PVCmdBindGGTT       = 3
	PVCmdUnbindGGTT     = 4
	PVCmdRegisterCapGPA = 5
	PVCmdSubmitWorkload = 6
)

// Transport status values, as the u32 the host writes into the
// descriptor's status word.
const (
	StatusOK      = 0
	StatusEINVAL  = 0xffffffea // -EINVAL
	StatusENODATA = 0xffffffc3 // -ENODATA: the ring was empty
)

// Per-engine submission area (struct intel_vgpu_pv_submission, v2 naming
// with `submitted` first). The model takes it packed, as the Celadon copy
// declares its variant, so engine n's area starts at pv_sub_gpa + 33n.
const (
	SubSubmitted = 0  // bool
	SubDescs     = 1  // u64 descs[2]
	SubCtxGPA    = 17 // u64 ctx_gpa[2]
	SubSize      = 33
	Ports        = 2 // EXECLIST_MAX_PORTS
)

// Execlist context descriptor bits (struct execlist_ctx_descriptor_format).
const (
	DescValid     = 1 << 0
	DescPrivilege = 1 << 8 // privilege_access: PPGTT
	// DescLRCAMask is the context's graphics address, 4 KiB aligned. The
	// model's GGTT maps graphics addresses onto guest-physical memory one to
	// one, so a legacy submission finds its context at desc & DescLRCAMask.
	DescLRCAMask = 0xfffff000
)

// Engines: id, name and MMIO base (i915 RENDER_RING_BASE etc.).
type Engine struct {
	ID   int
	Name string
	Base uint32
}

// Engines are the model's engines in engine-id order.
var Engines = []Engine{
	{0, "rcs0", 0x02000},
	{1, "bcs0", 0x22000},
	{2, "vcs0", 0x12000},
	{3, "vecs0", 0x1a000},
}

// Per-engine registers, relative to the engine base.
const (
	RegELSP      = 0x230 // RING_ELSP
	RegCSBBuf    = 0x370 // RING_CONTEXT_STATUS_BUF_LO(i) = 0x370 + 8i, HI at +4
	RegCSBPtr    = 0x3a0 // RING_CONTEXT_STATUS_PTR: write ptr 3:0, read ptr 11:8 (masked)
	CSBEntries   = 6
	CSBReadShift = 8
)

// Context status events (GEN8_CTX_STATUS_*), in a CSB entry's low dword;
// the high dword is the context ID (the descriptor's upper half).
const (
	CtxStatusIdleActive = 1 << 0
	CtxStatusActiveIdle = 1 << 3
	CtxStatusComplete   = 1 << 4
)

// Model registers: not i915's, they give the guest and tests a view of
// what the model did. They sit in the page after PVINFO.
const (
	ModelBase = 0x79000
	// RegError holds the first error code since it was last cleared; any
	// write clears it.
	RegError = ModelBase + 0x00
	// RegErrorCount counts errors (reads only).
	RegErrorCount = ModelBase + 0x04
	// RegIIR is the interrupt identity register: IIRCtxSwitch(e) and
	// IIRUser(e) bits, write 1 to clear.
	RegIIR = ModelBase + 0x08
	// RegCompleted(e) and RegFailed(e) count engine e's workloads.
	RegCompleted = ModelBase + 0x100
	RegFailed    = ModelBase + 0x104
	RegEngStride = 0x10

	// BAR0Size covers the engine registers, PVINFO and the model page.
	BAR0Size = 0x80000
)

// IIRCtxSwitch is engine e's context-switch interrupt bit in RegIIR.
func IIRCtxSwitch(e int) uint32 { return 1 << uint(e) }

// IIRUser is engine e's user interrupt (MI_USER_INTERRUPT) bit in RegIIR.
func IIRUser(e int) uint32 { return 1 << uint(8+e) }

// Error codes in RegError.
const (
	ErrNone              = iota
	ErrCTBNotRegistered  // PV_SEND_TRIGGER without a registered shared page
	ErrCTBDescriptor     // CTB addr/size/head/tail malformed
	ErrCTBMessage        // CTB message length runs past tail or is 0
	ErrCTBAction         // unknown CTB action, or a payload too short for it
	ErrSubmitNoArea      // PV submit without a registered submission area
	ErrSubmitRead        // the submission area is not readable guest memory
	ErrSubmitInvalid     // desc[0] invalid, or a valid desc without privilege
	ErrSubmitWriteBack   // the submitted byte could not be cleared
	ErrSharedPageInvalid // SHARED_PAGE_REGISTER with an invalid GPA
	ErrEngineFault       // a command stream faulted (bad command or address)
	ErrQueueFull         // an engine's queue was full: the workload failed
	ErrUnknownG2V        // an unknown g2v_notify value
)

// Command streamer instructions the engines execute (MI_INSTR(op, len)).
const (
	MINoop           = 0
	MIUserInterrupt  = 0x02 << 23
	MIBatchBufferEnd = 0x0a << 23
	MIStoreDwordImm  = 0x20<<23 | 2 // gen8: addr lo, addr hi, value
	MIOpcodeShift    = 23
	MIStoreDwordOp   = 0x20
	MIStoreDwordGGTT = 1 << 22
	MIStoreDwordLen  = 0xff
	ContextMaxDwords = 4096 / 4 // a context's command stream stays in its page
)
