package a64guest

// Software-generated interrupts (SGIs, INTIDs 0-15) of the GICv3 (Arm IHI
// 0069, "ICC_SGI1R_EL1"): a PE makes one pending on other PEs, or on
// itself, by writing ICC_SGI1R_EL1 with the INTID and either a target
// list — Aff3.Aff2.Aff1 naming one cluster and a bit per Aff0 value in
// the 16-value range RS selects (Aff0 = RS×16 + bit) — or, with the
// Interrupt Routing Mode bit set, every PE but the writer. Each target's
// redistributor holds the SGI in its SGI_base frame, where the guest
// enables, disables and reads it (GICR_ISENABLER0, GICR_ICENABLER0,
// GICR_ISPENDR0) and the host reads it too (hv.ARM64ITSVM.GetRedistReg
// takes the same offsets from RD_base).

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// ICCSGI1REL1 is ICC_SGI1R_EL1 (S3_0_C12_C11_5, write-only): a write
// generates a group 1 SGI.
var ICCSGI1REL1 = a64.SysReg{Name: "ICC_SGI1R_EL1", Op0: 3, Op1: 0, CRn: 12, CRm: 11, Op2: 5}

// NumSGIs is the number of SGI INTIDs (0..15).
const NumSGIs = 16

// ICC_SGI1R_EL1 fields: TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2
// 39:32, IRM 40, RS 47:44, Aff3 55:48; the other bits are RES0.
const (
	sgiAff1Shift  = 16
	sgiINTIDShift = 24
	sgiAff2Shift  = 32
	sgiIRMShift   = 40
	sgiRSShift    = 44
	sgiAff3Shift  = 48
	// SGI1RFields is every bit ICC_SGI1R_EL1 defines.
	SGI1RFields = 0x00ff_f1ff_0fff_ffff
)

// Redistributor SGI_base registers as offsets from RD_base (the guest adds
// its redistributor's base; GetRedistReg takes them as they are).
const (
	GICRISENABLER0 = gicrISENABLER0
	GICRICENABLER0 = gicrSGIBase + 0x0180
	GICRISPENDR0   = gicrSGIBase + 0x0200
	GICRICPENDR0   = gicrSGIBase + 0x0280
	gicrCTLR       = 0x0000
	gicrCTLRRWP    = 3 // bit: a GICR_ICENABLER0 write is still in progress
)

// SGI1R is one ICC_SGI1R_EL1 value, field by field.
type SGI1R struct {
	INTID uint8 // 0..15
	// Broadcast is the Interrupt Routing Mode bit: every PE but the
	// writer; the affinity, RS and target list are then ignored.
	Broadcast        bool
	Aff3, Aff2, Aff1 uint8
	RS               uint8  // 0..15: TargetList bit n is Aff0 RS×16+n
	TargetList       uint16 // one bit per Aff0 of the cluster
}

// Value encodes s; an INTID or RS beyond four bits is an error.
func (s SGI1R) Value() (uint64, error) {
	if s.INTID >= NumSGIs {
		return 0, fmt.Errorf("a64guest: SGI INTID %d is not in 0..15", s.INTID)
	}
	if s.RS > 15 {
		return 0, fmt.Errorf("a64guest: SGI range selector %d is not in 0..15", s.RS)
	}
	v := uint64(s.TargetList) | uint64(s.Aff1)<<sgiAff1Shift | uint64(s.INTID)<<sgiINTIDShift |
		uint64(s.Aff2)<<sgiAff2Shift | uint64(s.RS)<<sgiRSShift | uint64(s.Aff3)<<sgiAff3Shift
	if s.Broadcast {
		v |= 1 << sgiIRMShift
	}
	return v, nil
}

// ParseSGI1R decodes an ICC_SGI1R_EL1 value (RES0 bits ignored).
func ParseSGI1R(v uint64) SGI1R {
	return SGI1R{
		INTID:      uint8(v >> sgiINTIDShift & 0xf),
		Broadcast:  v>>sgiIRMShift&1 != 0,
		Aff3:       uint8(v >> sgiAff3Shift),
		Aff2:       uint8(v >> sgiAff2Shift),
		Aff1:       uint8(v >> sgiAff1Shift),
		RS:         uint8(v >> sgiRSShift & 0xf),
		TargetList: uint16(v),
	}
}

// SGIBroadcast is the SGI1R that makes intid pending on every PE but the
// writer.
func SGIBroadcast(intid uint8) SGI1R { return SGI1R{INTID: intid, Broadcast: true} }

// SGITo is the SGI1R that makes intid pending on each PE whose MPIDR_EL1
// value is in mpidrs (Aff0 7:0, Aff1 15:8, Aff2 23:16, Aff3 39:32): one
// write reaches them only if they share Aff3.Aff2.Aff1 and their Aff0
// values lie in one range of 16, else the error says which PE does not.
func SGITo(intid uint8, mpidrs ...uint64) (SGI1R, error) {
	if len(mpidrs) == 0 {
		return SGI1R{}, fmt.Errorf("a64guest: SGI %d: no target", intid)
	}
	first := mpidrs[0]
	s := SGI1R{INTID: intid, Aff3: uint8(first >> 32), Aff2: uint8(first >> 16), Aff1: uint8(first >> 8), RS: uint8(first) / 16}
	for _, m := range mpidrs {
		if uint8(m>>32) != s.Aff3 || uint8(m>>16) != s.Aff2 || uint8(m>>8) != s.Aff1 || uint8(m)/16 != s.RS {
			return SGI1R{}, fmt.Errorf("a64guest: SGI %d: MPIDR %#x is not in the cluster and Aff0 range of MPIDR %#x: one write cannot reach both", intid, m, first)
		}
		s.TargetList |= 1 << (uint8(m) % 16)
	}
	if _, err := s.Value(); err != nil {
		return SGI1R{}, err
	}
	return s, nil
}

// SendSGI emits the generation of s: ICC_SGI1R_EL1 written, then ISB.
// The write is not ordered after earlier memory accesses: a sender whose
// target must see its stores puts a DSB before it. Clobbers X9.
func (c *GICv3) SendSGI(p *Program, s SGI1R) {
	v, err := s.Value()
	if err != nil {
		c.g.recordErr(err)
		return
	}
	p.Mov(a64.X9, a64.Imm(int64(v)))
	p.Msr(ICCSGI1REL1, a64.X9)
	p.Isb()
}

// sgiFrame leaves this vCPU's SGI_base frame (recorded by Init) in X9.
func sgiFrame(p *Program) {
	p.Ldr(a64.X9, a64.Ptr(a64.X28, IRQRedist))
	p.Mov(a64.X10, a64.Imm(gicrSGIBase))
	p.Add(a64.X9, a64.X9, a64.X10)
}

// EnableSGIs emits the enabling of the SGIs of mask (bit n: INTID n) in
// this vCPU's redistributor after Init, at GICPriority (the group is
// Init's: 1). Clobbers X9 and X10.
func (c *GICv3) EnableSGIs(p *Program, mask uint16) {
	sgiFrame(p)
	p.Mov(a64.W10, a64.Imm(GICPriority))
	for i := range NumSGIs {
		if mask&(1<<i) != 0 {
			p.Strb(a64.W10, a64.Ptr(a64.X9, gicrIPRIORITYR-gicrSGIBase+int64(i)))
		}
	}
	p.Mov(a64.W10, a64.Imm(int64(mask)))
	p.Str(a64.W10, a64.Ptr(a64.X9, GICRISENABLER0-gicrSGIBase))
	p.Dsb(a64.SY)
	p.Isb()
}

// DisableSGIs emits the disabling of the SGIs of mask in this vCPU's
// redistributor (GICR_ICENABLER0) and the wait for it to take effect
// (GICR_CTLR.RWP clear). A disabled SGI still becomes pending; it is not
// taken until enabled again. Clobbers X9-X15.
func (c *GICv3) DisableSGIs(p *Program, mask uint16) {
	sgiFrame(p)
	p.Mov(a64.W10, a64.Imm(int64(mask)))
	p.Str(a64.W10, a64.Ptr(a64.X9, GICRICENABLER0-gicrSGIBase))
	p.Ldr(a64.X11, a64.Ptr(a64.X28, IRQRedist))
	c.waitClear(p, a64.X11, gicrCTLR, gicrCTLRRWP, "GICR_CTLR.RWP")
	p.Dsb(a64.SY)
	p.Isb()
}

// ReadSGIPending emits a read of this vCPU's GICR_ISPENDR0 (the pending
// SGIs and PPIs, bit n: INTID n) into dst (a 64-bit register, zero
// extended). Clobbers X9 and X10.
func (c *GICv3) ReadSGIPending(p *Program, dst a64.Reg) {
	sgiFrame(p)
	p.Ldr(a64.W(int(dst.Num())), a64.Ptr(a64.X9, GICRISPENDR0-gicrSGIBase))
}

// WaitSGIPending emits a wait of at most timeout (virtual counter) until
// every bit of mask is set in this vCPU's GICR_ISPENDR0; it leaves the
// last value read in dst and falls through either way (the spec checks
// it). Clobbers X9-X10, X13-X15 and the flags.
func (c *GICv3) WaitSGIPending(p *Program, dst a64.Reg, mask uint16, timeout time.Duration) {
	if dst == a64.X13 || dst == a64.X14 || dst == a64.X15 || dst == a64.X9 || dst == a64.X10 {
		c.g.recordErr(fmt.Errorf("a64guest: SGI pending wait: %v is the wait's own register", dst))
	}
	done := p.NewLabel()
	deadline(p, timeout)
	poll := p.Here()
	c.ReadSGIPending(p, dst)
	// X10 = dst | ^mask is all ones once every bit of mask is set.
	p.Mov(a64.X10, a64.Imm(^int64(mask)))
	p.Orr(a64.X10, a64.X10, dst)
	p.Cmn(a64.X10, a64.Imm(1))
	p.Bcond(a64.EQ, done)
	p.Isb()
	p.Mrs(a64.X14, a64.CNTVCT_EL0)
	p.Cmp(a64.X14, a64.X13)
	p.Bcond(a64.LO, poll)
	p.Bind(done)
}

// WaitWord emits a wait of at most timeout (virtual counter) until the
// 64-bit word at addr, read with load-acquire, is at least n (unsigned; n
// a register or an immediate CMP takes): another vCPU's IRQ count (its
// UserBlock + IRQCount), a flag, a barrier's count. It leaves the last
// value in dst and falls through either way (the spec checks dst).
// Clobbers X12-X15 and the flags.
func WaitWord(p *Program, dst a64.Reg, addr uint64, n a64.Operand, timeout time.Duration) {
	if dst.Num() >= 12 && dst.Num() <= 15 {
		p.g.recordErr(fmt.Errorf("a64guest: wait on %#x: %v is the wait's own register", addr, dst))
	}
	if r, ok := n.(a64.Reg); ok && r.Num() >= 12 && r.Num() <= 15 {
		p.g.recordErr(fmt.Errorf("a64guest: wait on %#x: the bound %v is the wait's own register", addr, r))
	}
	done := p.NewLabel()
	deadline(p, timeout)
	p.Mov(a64.X12, a64.Imm(int64(addr)))
	poll := p.Here()
	p.Ldar(dst, a64.X12)
	p.Cmp(dst, n)
	p.Bcond(a64.HS, done)
	p.Isb()
	p.Mrs(a64.X14, a64.CNTVCT_EL0)
	p.Cmp(a64.X14, a64.X13)
	p.Bcond(a64.LO, poll)
	p.Ldar(dst, a64.X12)
	p.Bind(done)
}

// AtomicAdd emits an atomic add of n to the 64-bit word at addr
// (load-acquire/store-release exclusive pair, so it needs no FEAT_LSE and
// orders the caller's earlier stores before it): the arrival at a
// barrier, the passing of a turn. Clobbers X12 and X14-X15.
func AtomicAdd(p *Program, addr uint64, n int64) {
	p.Mov(a64.X12, a64.Imm(int64(addr)))
	retry := p.Here()
	p.Ldaxr(a64.X14, a64.X12)
	p.Add(a64.X14, a64.X14, a64.Imm(n))
	p.Stlxr(a64.W15, a64.X14, a64.X12)
	p.Cbnz(a64.W15, retry)
}
