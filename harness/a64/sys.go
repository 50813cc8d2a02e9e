package a64

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SysReg is a system register, named by its (op0, op1, CRn, CRm, op2)
// encoding. Look registers up with Sys, or use PMEVCNTR, PMEVTYPER and the
// DBG* functions for numbered ones.
type SysReg struct {
	Name                    string
	Op0, Op1, CRn, CRm, Op2 uint8
	access                  uint8 // sysRO, sysWO or 0 (read/write)
}

const (
	sysRO = 1
	sysWO = 2
)

// enc is the 15-bit field MRS and MSR carry in bits 19:5.
func (s SysReg) enc() uint32 {
	return uint32(s.Op0&3)<<14 | uint32(s.Op1&7)<<11 | uint32(s.CRn&15)<<7 | uint32(s.CRm&15)<<3 | uint32(s.Op2&7)
}

// Generic returns the register's generic spelling s<op0>_<op1>_c<n>_c<m>_<op2>.
func (s SysReg) Generic() string {
	return fmt.Sprintf("s%d_%d_c%d_c%d_%d", s.Op0, s.Op1, s.CRn, s.CRm, s.Op2)
}

func (s SysReg) String() string { return s.Name }

// sysRegs is the named-register table (Arm ARM D19 encodings). It is
// built by a variable initializer, not init, because the exported register
// variables below are initialized from it and package variables are
// initialized before init functions run.
var sysRegs = buildSysRegs()

func buildSysRegs() map[string]SysReg {
	sysRegs := map[string]SysReg{}
	for _, r := range []SysReg{
		{"MIDR_EL1", 3, 0, 0, 0, 0, sysRO},
		{"MPIDR_EL1", 3, 0, 0, 0, 5, sysRO},
		{"ID_AA64PFR0_EL1", 3, 0, 0, 4, 0, sysRO},
		{"ID_AA64DFR0_EL1", 3, 0, 0, 5, 0, sysRO},
		{"ID_AA64ISAR0_EL1", 3, 0, 0, 6, 0, sysRO},
		{"ID_AA64MMFR0_EL1", 3, 0, 0, 7, 0, sysRO},
		{"SCTLR_EL1", 3, 0, 1, 0, 0, 0},
		{"CPACR_EL1", 3, 0, 1, 0, 2, 0},
		{"TTBR0_EL1", 3, 0, 2, 0, 0, 0},
		{"TTBR1_EL1", 3, 0, 2, 0, 1, 0},
		{"TCR_EL1", 3, 0, 2, 0, 2, 0},
		{"SPSR_EL1", 3, 0, 4, 0, 0, 0},
		{"ELR_EL1", 3, 0, 4, 0, 1, 0},
		{"SP_EL0", 3, 0, 4, 1, 0, 0},
		{"SPSEL", 3, 0, 4, 2, 0, 0},
		{"CURRENTEL", 3, 0, 4, 2, 2, sysRO},
		{"NZCV", 3, 3, 4, 2, 0, 0},
		{"DAIF", 3, 3, 4, 2, 1, 0},
		{"ESR_EL1", 3, 0, 5, 2, 0, 0},
		{"FAR_EL1", 3, 0, 6, 0, 0, 0},
		{"PAR_EL1", 3, 0, 7, 4, 0, 0},
		{"PMINTENSET_EL1", 3, 0, 9, 14, 1, 0},
		{"PMINTENCLR_EL1", 3, 0, 9, 14, 2, 0},
		{"MAIR_EL1", 3, 0, 10, 2, 0, 0},
		{"VBAR_EL1", 3, 0, 12, 0, 0, 0},
		{"TPIDR_EL1", 3, 0, 13, 0, 4, 0},
		{"PMCR_EL0", 3, 3, 9, 12, 0, 0},
		{"PMCNTENSET_EL0", 3, 3, 9, 12, 1, 0},
		{"PMCNTENCLR_EL0", 3, 3, 9, 12, 2, 0},
		{"PMOVSCLR_EL0", 3, 3, 9, 12, 3, 0},
		{"PMSWINC_EL0", 3, 3, 9, 12, 4, sysWO},
		{"PMSELR_EL0", 3, 3, 9, 12, 5, 0},
		{"PMCEID0_EL0", 3, 3, 9, 12, 6, sysRO},
		{"PMCEID1_EL0", 3, 3, 9, 12, 7, sysRO},
		{"PMCCNTR_EL0", 3, 3, 9, 13, 0, 0},
		{"PMXEVTYPER_EL0", 3, 3, 9, 13, 1, 0},
		{"PMXEVCNTR_EL0", 3, 3, 9, 13, 2, 0},
		{"PMUSERENR_EL0", 3, 3, 9, 14, 0, 0},
		{"PMOVSSET_EL0", 3, 3, 9, 14, 3, 0},
		{"PMCCFILTR_EL0", 3, 3, 14, 15, 7, 0},
		{"CNTFRQ_EL0", 3, 3, 14, 0, 0, 0},
		{"CNTVCT_EL0", 3, 3, 14, 0, 2, sysRO},
		{"CNTV_CTL_EL0", 3, 3, 14, 3, 1, 0},
		{"CNTV_CVAL_EL0", 3, 3, 14, 3, 2, 0},
		{"MDSCR_EL1", 2, 0, 0, 2, 2, 0},
		{"OSLAR_EL1", 2, 0, 1, 0, 4, sysWO},
		{"OSLSR_EL1", 2, 0, 1, 1, 4, sysRO},
	} {
		sysRegs[r.Name] = r
	}
	for n := uint8(0); n < 31; n++ {
		for _, r := range []SysReg{PMEVCNTR(int(n)), PMEVTYPER(int(n))} {
			sysRegs[r.Name] = r
		}
	}
	for n := 0; n < 16; n++ {
		for _, r := range []SysReg{DBGBVR(n), DBGBCR(n), DBGWVR(n), DBGWCR(n)} {
			sysRegs[r.Name] = r
		}
	}
	return sysRegs
}

// Sys returns the named system register (case-insensitive, e.g.
// "sctlr_el1", "PMEVCNTR3_EL0") and false if the table has no such name.
func Sys(name string) (SysReg, bool) {
	r, ok := sysRegs[strings.ToUpper(name)]
	return r, ok
}

// SysRegNames lists the table's register names, sorted.
func SysRegNames() []string {
	names := make([]string, 0, len(sysRegs))
	for n := range sysRegs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Common system registers, for direct use.
var (
	SCTLR_EL1      = sysRegs["SCTLR_EL1"]
	TCR_EL1        = sysRegs["TCR_EL1"]
	MAIR_EL1       = sysRegs["MAIR_EL1"]
	TTBR0_EL1      = sysRegs["TTBR0_EL1"]
	VBAR_EL1       = sysRegs["VBAR_EL1"]
	ESR_EL1        = sysRegs["ESR_EL1"]
	FAR_EL1        = sysRegs["FAR_EL1"]
	ELR_EL1        = sysRegs["ELR_EL1"]
	SPSR_EL1       = sysRegs["SPSR_EL1"]
	SP_EL0         = sysRegs["SP_EL0"]
	CPACR_EL1      = sysRegs["CPACR_EL1"]
	DAIF           = sysRegs["DAIF"]
	CNTVCT_EL0     = sysRegs["CNTVCT_EL0"]
	PMCR_EL0       = sysRegs["PMCR_EL0"]
	PMCCNTR_EL0    = sysRegs["PMCCNTR_EL0"]
	PMCNTENSET_EL0 = sysRegs["PMCNTENSET_EL0"]
	MDSCR_EL1      = sysRegs["MDSCR_EL1"]
	OSLAR_EL1      = sysRegs["OSLAR_EL1"]
)

// numbered builds a numbered register; n out of 0..max gives a register
// with op0 0, which Mrs and Msr reject by name.
func numbered(prefix string, n, max int, suffix string, op0, op1, crn, crm, op2 uint8) SysReg {
	if n < 0 || n > max {
		op0 = 0
	}
	return SysReg{Name: prefix + strconv.Itoa(n) + suffix, Op0: op0, Op1: op1, CRn: crn, CRm: crm, Op2: op2}
}

// PMEVCNTR returns PMEVCNTR<n>_EL0 (n in 0..30).
func PMEVCNTR(n int) SysReg {
	return numbered("PMEVCNTR", n, 30, "_EL0", 3, 3, 14, 8|uint8(n>>3&3), uint8(n&7))
}

// PMEVTYPER returns PMEVTYPER<n>_EL0 (n in 0..30).
func PMEVTYPER(n int) SysReg {
	return numbered("PMEVTYPER", n, 30, "_EL0", 3, 3, 14, 12|uint8(n>>3&3), uint8(n&7))
}

// DBGBVR returns DBGBVR<n>_EL1 (n in 0..15).
func DBGBVR(n int) SysReg { return numbered("DBGBVR", n, 15, "_EL1", 2, 0, 0, uint8(n&15), 4) }

// DBGBCR returns DBGBCR<n>_EL1 (n in 0..15).
func DBGBCR(n int) SysReg { return numbered("DBGBCR", n, 15, "_EL1", 2, 0, 0, uint8(n&15), 5) }

// DBGWVR returns DBGWVR<n>_EL1 (n in 0..15).
func DBGWVR(n int) SysReg { return numbered("DBGWVR", n, 15, "_EL1", 2, 0, 0, uint8(n&15), 6) }

// DBGWCR returns DBGWCR<n>_EL1 (n in 0..15).
func DBGWCR(n int) SysReg { return numbered("DBGWCR", n, 15, "_EL1", 2, 0, 0, uint8(n&15), 7) }

// checkSys rejects registers outside the encodable space, and accesses
// the register does not allow.
func (a *Assembler) checkSys(name string, s SysReg, read bool) bool {
	switch {
	case s.Op0 < 2 || s.Op0 > 3 || s.Op1 > 7 || s.CRn > 15 || s.CRm > 15 || s.Op2 > 7:
		a.fail(name, "system register %q has no MRS/MSR encoding (%s)", s.Name, s.Generic())
	case read && s.access == sysWO:
		a.fail(name, "%s is write-only", s.Name)
	case !read && s.access == sysRO:
		a.fail(name, "%s is read-only", s.Name)
	default:
		return true
	}
	return false
}

// Mrs emits MRS xt, sysreg.
func (a *Assembler) Mrs(xt Reg, s SysReg) {
	if a.check("Mrs", gpr, X0, xt) && a.checkSys("Mrs", s, true) {
		a.emit("Mrs", 0xD5200000|s.enc()<<5|xt.num(), nil, 0)
	}
}

// Msr emits MSR sysreg, xt.
func (a *Assembler) Msr(s SysReg, xt Reg) {
	if a.check("Msr", gpr, X0, xt) && a.checkSys("Msr", s, false) {
		a.emit("Msr", 0xD5000000|s.enc()<<5|xt.num(), nil, 0)
	}
}

// MsrDAIFSet emits MSR DAIFSet, #imm4: masks D (8), A (4), I (2), F (1).
func (a *Assembler) MsrDAIFSet(imm4 uint8) { a.msrImm("MsrDAIFSet", 6, imm4) }

// MsrDAIFClr emits MSR DAIFClr, #imm4: unmasks D (8), A (4), I (2), F (1).
func (a *Assembler) MsrDAIFClr(imm4 uint8) { a.msrImm("MsrDAIFClr", 7, imm4) }

func (a *Assembler) msrImm(name string, op2 uint32, imm4 uint8) {
	if imm4 > 15 {
		a.fail(name, "immediate %d is out of range 0..15", imm4)
		return
	}
	a.emit(name, 0xD503401F|op2<<5|uint32(imm4)<<8, nil, 0)
}

// Barrier is the option of DSB and DMB.
type Barrier uint8

// Barrier options (the CRm field).
const (
	OSHLD Barrier = 1
	OSHST Barrier = 2
	OSH   Barrier = 3
	NSHLD Barrier = 5
	NSHST Barrier = 6
	NSH   Barrier = 7
	ISHLD Barrier = 9
	ISHST Barrier = 10
	ISH   Barrier = 11
	LD    Barrier = 13
	ST    Barrier = 14
	SY    Barrier = 15
)

// Dsb emits DSB opt.
func (a *Assembler) Dsb(opt Barrier) { a.barrier("Dsb", 0x9F, opt) }

// Dmb emits DMB opt.
func (a *Assembler) Dmb(opt Barrier) { a.barrier("Dmb", 0xBF, opt) }

// Isb emits ISB (SY).
func (a *Assembler) Isb() { a.barrier("Isb", 0xDF, SY) }

func (a *Assembler) barrier(name string, op uint32, opt Barrier) {
	// DSB with CRm 0 or 4 is SSBB/PSSBB and other encodings are hints of
	// later extensions: only the named options are accepted.
	switch opt {
	case OSHLD, OSHST, OSH, NSHLD, NSHST, NSH, ISHLD, ISHST, ISH, LD, ST, SY:
	default:
		a.fail(name, "invalid barrier option %d", opt)
		return
	}
	a.emit(name, 0xD5033000|uint32(opt)<<8|op, nil, 0)
}

// Hvc emits HVC #imm16 (a hypercall; KVM's PSCI and the ucall exit).
func (a *Assembler) Hvc(imm16 uint16) { a.emit("Hvc", 0xD4000002|uint32(imm16)<<5, nil, 0) }

// Smc emits SMC #imm16.
func (a *Assembler) Smc(imm16 uint16) { a.emit("Smc", 0xD4000003|uint32(imm16)<<5, nil, 0) }

// Svc emits SVC #imm16.
func (a *Assembler) Svc(imm16 uint16) { a.emit("Svc", 0xD4000001|uint32(imm16)<<5, nil, 0) }

// Brk emits BRK #imm16 (a software breakpoint).
func (a *Assembler) Brk(imm16 uint16) { a.emit("Brk", 0xD4200000|uint32(imm16)<<5, nil, 0) }

// Eret emits ERET.
func (a *Assembler) Eret() { a.emit("Eret", 0xD69F03E0, nil, 0) }

// Wfi emits WFI.
func (a *Assembler) Wfi() { a.emit("Wfi", 0xD503207F, nil, 0) }

// Nop emits NOP.
func (a *Assembler) Nop() { a.emit("Nop", 0xD503201F, nil, 0) }
