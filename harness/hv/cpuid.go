package hv

import (
	"fmt"
	"sort"
)

// CPUIDEntry is one CPUID leaf (function, index) and the registers it
// returns, as struct kvm_cpuid_entry2 holds it.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	// Indexed says the leaf depends on ECX (KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	// otherwise Index is ignored when the guest asks.
	Indexed            bool
	EAX, EBX, ECX, EDX uint32
}

// CPUID is a vCPU's CPUID table: what the guest's cpuid instruction
// answers. A spec reads a vCPU's table, edits it (the PMU's shape, a hidden
// feature) and sets it back before the first Run; on KVM that is
// KVM_SET_CPUID2, and the emu answers from the same table.
type CPUID []CPUIDEntry

// Lookup returns the entry the guest gets for cpuid(function, index):
// an indexed entry must match index, an unindexed one matches any.
func (t CPUID) Lookup(function, index uint32) (CPUIDEntry, bool) {
	for _, e := range t {
		if e.Function == function && (!e.Indexed || e.Index == index) {
			return e, true
		}
	}
	return CPUIDEntry{}, false
}

// Set replaces the entry with e's function (and index, when indexed), or
// adds it.
func (t *CPUID) Set(e CPUIDEntry) {
	for i, o := range *t {
		if o.Function == e.Function && (!e.Indexed || o.Index == e.Index) {
			(*t)[i] = e
			return
		}
	}
	*t = append(*t, e)
	sort.SliceStable(*t, func(i, j int) bool {
		a, b := (*t)[i], (*t)[j]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		return a.Index < b.Index
	})
}

// Remove drops the entries of function (all indices).
func (t *CPUID) Remove(function uint32) {
	out := (*t)[:0]
	for _, e := range *t {
		if e.Function != function {
			out = append(out, e)
		}
	}
	*t = out
}

// Clone returns a copy the caller may edit.
func (t CPUID) Clone() CPUID { return append(CPUID(nil), t...) }

// CPUID leaves and bits the harness reads or edits.
const (
	CPUIDLeafFeatures = 0x1 // EDX/ECX feature flags
	CPUIDLeafPMU      = 0xa // architectural performance monitoring
	CPUID1ECXHyper    = 1 << 31
	CPUID1EDXAPIC     = 1 << 9
	CPUID1ECXX2APIC   = 1 << 21
	CPUID1ECXPDCM     = 1 << 15 // IA32_PERF_CAPABILITIES exists
)

// PMU events of CPUID.0AH:EBX, a set bit meaning the event is NOT available.
const (
	PMUEventCoreCycles     = 0
	PMUEventInstructions   = 1
	PMUEventRefCycles      = 2
	PMUEventLLCRefs        = 3
	PMUEventLLCMisses      = 4
	PMUEventBranches       = 5
	PMUEventBranchMisses   = 6
	PMUEventTopdownSlots   = 7
	PMUArchEvents          = 8 // events CPUID.0AH can describe here
	pmuEventMaskLenShift   = 24
	pmuGPCountersShift     = 8
	pmuGPWidthShift        = 16
	pmuFixedWidthShift     = 5
	pmuFixedCountersBitsLo = 0x1f
)

// PMULeaf is CPUID leaf 0xA decoded.
type PMULeaf struct {
	Version       int
	GPCounters    int
	GPWidth       int
	FixedCounters int
	FixedWidth    int
	// EventsLen is how many bits of Unavailable are meaningful.
	EventsLen int
	// Unavailable has bit i set when architectural event i is not counted.
	Unavailable uint32
}

// PMU decodes leaf 0xA (all zero: no PMU).
func (t CPUID) PMU() PMULeaf {
	e, ok := t.Lookup(CPUIDLeafPMU, 0)
	if !ok {
		return PMULeaf{}
	}
	return DecodePMULeaf(e)
}

// DecodePMULeaf decodes the registers of leaf 0xA.
func DecodePMULeaf(e CPUIDEntry) PMULeaf {
	p := PMULeaf{
		Version:     int(e.EAX & 0xff),
		GPCounters:  int(e.EAX >> pmuGPCountersShift & 0xff),
		GPWidth:     int(e.EAX >> pmuGPWidthShift & 0xff),
		EventsLen:   int(e.EAX >> pmuEventMaskLenShift & 0xff),
		Unavailable: e.EBX,
	}
	if p.Version > 1 {
		p.FixedCounters = int(e.EDX & pmuFixedCountersBitsLo)
		p.FixedWidth = int(e.EDX >> pmuFixedWidthShift & 0xff)
	}
	return p
}

// Entry encodes p as leaf 0xA.
func (p PMULeaf) Entry() CPUIDEntry {
	e := CPUIDEntry{Function: CPUIDLeafPMU}
	e.EAX = uint32(p.Version&0xff) | uint32(p.GPCounters&0xff)<<pmuGPCountersShift |
		uint32(p.GPWidth&0xff)<<pmuGPWidthShift | uint32(p.EventsLen&0xff)<<pmuEventMaskLenShift
	e.EBX = p.Unavailable
	if p.Version > 1 {
		e.EDX = uint32(p.FixedCounters)&pmuFixedCountersBitsLo | uint32(p.FixedWidth&0xff)<<pmuFixedWidthShift
	}
	return e
}

// SetPMU replaces leaf 0xA with p.
func (t *CPUID) SetPMU(p PMULeaf) { t.Set(p.Entry()) }

func (p PMULeaf) String() string {
	if p.Version == 0 {
		return "no PMU"
	}
	return fmt.Sprintf("PMU v%d: %d GP counters × %d bits, %d fixed × %d bits, events unavailable %#x/%d",
		p.Version, p.GPCounters, p.GPWidth, p.FixedCounters, p.FixedWidth, p.Unavailable, p.EventsLen)
}
