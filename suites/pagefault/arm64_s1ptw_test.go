package pagefault

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
)

// TestA64PTExpect pins the S1PTW matrix to what KVM gives: a walk that
// reads a read-only table slot completes, one that must write the AF
// there or that reads no slot is an external abort injected into the
// guest (an instruction abort for a fetch), a dirty-logged table slot is
// dirty exactly when the walk wrote the AF, userfaultfd serves one fault
// per slot; AF clear without HA is the guest's Access flag fault; with
// hardware dirty state a write to the read-only DBM page clears AP[2] (a
// table write, as the AF's) and a read leaves it, and without DBM a
// write is the guest's permission fault with WnR=1; the pairs the matrix
// leaves out declare no spec.
func TestA64PTExpect(t *testing.T) {
	kind := map[string]a64PTKind{}
	for _, k := range a64PTKinds {
		kind[k.name] = k
	}
	access := map[string]a64Access{}
	for _, a := range append(a64Accesses, a64ATAccess) {
		access[a.name] = a
	}
	const (
		plain = "page tables in a plain slot"
		ro    = "page tables in a read-only slot"
		dirty = "page tables in a dirty-logged slot"
		none  = "page tables in no slot (unbacked)"
		uffd  = "page tables and data behind userfaultfd"
		duffd = "page tables and data dirty-logged and behind userfaultfd"
		ruffd = "page tables and data read-only and behind userfaultfd"
		dabt  = a64guest.ECDABTCurrent
		iabt  = a64guest.ECIABTCurrent
		data  = a64TestGVA + a64DataOff
		code  = a64TestGVA + a64CodeOff
	)
	tests := []struct {
		kind   string
		af     a64AF
		access string
		want   a64PTOutcome
	}{
		{plain, afSet, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true}},
		{plain, afHW, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true}},
		{plain, afFault, "read64", a64PTOutcome{ec: dabt, fsc: 0x0b, far: data, hostData: a64Pattern}},
		{plain, afFault, "exec", a64PTOutcome{ec: iabt, fsc: 0x0b, far: code, hostData: a64Pattern}},
		{ro, afSet, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true}},
		{ro, afSet, "exec", a64PTOutcome{x1: a64FnValue, hostData: a64Pattern, afAfter: true}},
		{ro, afHW, "read64", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{ro, afHW, "st_preidx", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{ro, afHW, "exec", a64PTOutcome{ec: iabt, fsc: 0x10, far: code, hostData: a64Pattern}},
		{dirty, afSet, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, dataDirty: true}},
		{dirty, afHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, ptDirty: true}},
		{dirty, afHW, "st_preidx", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptDirty: true, dataDirty: true}},
		{none, afSet, "read64", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{none, afSet, "exec", a64PTOutcome{ec: iabt, fsc: 0x10, far: code, hostData: a64Pattern}},
		{uffd, afSet, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, ptFaults: 1, dataFaults: 1}},
		{uffd, afHW, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptFaults: 1, dataFaults: 1}},
		{duffd, afHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, ptDirty: true, ptFaults: 1, dataFaults: 1}},
		{duffd, afSet, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, dataDirty: true, ptFaults: 1, dataFaults: 1}},
		{ruffd, afSet, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, ptFaults: 1, dataFaults: 1}},
		{ruffd, afSet, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptFaults: 1, dataFaults: 1, mmio: 1}},
		{ruffd, afSet, "st_preidx", a64PTOutcome{hostData: a64Pattern, afAfter: true, ptFaults: 1, failRun: true}},
		{ruffd, afHW, "exec", a64PTOutcome{ec: iabt, fsc: 0x10, far: code, hostData: a64Pattern, ptFaults: 1}},
		{ruffd, afSet, "dc_zva", a64PTOutcome{hostData: a64Pattern, afAfter: true, ptFaults: 1, failRun: true}},
		{dirty, afHW, "dc_zva", a64PTOutcome{hostData: 0, afAfter: true, ptDirty: true, dataDirty: true}},
		{plain, afFault, "dc_zva", a64PTOutcome{ec: dabt, fsc: 0x0b, far: data, hostData: a64Pattern}},
		{uffd, afSet, "at", a64PTOutcome{x1: a64TestGPA, hostData: a64Pattern, afAfter: true, ptFaults: 1}},
		{ro, afSet, "at", a64PTOutcome{x1: a64TestGPA, hostData: a64Pattern, afAfter: true}},
		{none, afSet, "at", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{plain, afSet, "cas", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true}},
		{plain, afFault, "cas", a64PTOutcome{ec: dabt, fsc: 0x0b, far: data, hostData: a64Pattern}},
		{ro, afSet, "cas", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true}},
		{ro, afHW, "cas", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{dirty, afHW, "cas", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptDirty: true, dataDirty: true}},
		{none, afSet, "cas", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		{uffd, afSet, "cas", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptFaults: 1, dataFaults: 1}},
		{duffd, afHW, "cas", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptDirty: true, dataDirty: true, ptFaults: 1, dataFaults: 1}},
		// page_fault_test's TEST_RO_MEMSLOT_NO_SYNDROME_AND_UFFD(guest_cas,
		// uffd_data_handler, 2): CAS's read is served, then its write
		// fails KVM_RUN (QEMU TCG reports the write first: declared).
		{ruffd, afSet, "cas", a64PTOutcome{hostData: a64Pattern, afAfter: true, ptFaults: 1, dataFaults: 1, failRun: true}},
		{ruffd, afSet, "casp", a64PTOutcome{hostData: a64Pattern, afAfter: true, ptFaults: 1, dataFaults: 1, failRun: true}},
		{plain, afSet, "casp", a64PTOutcome{x1: a64Written, hostData: a64Written, hostHi: a64WrittenHi, afAfter: true}},
		{dirty, afHW, "casb", a64PTOutcome{x1: 0x0123_4567_89ab_cd01, hostData: 0x0123_4567_89ab_cd01, afAfter: true, ptDirty: true, dataDirty: true}},
		{ro, afHW, "casp", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, hostData: a64Pattern}},
		// Hardware dirty state: a write to the read-only DBM page clears
		// AP[2] (a table write: the table page dirty, an external abort
		// in a read-only table slot, with WnR=0); a read leaves it.
		{plain, dbmHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmHW, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true}},
		{plain, dbmHW, "exec", a64PTOutcome{x1: a64FnValue, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmHW, "casp", a64PTOutcome{x1: a64Written, hostData: a64Written, hostHi: a64WrittenHi, afAfter: true}},
		{dirty, dbmHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{dirty, dbmHW, "ld_preidx", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{dirty, dbmHW, "st_preidx", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptDirty: true, dataDirty: true}},
		{dirty, dbmHW, "dc_zva", a64PTOutcome{afAfter: true, ptDirty: true, dataDirty: true}},
		{ro, dbmHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{ro, dbmHW, "write64", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, wnr: wnrRead, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{ro, dbmHW, "cas", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, wnr: wnrRead, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{none, dbmHW, "write64", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, wnr: wnrRead, hostData: a64Pattern}},
		{none, dbmHW, "exec", a64PTOutcome{ec: iabt, fsc: 0x10, far: code, wnr: wnrRead, hostData: a64Pattern}},
		{uffd, dbmHW, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptFaults: 1, dataFaults: 1}},
		{uffd, dbmHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true, ptFaults: 1, dataFaults: 1}},
		{duffd, dbmHW, "write64", a64PTOutcome{x1: a64Written, hostData: a64Written, afAfter: true, ptDirty: true, dataDirty: true, ptFaults: 1, dataFaults: 1}},
		{duffd, dbmHW, "exec", a64PTOutcome{x1: a64FnValue, hostData: a64Pattern, afAfter: true, roAfter: true, ptFaults: 1, dataFaults: 1}},
		{ruffd, dbmHW, "write64", a64PTOutcome{ec: dabt, fsc: 0x10, far: data, wnr: wnrRead, hostData: a64Pattern, afAfter: true, roAfter: true, ptFaults: 1}},
		{ruffd, dbmHW, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true, ptFaults: 1, dataFaults: 1}},
		// Without DBM a write is the guest's permission fault (level 3).
		{plain, dbmOff, "read64", a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmOff, "exec", a64PTOutcome{x1: a64FnValue, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmOff, "write64", a64PTOutcome{ec: dabt, fsc: 0x0f, far: data, wnr: wnrWrite, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmOff, "dc_zva", a64PTOutcome{ec: dabt, fsc: 0x0f, far: data, wnr: wnrWrite, hostData: a64Pattern, afAfter: true, roAfter: true}},
		{plain, dbmOff, "casb", a64PTOutcome{ec: dabt, fsc: 0x0f, far: data, wnr: wnrWrite, hostData: a64Pattern, afAfter: true, roAfter: true}},
	}
	for _, tt := range tests {
		k, ok1 := kind[tt.kind]
		a, ok2 := access[tt.access]
		if !ok1 || !ok2 {
			t.Fatalf("unknown case %q %q", tt.kind, tt.access)
		}
		if got := a64PTExpect(k, tt.af, a); got != tt.want {
			t.Errorf("%s, %s: %s = %+v, want %+v", tt.kind, a64AFNames[tt.af], tt.access, got, tt.want)
		}
	}
	specs := 0
	for _, k := range a64PTKinds {
		for _, af := range a64AFs {
			for _, a := range append(a64Accesses, a64ATAccess) {
				if a64PTExpect(k, af, a).skip == "" {
					specs++
				}
			}
		}
	}
	if specs != 205 {
		t.Errorf("%d S1PTW specs, want 205 (22 kind×row pairs × 9 accesses: AF set in 7 kinds, hardware AF in 6, the AF fault in 1, DBM in 7, no DBM in 1; and AT with AF set in the 7 kinds)", specs)
	}
	for _, af := range []a64AF{afHW, dbmHW, dbmOff} {
		if got := a64PTExpect(kind[plain], af, access["at"]); got.skip == "" {
			t.Errorf("AT with %s declares a spec: %+v", a64AFNames[af], got)
		}
	}
	for _, c := range []struct {
		kind string
		af   a64AF
	}{{ro, afFault}, {none, afHW}, {uffd, afFault}, {ro, dbmOff}, {dirty, dbmOff}} {
		if got := a64PTExpect(kind[c.kind], c.af, access["read64"]); got.skip == "" {
			t.Errorf("%s, %s declares a spec: %+v", c.kind, a64AFNames[c.af], got)
		}
	}
}
