package a64guest

// The guest side of a GICv3 (Arm IHI 0069): the host creates the VM's
// vGICv3 with its distributor and redistributor frames where it wants
// them, and guest code brings it up as a kernel does on a GICv3 machine —
// the CPU interface through the ICC_* system registers (SRE, PMR,
// IGRPEN1), group 1 and affinity routing in the distributor, this vCPU's
// redistributor found by affinity and woken — and enables single
// interrupts: PPIs in the redistributor, SPIs in the distributor routed to
// this vCPU. An IRQ handler on the IRQ vectors acknowledges through
// ICC_IAR1_EL1, logs the INTID in the vCPU's user block, runs the spec's
// body and ends the interrupt through ICC_EOIR1_EL1; the host reads the
// log (GICv3.IRQs), test code waits on its count.

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Frame sizes and INTID ranges.
const (
	GICDistSize   = 0x10000 // the distributor's frame
	GICRedistSize = 0x20000 // one redistributor: RD_base and SGI_base frames
	FirstPPI      = 16
	FirstSPI      = 32
	// SpuriousINTID is what ICC_IAR1_EL1 reads when nothing is pending.
	SpuriousINTID = 1023
	// GICPriority is the priority the helper gives the interrupts it
	// enables; ICC_PMR_EL1 lets every priority through.
	GICPriority = 0xa0
)

// Distributor registers and bits (offsets from its base).
const (
	gicdCTLR       = 0x0000
	gicdIGROUPR    = 0x0080
	gicdISENABLER  = 0x0100
	gicdICENABLER  = 0x0180
	gicdIPRIORITYR = 0x0400
	gicdICFGR      = 0x0c00
	gicdIROUTER    = 0x6000
	gicdCTLRGrp1   = 1 << 1 // EnableGrp1 (one security state: DS=1)
	gicdCTLRARE    = 1 << 4 // affinity routing
	gicdCTLRRWP    = 31     // bit: register write pending
)

// Redistributor registers and bits (offsets from its RD_base).
const (
	gicrTYPER          = 0x0008
	gicrWAKER          = 0x0014
	gicrSGIBase        = 0x10000
	gicrIGROUPR0       = gicrSGIBase + 0x0080
	gicrISENABLER0     = gicrSGIBase + 0x0100
	gicrIPRIORITYR     = gicrSGIBase + 0x0400
	gicrTYPERLast      = 4 // bit: the last redistributor of the region
	gicrWAKERSleep     = 1 << 1
	gicrWAKERAsleepBit = 2 // bit: ChildrenAsleep
)

// The GIC CPU interface's system registers (Arm IHI 0069 12.2).
var (
	ICCPMREL1     = a64.SysReg{Name: "ICC_PMR_EL1", Op0: 3, Op1: 0, CRn: 4, CRm: 6, Op2: 0}
	ICCIAR1EL1    = a64.SysReg{Name: "ICC_IAR1_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 12, Op2: 0}
	ICCEOIR1EL1   = a64.SysReg{Name: "ICC_EOIR1_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 12, Op2: 1}
	ICCBPR1EL1    = a64.SysReg{Name: "ICC_BPR1_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 12, Op2: 3}
	ICCSREEL1     = a64.SysReg{Name: "ICC_SRE_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 12, Op2: 5}
	ICCIGRPEN1EL1 = a64.SysReg{Name: "ICC_IGRPEN1_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 12, Op2: 7}
	ICCRPREL1     = a64.SysReg{Name: "ICC_RPR_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 11, Op2: 3}
)

var mpidrEL1, _ = a64.Sys("MPIDR_EL1")

// The IRQ log in each vCPU's user block (between HandlerCounts and
// UserScratch): the redistributor Init found, how many interrupts the
// handler acknowledged and how many reads were spurious, then the first
// IRQLogEntries acknowledged INTIDs in order.
const (
	IRQLog        = 0x400
	IRQRedist     = IRQLog + 0x00
	IRQCount      = IRQLog + 0x08
	IRQSpurious   = IRQLog + 0x10
	IRQEntries    = IRQLog + 0x18
	IRQLogEntries = (UserScratch - IRQEntries) / 8
)

// GICv3 is the guest's GICv3 as the host created it.
type GICv3 struct {
	Dist, Redist uint64 // guest-physical (and, identity-mapped, virtual) bases
	g            *Guest
}

// IRQBody is spec code run inside the IRQ handler after the acknowledge
// and before the end of the interrupt, with the INTID in X19. It may use
// X0-X15 (the runtime restores every register) and Sync; it must keep X19.
type IRQBody func(p *Program)

// NewGICv3 creates the VM's vGICv3 (hv.ARM64VM.CreateVGICv3: after every
// vCPU, before a PMU's INIT) with the distributor at dist and the
// redistributors of the vCPUs from redist on, nrIRQs interrupt IDs (0:
// the hypervisor's default), maps both identity at stage 1 as device
// memory, and installs the IRQ handler on the IRQ vectors of test code at
// EL1 and EL0 (body may be nil).
func (g *Guest) NewGICv3(dist, redist uint64, nrIRQs int, body IRQBody) (*GICv3, error) {
	vm, ok := g.VM.(hv.ARM64VM)
	if !ok {
		return nil, fmt.Errorf("%w (%s VMs have no vGIC)", ErrNotARM64, g.HV.Name())
	}
	if err := vm.CreateVGICv3(dist, redist, nrIRQs); err != nil {
		return nil, err
	}
	if err := g.MapIdentity(dist, GICDistSize, Device); err != nil {
		return nil, fmt.Errorf("a64guest: GICv3 distributor: %w", err)
	}
	if err := g.MapIdentity(redist, GICRedistSize*uint64(len(g.VCPUs)), Device); err != nil {
		return nil, fmt.Errorf("a64guest: GICv3 redistributors: %w", err)
	}
	for _, v := range []int{VecIRQEL1t, VecIRQLower64} {
		if err := g.Handle(Handler{Vector: v, Body: func(p *Program, _ Frame) { irqHandler(p, body) }}); err != nil {
			return nil, err
		}
	}
	return &GICv3{Dist: dist, Redist: redist, g: g}, nil
}

// irqHandler acknowledges the interrupt, logs it, runs body and ends it;
// a spurious acknowledge is counted and not ended.
func irqHandler(p *Program, body IRQBody) {
	spurious, log, done := p.NewLabel(), p.NewLabel(), p.NewLabel()
	p.Mrs(a64.X19, ICCIAR1EL1)
	p.And(a64.X19, a64.X19, a64.Imm(0xffffff)) // INTID (24 bits)
	p.Cmp(a64.X19, a64.Imm(SpuriousINTID))
	p.Bcond(a64.EQ, spurious)
	p.Ldr(a64.X9, a64.Ptr(a64.X28, IRQCount))
	p.Cmp(a64.X9, a64.Imm(IRQLogEntries))
	p.Bcond(a64.HS, log) // the list is full: count only
	p.Add(a64.X10, a64.X28, a64.Imm(IRQEntries))
	p.Str(a64.X19, a64.Index(a64.X10, a64.X9, a64.ExtLSL, true))
	p.Bind(log)
	p.Add(a64.X9, a64.X9, a64.Imm(1))
	p.Str(a64.X9, a64.Ptr(a64.X28, IRQCount))
	if body != nil {
		body(p)
	}
	p.Msr(ICCEOIR1EL1, a64.X19)
	p.Isb()
	p.B(done)
	p.Bind(spurious)
	p.Ldr(a64.X9, a64.Ptr(a64.X28, IRQSpurious))
	p.Add(a64.X9, a64.X9, a64.Imm(1))
	p.Str(a64.X9, a64.Ptr(a64.X28, IRQSpurious))
	p.Bind(done)
}

// Init emits this vCPU's bring-up into p (EL1 test code): the system
// register interface (ICC_SRE_EL1.SRE, asserted), affinity routing and
// group 1 in the distributor, this vCPU's redistributor (found by the
// affinity in GICR_TYPER, recorded at X28+IRQRedist) awake with every
// SGI and PPI in group 1, and the CPU interface taking every priority
// (ICC_PMR_EL1 0xff) of group 1 (ICC_IGRPEN1_EL1). PSTATE.I is left as it
// is: unmask with MsrDAIFClr(2). It clobbers X9-X15 and the flags.
func (c *GICv3) Init(p *Program) {
	p.Mrs(a64.X9, ICCSREEL1)
	p.Orr(a64.X9, a64.X9, a64.Imm(1))
	p.Msr(ICCSREEL1, a64.X9)
	p.Isb()
	p.Mrs(a64.X9, ICCSREEL1)
	p.And(a64.X9, a64.X9, a64.Imm(1))
	p.AssertEq(a64.X9, a64.Imm(1), "ICC_SRE_EL1.SRE stays clear: no GICv3 system register interface")

	p.Mov(a64.X9, a64.Imm(int64(c.Dist)))
	p.Ldr(a64.W10, a64.Ptr(a64.X9, gicdCTLR))
	p.Mov(a64.W11, a64.Imm(gicdCTLRARE|gicdCTLRGrp1))
	p.Orr(a64.W10, a64.W10, a64.W11)
	p.Str(a64.W10, a64.Ptr(a64.X9, gicdCTLR))
	c.waitClear(p, a64.X9, gicdCTLR, gicdCTLRRWP, "GICD_CTLR.RWP")

	// X10 = this PE's affinity as GICR_TYPER holds it (Aff3.Aff2.Aff1.Aff0).
	p.Mrs(a64.X10, mpidrEL1)
	p.Lsr(a64.X11, a64.X10, a64.Imm(32))
	p.And(a64.X11, a64.X11, a64.Imm(0xff))
	p.And(a64.X10, a64.X10, a64.Imm(0xffffff))
	p.Orr(a64.X10, a64.X10, a64.Shifted(a64.X11, a64.LSL, 24))
	p.Mov(a64.X11, a64.Imm(int64(c.Redist)))
	found, next := p.NewLabel(), p.NewLabel()
	scan := p.Here()
	p.Ldr(a64.X12, a64.Ptr(a64.X11, gicrTYPER))
	p.Lsr(a64.X13, a64.X12, a64.Imm(32))
	p.Cmp(a64.X13, a64.X10)
	p.Bcond(a64.EQ, found)
	p.Tbz(a64.X12, gicrTYPERLast, next)
	p.Fail("no redistributor has this vCPU's affinity (MPIDR affinity, last GICR_TYPER)", a64.X10, a64.X12)
	p.Bind(next)
	p.Mov(a64.X13, a64.Imm(GICRedistSize))
	p.Add(a64.X11, a64.X11, a64.X13)
	p.B(scan)
	p.Bind(found)
	p.Str(a64.X11, a64.Ptr(a64.X28, IRQRedist))

	p.Ldr(a64.W12, a64.Ptr(a64.X11, gicrWAKER))
	p.Mov(a64.W13, a64.Imm(^int64(gicrWAKERSleep)&0xffffffff))
	p.And(a64.W12, a64.W12, a64.W13)
	p.Str(a64.W12, a64.Ptr(a64.X11, gicrWAKER))
	c.waitClear(p, a64.X11, gicrWAKER, gicrWAKERAsleepBit, "GICR_WAKER.ChildrenAsleep")
	p.Mov(a64.X12, a64.Imm(gicrSGIBase))
	p.Add(a64.X12, a64.X11, a64.X12)
	p.Mov(a64.W13, a64.Imm(0xffffffff))
	p.Str(a64.W13, a64.Ptr(a64.X12, gicrIGROUPR0-gicrSGIBase))

	p.Mov(a64.X9, a64.Imm(0xff))
	p.Msr(ICCPMREL1, a64.X9)
	p.Msr(ICCBPR1EL1, a64.XZR)
	p.Mov(a64.X9, a64.Imm(1))
	p.Msr(ICCIGRPEN1EL1, a64.X9)
	p.Isb()
}

// waitClear polls bit of the 32-bit register at base+off until it is
// clear, a bounded number of times (the vGIC's writes complete at once).
func (c *GICv3) waitClear(p *Program, base a64.Reg, off int64, bit uint, what string) {
	p.Mov(a64.X15, a64.Imm(1<<20))
	ok := p.NewLabel()
	poll := p.Here()
	p.Ldr(a64.W14, a64.Ptr(base, off))
	p.Tbz(a64.X14, bit, ok)
	p.Subs(a64.X15, a64.X15, a64.Imm(1))
	p.Bcond(a64.NE, poll)
	p.Fail(what+" never clears", a64.X14)
	p.Bind(ok)
}

// Trigger is how an SPI's pending state follows its line.
type Trigger bool

// Triggers (GICD_ICFGR): a level-sensitive SPI is pending while its line
// is high; an edge-triggered one latches each rising edge.
const (
	Level Trigger = false
	Edge  Trigger = true
)

// Enable emits the enabling of intid for this vCPU after Init: a PPI
// (16..31) in the vCPU's redistributor, an SPI (32..) in the distributor,
// in group 1, at GICPriority, with trigger t (SPIs only: a PPI's is the
// hypervisor's) and routed to this vCPU. It clobbers X9-X15.
func (c *GICv3) Enable(p *Program, intid uint32, t Trigger) {
	if intid < FirstPPI || intid >= SpuriousINTID-3 {
		c.g.recordErr(fmt.Errorf("a64guest: GICv3 enable: INTID %d is not a PPI or SPI", intid))
		return
	}
	bit := int64(1) << (intid % 32)
	if intid < FirstSPI {
		p.Ldr(a64.X9, a64.Ptr(a64.X28, IRQRedist))
		p.Mov(a64.X10, a64.Imm(gicrSGIBase))
		p.Add(a64.X9, a64.X9, a64.X10)
		p.Mov(a64.W10, a64.Imm(GICPriority))
		p.Strb(a64.W10, a64.Ptr(a64.X9, gicrIPRIORITYR-gicrSGIBase+int64(intid)))
		p.Mov(a64.W10, a64.Imm(bit))
		p.Str(a64.W10, a64.Ptr(a64.X9, gicrISENABLER0-gicrSGIBase))
		p.Dsb(a64.SY)
		p.Isb()
		return
	}
	word := int64(intid/32) * 4
	p.Mov(a64.X9, a64.Imm(int64(c.Dist)))
	p.Ldr(a64.W10, a64.Ptr(a64.X9, gicdIGROUPR+word))
	p.Mov(a64.W11, a64.Imm(bit))
	p.Orr(a64.W10, a64.W10, a64.W11)
	p.Str(a64.W10, a64.Ptr(a64.X9, gicdIGROUPR+word))
	p.Mov(a64.W10, a64.Imm(GICPriority))
	p.Strb(a64.W10, a64.Ptr(a64.X9, gicdIPRIORITYR+int64(intid)))
	// GICD_ICFGR: two bits per INTID, the upper one set for edge.
	cfg := gicdICFGR + int64(intid/16)*4
	edgeBit := int64(1) << (2*(intid%16) + 1)
	p.Ldr(a64.W10, a64.Ptr(a64.X9, cfg))
	if t == Edge {
		p.Mov(a64.W11, a64.Imm(edgeBit))
		p.Orr(a64.W10, a64.W10, a64.W11)
	} else {
		p.Mov(a64.W11, a64.Imm(^edgeBit&0xffffffff))
		p.And(a64.W10, a64.W10, a64.W11)
	}
	p.Str(a64.W10, a64.Ptr(a64.X9, cfg))
	// GICD_IROUTER<n>: this PE's affinity, Aff3 in bits 39:32.
	p.Mrs(a64.X10, mpidrEL1)
	p.Mov(a64.X11, a64.Imm(0xff_00ff_ffff))
	p.And(a64.X10, a64.X10, a64.X11)
	p.Str(a64.X10, a64.Ptr(a64.X9, gicdIROUTER+8*int64(intid)))
	p.Mov(a64.W10, a64.Imm(bit))
	p.Str(a64.W10, a64.Ptr(a64.X9, gicdISENABLER+word))
	p.Dsb(a64.SY)
	p.Isb()
}

// Disable emits the disabling of SPI intid in the distributor.
func (c *GICv3) Disable(p *Program, intid uint32) {
	if intid < FirstSPI || intid >= SpuriousINTID-3 {
		c.g.recordErr(fmt.Errorf("a64guest: GICv3 disable: INTID %d is not an SPI", intid))
		return
	}
	p.Mov(a64.X9, a64.Imm(int64(c.Dist)))
	p.Mov(a64.W10, a64.Imm(int64(1)<<(intid%32)))
	p.Str(a64.W10, a64.Ptr(a64.X9, gicdICENABLER+int64(intid/32)*4))
	p.Dsb(a64.SY)
	p.Isb()
}

// WaitIRQs emits a wait of at most timeout (on the virtual counter,
// CNTVCT_EL0 at CNTFRQ_EL0: wall-clock time however slowly the vCPU
// runs) until this vCPU's handler has acknowledged at least n interrupts
// in all. It leaves the count in dst and falls through either way (the
// spec checks the count). EL1 code (or EL0 where CNTKCTL_EL1 lets it read
// the counter); it clobbers X13-X15 and the flags.
func (c *GICv3) WaitIRQs(p *Program, dst a64.Reg, n int64, timeout time.Duration) {
	if dst == a64.X13 || dst == a64.X14 || dst == a64.X15 {
		c.g.recordErr(fmt.Errorf("a64guest: GICv3 wait: %v is the wait's own register", dst))
	}
	done := p.NewLabel()
	deadline(p, timeout)
	poll := p.Here()
	p.Ldr(dst, a64.Ptr(a64.X28, IRQCount))
	p.Cmp(dst, a64.Imm(n))
	p.Bcond(a64.HS, done)
	p.Isb()
	p.Mrs(a64.X14, a64.CNTVCT_EL0)
	p.Cmp(a64.X14, a64.X13)
	p.Bcond(a64.LO, poll)
	p.Ldr(dst, a64.Ptr(a64.X28, IRQCount))
	p.Bind(done)
}

// SpinFor emits a busy wait of d on the virtual counter, with interrupts
// as PSTATE leaves them: a window for an interrupt to arrive, or to show
// that none does. It clobbers X13-X15 and the flags.
func SpinFor(p *Program, d time.Duration) {
	deadline(p, d)
	loop := p.Here()
	p.Isb()
	p.Mrs(a64.X14, a64.CNTVCT_EL0)
	p.Cmp(a64.X14, a64.X13)
	p.Bcond(a64.LO, loop)
}

var cntfrqEL0, _ = a64.Sys("CNTFRQ_EL0")

// deadline leaves in X13 the virtual counter d from now (X14, X15 are
// scratch): CNTFRQ_EL0 × d in milliseconds / 1000 ticks.
func deadline(p *Program, d time.Duration) {
	p.Mrs(a64.X13, cntfrqEL0)
	p.Mov(a64.X14, a64.Imm(max(d.Milliseconds(), 1)))
	p.Mul(a64.X13, a64.X13, a64.X14)
	p.Mov(a64.X14, a64.Imm(1000))
	p.Udiv(a64.X13, a64.X13, a64.X14)
	p.Isb()
	p.Mrs(a64.X15, a64.CNTVCT_EL0)
	p.Add(a64.X13, a64.X13, a64.X15)
}

// IRQs reads vCPU i's log: the acknowledged INTIDs in order (at most
// IRQLogEntries), how many there were in all, and the spurious reads.
func (c *GICv3) IRQs(i int) (intids []uint32, count, spurious uint64, err error) {
	b := make([]byte, UserScratch-IRQLog)
	if err := c.g.VM.ReadGPA(c.g.UserBlock(i)+IRQLog, b); err != nil {
		return nil, 0, 0, err
	}
	q := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off-IRQLog:]) }
	count, spurious = q(IRQCount), q(IRQSpurious)
	for k := 0; k < int(min(count, IRQLogEntries)); k++ {
		intids = append(intids, uint32(q(IRQEntries+8*k)))
	}
	return intids, count, spurious, nil
}
