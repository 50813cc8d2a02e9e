package lightnvm

import (
	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	nvm "github.com/kvmspec/kvmspec/harness/lightnvm"
)

// The guest driver. The host lays out, in guest memory, one queue block
// per queue pair and a chain of work blocks per vCPU, each holding
// prebuilt 64-byte submission entries; the guest does everything a driver
// does at run time: it enables the controller through its registers,
// copies entries into its submission queue, rings doorbells, finds
// completions by their phase bit (polling) or after an MSI (interrupt
// queues), counts each command id it sees, checks status, and rings the
// completion doorbells. vCPU 0 runs the admin work (queue creation,
// identify, geometry, report chunk) before the other vCPUs start theirs;
// each vCPU then uses only its own queue pair.

// Control block (one, at ctl): shared by every vCPU.
const (
	ctlBar     = 0x00 // register block GPA
	ctlAQA     = 0x08
	ctlASQ     = 0x10
	ctlACQ     = 0x18
	ctlAdminCB = 0x20 // work block of the admin queue
	ctlGeoBuf  = 0x28 // where the geometry command's answer lands
	ctlVersion = 0x30 // expected first identity byte (1 or 2)
	ctlReady   = 0x38 // vCPU 0 → others: the I/O queues exist
	ctlCBs     = 0x40 // per vCPU: its first work block (0: none)
)

// Queue block: one queue pair as the guest driver tracks it.
const (
	qbBar     = 0x00
	qbSQ      = 0x08
	qbCQ      = 0x10
	qbQSize   = 0x18
	qbQID     = 0x20
	qbVector  = 0x28 // non-zero: the CQ interrupts; wait for MSIs
	qbMSIAddr = 0x30
	qbMSIData = 0x38
	qbTail    = 0x40 // driver state from here on
	qbHead    = 0x48
	qbPhase   = 0x50
	qbIRQSeen = 0x58 // interrupt count last seen (32-bit)
	qbSize    = 0x80
)

// Work block: a run of prebuilt commands on one queue.
const (
	cbQueue     = 0x00
	cbCmds      = 0x08 // n × 64-byte entries; entry i carries CID i
	cbN         = 0x10
	cbQD        = 0x18 // commands in flight at most
	cbSeen      = 0x20 // n bytes: completions seen per CID
	cbStop      = 0x28 // 0: run all n; k > 0: return after k completions; stopSubmitOnly: return once all are submitted
	cbNext      = 0x30 // next work block of this vCPU (0: end)
	cbAction    = 0x38 // actionRun, or actionReset: CC.EN = 0, then SYNC
	cbDone      = 0x40 // guest → host
	cbErrors    = 0x48
	cbLastBad   = 0x50
	cbSubmitted = 0x58
	cbSize      = 0x80
)

// Work block actions and the stop value that returns with every command
// still in flight.
const (
	actionRun      = 0
	actionReset    = 1
	stopSubmitOnly = -1
)

// SYNC stages.
const (
	stageAdmin = 1 // vCPU 0: admin work done (arg: errors)
	stageReset = 2 // a vCPU disabled the controller (arg: vCPU)
	stageIO    = 3 // a vCPU finished its work chain (arg: vCPU)
)

// irqVector is the vector every interrupt queue's MSI carries; each vCPU
// counts it in its own ucall page.
const irqVector = 0x50

// ccEnable is the CC value the driver writes: enable, 64-byte SQ and
// 16-byte CQ entries.
const ccEnable = nvm.CCEnable | 6<<16 | 4<<20

// driverProgram emits the driver for every vCPU (RDI holds its index).
func driverProgram(g *guest.Guest, ctl uint64) *guest.Program {
	p := g.Program()
	runQueue := p.NewLabel()
	waitReady, io, chain, next, done := p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel()
	c := func(off int32) asm.Mem { return asm.Abs(8, int32(ctl)+off) }

	p.Mov(asm.RBP, asm.RDI)
	p.Cmp(asm.RBP, asm.Imm(0))
	p.Jcc(asm.CondNE, waitReady)

	// vCPU 0: mask the admin queue's vector (it polls), program the admin
	// queues, enable, wait for CSTS.RDY.
	p.Mov(asm.R8, c(ctlBar))
	p.Mov(asm.D(asm.R8, nvm.RegMSIXTable+12), asm.Imm(1))
	p.Mov(asm.RAX, c(ctlAQA))
	p.Mov(asm.D(asm.R8, nvm.RegAQA), asm.EAX)
	p.Mov(asm.RAX, c(ctlASQ))
	p.Mov(asm.Q(asm.R8, nvm.RegASQ), asm.RAX)
	p.Mov(asm.RAX, c(ctlACQ))
	p.Mov(asm.Q(asm.R8, nvm.RegACQ), asm.RAX)
	p.Mov(asm.D(asm.R8, nvm.RegCC), asm.Imm(ccEnable))
	rdy := p.Here()
	p.Mov(asm.EAX, asm.D(asm.R8, nvm.RegCSTS))
	ready := p.NewLabel()
	p.Test(asm.EAX, asm.Imm(nvm.CSTSReady))
	p.Jcc(asm.CondNE, ready)
	p.Pause()
	p.Jmp(rdy)
	p.Bind(ready)
	p.Mov(asm.RBX, c(ctlAdminCB))
	p.Call(runQueue)
	p.Mov(asm.RAX, asm.Q(asm.RBX, cbLastBad))
	p.Cmp(asm.Q(asm.RBX, cbErrors), asm.Imm(0))
	p.Assert(asm.CondE, "an admin command failed (last bad status)", asm.RAX)
	p.Mov(asm.RAX, c(ctlGeoBuf))
	p.Movzx(asm.EAX, asm.B(asm.RAX, 0))
	p.Mov(asm.RCX, c(ctlVersion))
	p.Cmp(asm.RAX, asm.RCX)
	p.Assert(asm.CondE, "geometry identity: first byte is not the device's version", asm.RAX, asm.RCX)
	p.Mov(c(ctlReady), asm.Imm(1))
	p.Sync(stageAdmin)
	p.Jmp(io)

	p.Bind(waitReady)
	p.Cmp(c(ctlReady), asm.Imm(1))
	p.Jcc(asm.CondE, io)
	p.Pause()
	p.Jmp(waitReady)

	p.Bind(io)
	p.Mov(asm.RAX, asm.RBP)
	p.Shl(asm.RAX, asm.Imm(3))
	p.Add(asm.RAX, asm.Imm(int64(ctl)+ctlCBs))
	p.Mov(asm.RBX, asm.Q(asm.RAX, 0))
	p.Test(asm.RBX, asm.RBX)
	p.Jcc(asm.CondE, done)
	// An interrupt queue: point its MSI-X entry (entry qid) at this
	// vCPU, enable the APIC and interrupts.
	p.Mov(asm.R14, asm.Q(asm.RBX, cbQueue))
	p.Cmp(asm.Q(asm.R14, qbVector), asm.Imm(0))
	p.Jcc(asm.CondE, chain)
	p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
	p.Mov(asm.RAX, asm.Q(asm.R14, qbQID))
	p.Shl(asm.RAX, asm.Imm(4))
	p.Add(asm.RAX, asm.Q(asm.R14, qbBar))
	p.Mov(asm.RCX, asm.Q(asm.R14, qbMSIAddr))
	p.Mov(asm.D(asm.RAX, nvm.RegMSIXTable), asm.ECX)
	p.Mov(asm.D(asm.RAX, nvm.RegMSIXTable+4), asm.Imm(0))
	p.Mov(asm.RCX, asm.Q(asm.R14, qbMSIData))
	p.Mov(asm.D(asm.RAX, nvm.RegMSIXTable+8), asm.ECX)
	p.Mov(asm.D(asm.RAX, nvm.RegMSIXTable+12), asm.Imm(0))
	p.EnableInterrupts()

	p.Bind(chain)
	run := p.NewLabel()
	p.Cmp(asm.Q(asm.RBX, cbAction), asm.Imm(actionReset))
	p.Jcc(asm.CondNE, run)
	p.Mov(asm.R14, asm.Q(asm.RBX, cbQueue))
	p.Mov(asm.R8, asm.Q(asm.R14, qbBar))
	p.Mov(asm.D(asm.R8, nvm.RegCC), asm.Imm(0))
	p.Sync(stageReset, asm.RBP)
	p.Jmp(next)
	p.Bind(run)
	p.Call(runQueue)
	p.Bind(next)
	p.Mov(asm.RBX, asm.Q(asm.RBX, cbNext))
	p.Test(asm.RBX, asm.RBX)
	p.Jcc(asm.CondNE, chain)
	p.Bind(done)
	p.Sync(stageIO, asm.RBP)
	p.Done()

	emitRunQueue(p, runQueue)
	return p
}

// emitRunQueue emits the queue loop: RBX is the work block. It keeps
// R8 = registers, R9 = SQ, R10 = CQ, R11 = in flight, R12 = submitted,
// R13 = completed, R14 = queue block, and rings the SQ doorbell once per
// batch and the CQ doorbell once per completion.
func emitRunQueue(p *guest.Program, l *asm.Label) {
	p.Bind(l)
	p.Mov(asm.R14, asm.Q(asm.RBX, cbQueue))
	p.Mov(asm.R8, asm.Q(asm.R14, qbBar))
	p.Mov(asm.R9, asm.Q(asm.R14, qbSQ))
	p.Mov(asm.R10, asm.Q(asm.R14, qbCQ))
	p.Xor(asm.R11, asm.R11)
	p.Xor(asm.R12, asm.R12)
	p.Xor(asm.R13, asm.R13)
	out := p.NewLabel()

	top := p.Here()
	ring, reap := p.NewLabel(), p.NewLabel()
	p.Xor(asm.EDX, asm.EDX) // anything submitted this round
	sub := p.Here()
	p.Cmp(asm.R12, asm.Q(asm.RBX, cbN))
	p.Jcc(asm.CondAE, ring)
	p.Cmp(asm.R11, asm.Q(asm.RBX, cbQD))
	p.Jcc(asm.CondAE, ring)
	p.Mov(asm.RSI, asm.R12)
	p.Shl(asm.RSI, asm.Imm(6))
	p.Add(asm.RSI, asm.Q(asm.RBX, cbCmds))
	p.Mov(asm.RDI, asm.Q(asm.R14, qbTail))
	p.Shl(asm.RDI, asm.Imm(6))
	p.Add(asm.RDI, asm.R9)
	p.Mov(asm.ECX, asm.Imm(8))
	p.RepMovsq()
	p.Inc(asm.R12)
	p.Inc(asm.R11)
	p.Mov(asm.EDX, asm.Imm(1))
	wrapT := p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.R14, qbTail))
	p.Inc(asm.RAX)
	p.Cmp(asm.RAX, asm.Q(asm.R14, qbQSize))
	p.Jcc(asm.CondB, wrapT)
	p.Xor(asm.EAX, asm.EAX)
	p.Bind(wrapT)
	p.Mov(asm.Q(asm.R14, qbTail), asm.RAX)
	p.Jmp(sub)

	p.Bind(ring)
	p.Test(asm.EDX, asm.EDX)
	p.Jcc(asm.CondE, reap)
	p.Mov(asm.RAX, asm.Q(asm.R14, qbQID))
	p.Shl(asm.RAX, asm.Imm(3))
	p.Add(asm.RAX, asm.R8)
	p.Mov(asm.RCX, asm.Q(asm.R14, qbTail))
	p.Mov(asm.D(asm.RAX, nvm.RegDoorbell), asm.ECX)

	p.Bind(reap)
	p.Cmp(asm.R13, asm.Q(asm.RBX, cbN))
	p.Jcc(asm.CondAE, out)
	noStop := p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.RBX, cbStop))
	p.Test(asm.RAX, asm.RAX)
	p.Jcc(asm.CondE, noStop)
	p.Jcc(asm.CondS, out) // stopSubmitOnly: leave them in flight
	p.Cmp(asm.R13, asm.RAX)
	p.Jcc(asm.CondAE, out)
	p.Bind(noStop)

	// The entry at head is new when its phase bit is the expected one.
	got := p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.R14, qbHead))
	p.Shl(asm.RAX, asm.Imm(4))
	p.Add(asm.RAX, asm.R10)
	p.Mov(asm.ECX, asm.D(asm.RAX, 12))
	p.Mov(asm.EDX, asm.ECX)
	p.Shr(asm.EDX, asm.Imm(16))
	p.And(asm.EDX, asm.Imm(1))
	p.Cmp(asm.RDX, asm.Q(asm.R14, qbPhase))
	p.Jcc(asm.CondE, got)
	irqWait := p.NewLabel()
	p.Cmp(asm.Q(asm.R14, qbVector), asm.Imm(0))
	p.Jcc(asm.CondNE, irqWait)
	p.Pause()
	p.Jmp(top)
	// Interrupt queue: wait until this vCPU's count of the vector moves,
	// then look again. The count is read before the queue is re-checked,
	// so an MSI that came while draining is never waited for twice.
	p.Bind(irqWait)
	moved := p.NewLabel()
	p.Mov(asm.EAX, p.InterruptCount(irqVector))
	p.Cmp(asm.D(asm.R14, qbIRQSeen), asm.EAX)
	p.Jcc(asm.CondNE, moved)
	p.Pause()
	p.Jmp(irqWait)
	p.Bind(moved)
	p.Mov(asm.D(asm.R14, qbIRQSeen), asm.EAX)
	p.Jmp(top)

	p.Bind(got)
	okStatus := p.NewLabel()
	p.Mov(asm.EAX, asm.ECX)
	p.Shr(asm.EAX, asm.Imm(17))
	p.Jcc(asm.CondE, okStatus)
	p.Inc(asm.Q(asm.RBX, cbErrors))
	p.Mov(asm.Q(asm.RBX, cbLastBad), asm.RAX)
	p.Bind(okStatus)
	p.Movzx(asm.EAX, asm.CX)
	p.Mov(asm.RSI, asm.Q(asm.RBX, cbSeen))
	p.Inc(asm.B(asm.RSI, 0).Idx(asm.RAX, 1))
	p.Inc(asm.R13)
	p.Dec(asm.R11)
	wrapH := p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.R14, qbHead))
	p.Inc(asm.RAX)
	p.Cmp(asm.RAX, asm.Q(asm.R14, qbQSize))
	p.Jcc(asm.CondB, wrapH)
	p.Xor(asm.EAX, asm.EAX)
	p.Xor(asm.Q(asm.R14, qbPhase), asm.Imm(1))
	p.Bind(wrapH)
	p.Mov(asm.Q(asm.R14, qbHead), asm.RAX)
	p.Mov(asm.RCX, asm.Q(asm.R14, qbQID))
	p.Shl(asm.RCX, asm.Imm(3))
	p.Add(asm.RCX, asm.R8)
	p.Mov(asm.D(asm.RCX, nvm.RegDoorbell+4), asm.EAX)
	p.Jmp(top)

	p.Bind(out)
	p.Mov(asm.Q(asm.RBX, cbDone), asm.R13)
	p.Mov(asm.Q(asm.RBX, cbSubmitted), asm.R12)
	p.Ret()
}
