package kvm

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// archCreate gives a new vCPU the default CPUID table, what KVM supports
// (minus x2APIC on the userspace APIC path), and its APIC model there.
func (v *VCPU) archCreate() error { return setCPUID(v.fd, v.archVCPUCreate(v.vm.h.arch.cpuid)) }

// Regs implements hv.VCPU.
func (v *VCPU) Regs() (hv.Regs, error) {
	var r hv.Regs
	err := v.exec(func() error { return v.ioctlBuf(kvmGetRegs, "KVM_GET_REGS", regsPtr(&r)) })
	return r, err
}

// SetRegs implements hv.VCPU.
func (v *VCPU) SetRegs(r *hv.Regs) error {
	return v.exec(func() error { return v.ioctlBuf(kvmSetRegs, "KVM_SET_REGS", regsPtr(r)) })
}

// Sregs implements hv.VCPU.
func (v *VCPU) Sregs() (hv.Sregs, error) {
	var s hv.Sregs
	err := v.exec(func() error { return v.ioctlBuf(kvmGetSregs, "KVM_GET_SREGS", sregsPtr(&s)) })
	return s, err
}

// SetSregs implements hv.VCPU.
func (v *VCPU) SetSregs(s *hv.Sregs) error {
	return v.exec(func() error { return v.ioctlBuf(kvmSetSregs, "KVM_SET_SREGS", sregsPtr(s)) })
}

// GetMSR implements hv.VCPU.
func (v *VCPU) GetMSR(index uint32) (uint64, error) {
	var val uint64
	err := v.exec(func() error {
		var e error
		val, e = v.msr(kvmGetMSRs, index, 0)
		return e
	})
	return val, err
}

// SetMSR implements hv.VCPU.
func (v *VCPU) SetMSR(index uint32, value uint64) error {
	return v.exec(func() error {
		_, e := v.msr(kvmSetMSRs, index, value)
		return e
	})
}

// DebugRegs implements hv.VCPU.
func (v *VCPU) DebugRegs() (hv.DebugRegs, error) {
	var d debugRegs
	err := v.exec(func() error { return v.ioctlBuf(kvmGetDebugRegs, "KVM_GET_DEBUGREGS", debugRegsPtr(&d)) })
	return hv.DebugRegs{DB: d.db, DR6: d.dr6, DR7: d.dr7}, err
}

// SetDebugRegs implements hv.VCPU.
func (v *VCPU) SetDebugRegs(r *hv.DebugRegs) error {
	d := debugRegs{db: r.DB, dr6: r.DR6, dr7: r.DR7}
	return v.exec(func() error { return v.ioctlBuf(kvmSetDebugRegs, "KVM_SET_DEBUGREGS", debugRegsPtr(&d)) })
}

// SetGuestDebug implements hv.VCPU. hv.DebugFlags carry KVM's
// KVM_GUESTDBG_* values (const_test.go checks them against the header),
// so they pass through; flags outside KVM_CAP_SET_GUEST_DEBUG2's mask are
// refused with the capability they need instead of KVM's bare EINVAL.
func (v *VCPU) SetGuestDebug(g *hv.GuestDebug) error {
	if err := checkDebugFlags(v.vm.h.caps, v.vm.h.arch.debugMask, g.Flags); err != nil {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG vcpu %d: %w", v.id, err)
	}
	d := guestDebug{control: uint32(g.Flags), debugreg: g.DebugReg}
	return v.exec(func() error { return v.ioctlBuf(kvmSetGuestDebug, "KVM_SET_GUEST_DEBUG", guestDebugPtr(&d)) })
}

// checkDebugFlags refuses flags the contract does not know (EINVAL) and
// flags KVM does not accept here (an error wrapping hv.ErrUnsupported
// that names the capability).
func checkDebugFlags(c hv.Caps, mask uint32, f hv.DebugFlags) error {
	if rest := f &^ hv.DebugFlagsKnown; rest != 0 {
		return fmt.Errorf("unknown flags %#x: %w", uint32(rest), unix.EINVAL)
	}
	if f == 0 {
		return nil // turning host debugging off needs nothing
	}
	if err := c.Require(hv.CapGuestDebug); err != nil {
		return err
	}
	missing := uint32(f) &^ mask
	if missing == 0 {
		return nil
	}
	// Name every capability the missing flags stand for (USE_HW_BP is
	// both hardware breakpoints and watchpoints).
	var cps []hv.Cap
	for _, d := range debugFlagCaps {
		if missing&d.need != 0 {
			cps = append(cps, d.cp)
		}
	}
	cp := hv.CapGuestDebug
	if len(cps) > 0 {
		cp = cps[0]
	}
	return hv.Unsupported(Name, cp, "flags %s not in KVM_CAP_SET_GUEST_DEBUG2's mask %#x (needed for %v)", hv.DebugFlags(missing), mask, cps)
}
