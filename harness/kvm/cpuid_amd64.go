package kvm

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// fromKVMCPUID converts one kvm_cpuid_entry2. Only
// KVM_CPUID_FLAG_SIGNIFCANT_INDEX means anything to KVM today (the
// stateful flags are obsolete), so it is the only flag kept; an unindexed
// entry's index is zeroed, as the guest never sees it.
func fromKVMCPUID(e cpuidEntry2) hv.CPUIDEntry {
	c := hv.CPUIDEntry{Function: e.function, Indexed: e.flags&cpuidFlagIndexed != 0,
		EAX: e.eax, EBX: e.ebx, ECX: e.ecx, EDX: e.edx}
	if c.Indexed {
		c.Index = e.index
	}
	return c
}

// toKVMCPUID converts one entry to kvm_cpuid_entry2.
func toKVMCPUID(c hv.CPUIDEntry) cpuidEntry2 {
	e := cpuidEntry2{function: c.Function, eax: c.EAX, ebx: c.EBX, ecx: c.ECX, edx: c.EDX}
	if c.Indexed {
		e.index = c.Index
		e.flags = cpuidFlagIndexed
	}
	return e
}

// maxCPUIDEntries bounds a table (KVM_MAX_CPUID_ENTRIES is 256).
const maxCPUIDEntries = 256

// cpuidTable converts a table for KVM_SET_CPUID2, refusing what KVM would
// refuse less clearly: too many entries, or two entries for one leaf.
func cpuidTable(t hv.CPUID) ([]cpuidEntry2, error) {
	if len(t) > maxCPUIDEntries {
		return nil, fmt.Errorf("CPUID table of %d entries: KVM takes at most %d", len(t), maxCPUIDEntries)
	}
	type key struct{ fn, idx uint32 }
	seen := make(map[key]bool, len(t))
	out := make([]cpuidEntry2, len(t))
	for i, c := range t {
		e := toKVMCPUID(c)
		k := key{e.function, e.index}
		if seen[k] {
			return nil, fmt.Errorf("CPUID table: leaf %#x index %d appears twice", c.Function, e.index)
		}
		seen[k] = true
		out[i] = e
	}
	return out, nil
}

// CPUID implements hv.VCPU with KVM_GET_CPUID2: the table KVM holds.
func (v *VCPU) CPUID() (hv.CPUID, error) {
	var t hv.CPUID
	err := v.exec(func() error {
		es, err := getCPUID(v.fd)
		if err != nil {
			return fmt.Errorf("vcpu %d: %w", v.id, err)
		}
		t = make(hv.CPUID, len(es))
		for i, e := range es {
			t[i] = fromKVMCPUID(e)
		}
		return nil
	})
	return t, err
}

// SetCPUID implements hv.VCPU with KVM_SET_CPUID2. KVM (5.16+) refuses a
// different table once the vCPU has run: the error says so.
func (v *VCPU) SetCPUID(t hv.CPUID) error {
	es, err := cpuidTable(t)
	if err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: %w", v.id, err)
	}
	return v.exec(func() error {
		if err := setCPUID(v.fd, es); err != nil {
			if v.ran {
				return fmt.Errorf("vcpu %d: %w (KVM refuses a changed CPUID table after the first KVM_RUN)", v.id, err)
			}
			return fmt.Errorf("vcpu %d: %w", v.id, err)
		}
		return nil
	})
}
