package vgpu

import (
	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	dev "github.com/kvmspec/kvmspec/harness/vgpu"
)

// Registers the guest driver keeps for itself while it runs.
const (
	regBAR    = asm.RBX // BAR0, mapped at its GPA
	regShared = asm.R12 // the shared page
	regSub    = asm.R13 // the submission area (shared page + PV_SUB_OFF)
)

// spinLimit bounds every guest wait: the device answers MMIO writes
// synchronously and engines finish in microseconds, so reaching it means
// the device never answered (the guest then fails with the wait's name).
const spinLimit = 1 << 24

// fenceSlot is where the driver keeps its next fence: the shared page's
// reserved area is the guest's own.
const fenceSlot = dev.PVRsvdOff

// errNoSpace is the guest's -ENOSPC for a message that does not fit.
const errNoSpace = -28

// driver emits the guest side of the PV protocol, as the series' guest
// driver does it, into a Program: detection, negotiation, registration,
// CTB send with a fence wait, PV submission with the `submitted` wait and
// the legacy four-write ELSP path.
type driver struct {
	p      *guest.Program
	bar    uint64
	shared uint64
}

func newDriver(p *guest.Program, bar, shared uint64) *driver {
	d := &driver{p: p, bar: bar, shared: shared}
	p.Mov(regBAR, asm.Imm(int64(bar)))
	p.Mov(regShared, asm.Imm(int64(shared)))
	p.Lea(regSub, asm.Q(regShared, dev.PVSubOff))
	return d
}

// pv is the BAR0 operand of a PVINFO field.
func pv(off int32, size int) asm.Mem {
	return asm.Mem{Base: regBAR, Disp: dev.PVInfoBase + off, Size: size}
}

// reg is a BAR0 register operand.
func reg(off uint32) asm.Mem { return asm.D(regBAR, int32(off)) }

// ctb is a CTB descriptor field in the shared page.
func ctb(field int32) asm.Mem { return asm.D(regShared, dev.PVDescOff+field) }

// detect is intel_vgpu_detect: magic, version_major >= 1, and VGT_CAPS_PV.
func (d *driver) detect() {
	p := d.p
	p.Mov(asm.RAX, pv(dev.OffMagic, 8))
	p.MovAbs(asm.RDX, dev.Magic)
	p.AssertEq(asm.RAX, asm.RDX, "PVINFO magic")
	p.Movzx(asm.EAX, pv(dev.OffVersionMajor, 2))
	p.Cmp(asm.EAX, asm.Imm(1))
	p.Assert(asm.CondAE, "version_major >= 1", asm.RAX)
	p.Mov(asm.EAX, pv(dev.OffVGTCaps, 4))
	p.Test(asm.EAX, asm.Imm(dev.VGTCapsPV))
	p.Assert(asm.CondNZ, "VGT_CAPS_PV offered", asm.RAX)
}

// negotiate writes back guestCaps & pv_caps and leaves the result in EAX.
func (d *driver) negotiate(guestCaps uint32) {
	p := d.p
	p.Mov(asm.EAX, pv(dev.OffPVCaps, 4))
	p.And(asm.EAX, asm.Imm(int64(guestCaps)))
	p.Mov(pv(dev.OffPVCaps, 4), asm.EAX)
	p.Mov(asm.ECX, pv(dev.OffPVCaps, 4))
	p.AssertEq(asm.ECX, asm.EAX, "pv_caps after the guest's writeback")
}

// register writes shared_page_gpa with one 8-byte write, reads it back
// (the guest gives up PV on a mismatch), notifies SHARED_PAGE_REGISTER,
// checks the version words and initialises the CTB and the fence.
func (d *driver) register() {
	p := d.p
	p.Mov(pv(dev.OffSharedPage, 8), regShared)
	p.Mov(asm.RAX, pv(dev.OffSharedPage, 8))
	p.AssertEq(asm.RAX, regShared, "shared_page_gpa read back")
	p.Mov(pv(dev.OffG2VNotify, 4), asm.Imm(dev.G2VSharedPageRegister))
	p.Movzx(asm.EAX, asm.W(regShared, 0))
	p.AssertEq(asm.EAX, asm.Imm(dev.PVMajor), "shared page ver_major")
	p.Movzx(asm.EAX, asm.W(regShared, 2))
	p.AssertEq(asm.EAX, asm.Imm(dev.PVMinor), "shared page ver_minor")
	p.Mov(ctb(dev.CTBDescAddr), asm.Imm(dev.PVCmdOff))
	p.Mov(ctb(dev.CTBDescSizeOf), asm.Imm(dev.CTBSize))
	for _, f := range []int32{dev.CTBDescHead, dev.CTBDescTail, dev.CTBDescFence, dev.CTBDescStatus} {
		p.Mov(ctb(f), asm.Imm(0))
	}
	p.Mov(asm.D(regShared, fenceSlot), asm.Imm(0))
}

// send writes one CTB message (action, then data: 32-bit immediates or
// registers other than RAX, RCX, RDX and RSI), triggers the host, waits
// for the fence and leaves the status in EAX.
func (d *driver) send(action uint32, data ...asm.Operand) {
	d.trySend(nil, action, data...)
}

// trySend is send that jumps to noSpace, with -ENOSPC in EAX and nothing
// written, when the message does not fit (nil: fail the guest).
func (d *driver) trySend(noSpace *asm.Label, action uint32, data ...asm.Operand) {
	p := d.p
	p.Mov(asm.R10D, asm.Imm(int64(len(data))))
	d.begin(action, noSpace)
	for _, v := range data {
		d.put(v)
	}
	d.trigger()
}

// sendTable sends count messages of action from a table in guest memory
// at table: per message a dword with the number of data dwords, then the
// data. Each status must be 0. The loop keeps the program short whatever
// the messages are. It uses RDI, R8, R9, R10 and R11.
func (d *driver) sendTable(action uint32, table uint64, count int) {
	p := d.p
	p.Mov(asm.RDI, asm.Imm(int64(table)))
	p.Mov(asm.R11D, asm.Imm(int64(count)))
	next := p.Here()
	p.Mov(asm.R10D, asm.D(asm.RDI, 0))
	d.begin(action, nil)
	p.Lea(asm.R8, asm.Q(asm.RDI, 4))
	p.Mov(asm.R9D, asm.R10D)
	more, done := p.NewLabel(), p.NewLabel()
	p.Bind(more)
	p.Test(asm.R9D, asm.R9D)
	p.Jcc(asm.CondZ, done)
	p.Mov(asm.EAX, asm.D(asm.R8, 0))
	d.put(asm.EAX)
	p.Add(asm.R8, asm.Imm(4))
	p.Dec(asm.R9D)
	p.Jmp(more)
	p.Bind(done)
	d.trigger()
	p.Test(asm.EAX, asm.EAX)
	p.Assert(asm.CondZ, "CTB status (status, messages left)", asm.RAX, asm.R11)
	p.Lea(asm.RDI, asm.Q(asm.RDI, 4).Idx(asm.R10, 4))
	p.Dec(asm.R11D)
	p.Jcc(asm.CondNZ, next)
}

// begin starts a message of R10D data dwords: the guest-side space check
// (-ENOSPC when used+len+1 >= size/4), the next fence in ESI, and the
// header and fence dwords; ECX is the tail as the message is written.
// A refused message jumps to noSpace with -ENOSPC in EAX (nil: the guest
// fails).
func (d *driver) begin(action uint32, noSpace *asm.Label) {
	p := d.p
	p.Mov(asm.ECX, ctb(dev.CTBDescTail))
	p.Mov(asm.EAX, asm.ECX)
	p.Sub(asm.EAX, ctb(dev.CTBDescHead))
	p.And(asm.EAX, asm.Imm(dev.CTBSize-1))
	p.Shr(asm.EAX, asm.Imm(2))
	p.Add(asm.EAX, asm.R10D)
	p.Add(asm.EAX, asm.Imm(2)) // len+1 = data+2
	p.Cmp(asm.EAX, asm.Imm(dev.CTBSize/4))
	if noSpace != nil {
		fits := p.NewLabel()
		p.Jcc(asm.CondB, fits)
		p.Mov(asm.EAX, asm.Imm(errNoSpace))
		p.Jmp(noSpace)
		p.Bind(fits)
	} else {
		p.Assert(asm.CondB, "CTB -ENOSPC", asm.RAX)
	}
	p.Mov(asm.ESI, asm.D(regShared, fenceSlot))
	p.Inc(asm.ESI)
	p.Mov(asm.D(regShared, fenceSlot), asm.ESI)
	p.Lea(asm.EAX, asm.D(asm.R10, 1))
	p.Or(asm.EAX, asm.Imm(int64(action<<dev.CTBActionShift|dev.CTBWriteFenceToDesc)))
	d.put(asm.EAX)
	d.put(asm.ESI)
}

// put stores v at the ring's tail (ECX) and advances it modulo the size.
func (d *driver) put(v asm.Operand) {
	p := d.p
	p.Mov(asm.D(regShared, dev.PVCmdOff).Idx(asm.RCX, 1), v)
	p.Add(asm.ECX, asm.Imm(4))
	p.And(asm.ECX, asm.Imm(dev.CTBSize-1))
}

// trigger publishes the tail, notifies PV_SEND_TRIGGER, waits for the
// fence in ESI and leaves the status in EAX.
func (d *driver) trigger() {
	p := d.p
	p.Mov(ctb(dev.CTBDescTail), asm.ECX)
	p.Mov(pv(dev.OffG2VNotify, 4), asm.Imm(dev.G2VPVSendTrigger))
	d.waitFor(ctb(dev.CTBDescFence), asm.ESI, "CT: fence failed")
	p.Mov(asm.EAX, ctb(dev.CTBDescStatus))
}

// waitFor spins until m == v (a register or immediate), failing after
// spinLimit rounds. It uses EDX.
func (d *driver) waitFor(m asm.Mem, v asm.Operand, what string) {
	p := d.p
	ok := p.NewLabel()
	p.Mov(asm.EDX, asm.Imm(spinLimit))
	loop := p.Here()
	p.Cmp(m, v)
	p.Jcc(asm.CondE, ok)
	p.Pause()
	p.Dec(asm.EDX)
	p.Jcc(asm.CondNZ, loop)
	p.Fail(what + ": timed out")
	p.Bind(ok)
}

// registerSubmission sends REGISTER_CAP_GPA for PV_SUBMISSION with the
// area at regSub, and checks the status.
func (d *driver) registerSubmission() {
	p := d.p
	p.Mov(asm.R8, regSub)
	p.Mov(asm.R9, regSub)
	p.Shr(asm.R9, asm.Imm(32))
	d.send(dev.PVCmdRegisterCapGPA, asm.Imm(dev.PVSubmission), asm.R8D, asm.R9D)
	p.AssertEq(asm.EAX, asm.Imm(0), "REGISTER_CAP_GPA status")
}

// area is engine e's submission area field at off.
func area(e int, off int32, size int) asm.Mem {
	return asm.Mem{Base: regSub, Disp: int32(e)*dev.SubSize + off, Size: size}
}

// pvSubmit fills engine e's area with desc0 (in R8), no second port and
// ctx_gpa (in R9), sets submitted, writes PV_CMD_SUBMIT_WORKLOAD to the
// engine's ELSP and, when wait is set, spins until `submitted` is clear.
func (d *driver) pvSubmit(e int, wait bool) {
	p := d.p
	p.Mov(area(e, dev.SubSubmitted, 1), asm.Imm(1))
	p.Mov(area(e, dev.SubDescs, 8), asm.R8)
	p.Mov(area(e, dev.SubDescs+8, 8), asm.Imm(0))
	p.Mov(area(e, dev.SubCtxGPA, 8), asm.R9)
	p.Mov(area(e, dev.SubCtxGPA+8, 8), asm.Imm(0))
	p.Mov(reg(dev.Engines[e].Base+dev.RegELSP), asm.Imm(dev.PVCmdSubmitWorkload))
	if wait {
		d.waitFor(area(e, dev.SubSubmitted, 1), asm.Imm(0), "PV workload submission")
	}
}

// elsp submits desc0 (in R8) the legacy way: port 1 (empty) then port 0,
// upper dword first.
func (d *driver) elsp(e int) {
	p := d.p
	r := reg(dev.Engines[e].Base + dev.RegELSP)
	p.Mov(r, asm.Imm(0))
	p.Mov(r, asm.Imm(0))
	p.Mov(asm.RAX, asm.R8)
	p.Shr(asm.RAX, asm.Imm(32))
	p.Mov(r, asm.EAX)
	p.Mov(r, asm.R8D)
}

// setStream points the context at ctx (in R9) at storing the value in ESI:
// the driver rewrites the value dword of a stream the host built.
func (d *driver) setStream() {
	d.p.Mov(asm.D(asm.R9, 12), asm.ESI)
}
