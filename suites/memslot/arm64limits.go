package memslot

// The limit and bad-input specs on KVM/arm64 (limits.go's, the same
// fixtures and errnos), plus what is arm64's own: a slot must lie inside
// the VM's IPA space (40 bits unless the VM type asks for another),
// which kvm_arch_prepare_memory_region enforces with EFAULT where x86
// checks its 52-bit frame limit with EINVAL.

import (
	"syscall"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
)

// a64IPABits is the IPA size of a VM created with machine type 0, as
// the kvm backend creates them (KVM's default, KVM_VM_TYPE_ARM_IPA_SIZE
// not given).
const a64IPABits = hv.ARM64DefaultIPABits

// a64BeyondIPA are arm64's refusals of a slot outside the IPA space.
func a64BeyondIPA() []TableEntry {
	const pg = hv.PageSize
	top := uint64(1) << a64IPABits
	crossing := func(f *fixture) hv.Memslot {
		return hv.Memslot{Slot: 2, GPA: top - pg, Size: 2 * pg, Memory: f.mem, Offset: fixFreeOff}
	}
	return []TableEntry{
		Entry("a GPA at the end of the 40-bit IPA space is EFAULT", refusal{2, set(freeAt(top)), syscall.EFAULT}),
		Entry("a slot across the end of the 40-bit IPA space is EFAULT", refusal{2, set(crossing), syscall.EFAULT}),
		Entry("a GPA beyond 52 bits is EFAULT", refusal{2, set(freeAt(1 << 52)), syscall.EFAULT}),
	}
}

// a64AcceptedEntries: the last page of the IPA space takes a slot.
func a64AcceptedEntries() []TableEntry {
	return append(acceptedEntries(),
		Entry("a slot on the last page of the 40-bit IPA space", func(f *fixture) ([]hv.Memslot, error) {
			m := f.free(2)
			m.GPA = 1<<a64IPABits - hv.PageSize
			return []hv.Memslot{f.slot0(), f.slot1(), m}, f.vm.SetMemslot(m)
		}),
	)
}

func a64LimitSpecs(b *framework.Backend) {
	// KVM/arm64 offers 32767 slots; under QEMU's TCG creating them takes
	// about 2 minutes, so the spec is a stress one (make test's arm64
	// stage leaves those out, make test-arm64 runs it).
	It(textSlotCount, taxonomy.Stress, func(ctx SpecContext) { checkSlotCount(b) }, SpecTimeout(10*time.Minute))
	DescribeTable("refused requests", refusedSpec(b), refusalEntries(a64BeyondIPA()...))
	DescribeTable("unknown flags", unknownFlagSpec(b), flagEntries())
	DescribeTable("accepted changes", acceptedSpec(b), a64AcceptedEntries())
	It(textReadOnly, taxonomy.Needs(hv.CapReadOnlyMem), func() { checkReadOnly(b) })
	It(textSizeZero, func() { checkSizeZero(b) })
}
