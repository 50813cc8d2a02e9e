package a64guest

import "github.com/kvmspec/kvmspec/harness/a64"

// OneReg is how the runtime reaches an arm64 vCPU's registers: KVM's
// KVM_GET_ONE_REG/KVM_SET_ONE_REG by register id. An hv.VCPU of a backend
// that runs arm64 guests implements it; New refuses vCPUs that do not.
type OneReg interface {
	GetOneReg(id uint64) (uint64, error)
	SetOneReg(id uint64, v uint64) error
}

// KVM register ids (<uapi/linux/kvm.h>, arch/arm64/include/uapi/asm/kvm.h).
const (
	kvmRegARM64      = 0x6000_0000_0000_0000
	kvmRegSizeU64    = 0x0030_0000_0000_0000
	kvmRegARMCore    = 0x0010 << 16
	kvmRegARM64Sys   = 0x0013 << 16
	coreRegX0        = 0  // struct kvm_regs.regs.regs[0], in 32-bit words
	coreRegSP        = 62 // regs.sp: SP_EL0
	coreRegPC        = 64 // regs.pc
	coreRegPSTATE    = 66 // regs.pstate
	coreRegSPEL1     = 68 // sp_el1
	coreRegELREL1    = 70 // elr_el1
	coreRegSPSREL1   = 72 // spsr[KVM_SPSR_EL1]
	coreRegWordsPerX = 2  // a 64-bit register is two 32-bit words of struct kvm_regs
)

func coreReg(word uint64) uint64 { return kvmRegARM64 | kvmRegSizeU64 | kvmRegARMCore | word }

// Register ids of the core registers.
var (
	RegPC     = coreReg(coreRegPC)
	RegPSTATE = coreReg(coreRegPSTATE)
	RegSP     = coreReg(coreRegSP) // SP_EL0
	RegSPEL1  = coreReg(coreRegSPEL1)
	RegELREL1 = coreReg(coreRegELREL1)
	RegSPSR   = coreReg(coreRegSPSREL1)
)

// RegX is the id of general-purpose register Xn (n in 0..30).
func RegX(n int) uint64 { return coreReg(coreRegX0 + coreRegWordsPerX*uint64(n)) }

// RegSys is the id of a system register (KVM_REG_ARM64_SYSREG).
func RegSys(r a64.SysReg) uint64 {
	return kvmRegARM64 | kvmRegSizeU64 | kvmRegARM64Sys |
		uint64(r.Op0)<<14 | uint64(r.Op1)<<11 | uint64(r.CRn)<<7 | uint64(r.CRm)<<3 | uint64(r.Op2)
}
