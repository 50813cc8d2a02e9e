package kvm

import (
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func TestCPUIDConversion(t *testing.T) {
	cases := []struct {
		name string
		kvm  cpuidEntry2
		hv   hv.CPUIDEntry
		back cpuidEntry2 // what converting hv back gives
	}{
		{"unindexed",
			cpuidEntry2{function: 1, eax: 0x806c1, ebx: 2, ecx: 3, edx: 4},
			hv.CPUIDEntry{Function: 1, EAX: 0x806c1, EBX: 2, ECX: 3, EDX: 4},
			cpuidEntry2{function: 1, eax: 0x806c1, ebx: 2, ecx: 3, edx: 4}},
		{"indexed",
			cpuidEntry2{function: 7, index: 1, flags: cpuidFlagIndexed, eax: 9},
			hv.CPUIDEntry{Function: 7, Index: 1, Indexed: true, EAX: 9},
			cpuidEntry2{function: 7, index: 1, flags: cpuidFlagIndexed, eax: 9}},
		{"stale index of an unindexed leaf is dropped",
			cpuidEntry2{function: 0xa, index: 5},
			hv.CPUIDEntry{Function: 0xa},
			cpuidEntry2{function: 0xa}},
		{"obsolete stateful flags are dropped",
			cpuidEntry2{function: 2, flags: 1<<1 | 1<<2, eax: 1},
			hv.CPUIDEntry{Function: 2, EAX: 1},
			cpuidEntry2{function: 2, eax: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fromKVMCPUID(c.kvm); got != c.hv {
				t.Errorf("from KVM: %+v, want %+v", got, c.hv)
			}
			if got := toKVMCPUID(c.hv); got != c.back {
				t.Errorf("to KVM: %+v, want %+v", got, c.back)
			}
		})
	}
}

func TestCPUIDTableChecks(t *testing.T) {
	pmu := hv.CPUID{{Function: 0}, {Function: 7, Index: 0, Indexed: true}, {Function: 7, Index: 1, Indexed: true}}
	pmu.SetPMU(hv.PMULeaf{Version: 2, GPCounters: 4, GPWidth: 48, FixedCounters: 3, FixedWidth: 48, EventsLen: 7})
	es, err := cpuidTable(pmu)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[3].function != hv.CPUIDLeafPMU || es[3].eax&0xff != 2 {
		t.Fatalf("table %+v", es)
	}
	bad := []struct {
		name string
		t    hv.CPUID
		want string
	}{
		{"duplicate leaf", hv.CPUID{{Function: 1}, {Function: 1, EAX: 1}}, "appears twice"},
		{"duplicate index", hv.CPUID{{Function: 4, Index: 2, Indexed: true}, {Function: 4, Index: 2, Indexed: true}}, "appears twice"},
		{"too many", make(hv.CPUID, maxCPUIDEntries+1), "at most"},
	}
	for _, b := range bad {
		if _, err := cpuidTable(b.t); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
}
