package a64guest

import (
	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// OneReg is how the runtime reaches an arm64 vCPU's registers: KVM's
// KVM_GET_ONE_REG/KVM_SET_ONE_REG by register id. An hv.VCPU of a backend
// that runs arm64 guests implements it; New refuses vCPUs that do not.
type OneReg interface {
	GetOneReg(id uint64) (uint64, error)
	SetOneReg(id uint64, v uint64) error
}

// Register ids: KVM's ONE_REG encoding, as harness/hv names it.
var (
	RegPC     = hv.ARM64RegPC
	RegPSTATE = hv.ARM64RegPSTATE
	RegSP     = hv.ARM64RegSP // SP_EL0
	RegSPEL1  = hv.ARM64RegSPEL1
	RegELREL1 = hv.ARM64RegELREL1
	RegSPSR   = hv.ARM64SPSR(0) // SPSR_EL1
)

// RegX is the id of general-purpose register Xn (n in 0..30).
func RegX(n int) uint64 { return hv.ARM64X(n) }

// RegSys is the id of a system register (KVM_REG_ARM64_SYSREG).
func RegSys(r a64.SysReg) uint64 { return hv.ARM64SysReg(r.Op0, r.Op1, r.CRn, r.CRm, r.Op2) }
