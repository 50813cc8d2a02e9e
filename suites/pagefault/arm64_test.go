package pagefault

import "testing"

// TestA64Expect pins the arm64 matrix to page_fault_test's expectations:
// a read-only slot turns a write with a syndrome into one MMIO exit and
// one without into a failed KVM_RUN, dirty logging sees writes only, a
// punched page reads zero, and pairs that are no stage-2 outcome declare
// no spec.
func TestA64Expect(t *testing.T) {
	kind := map[string]a64Kind{}
	for _, k := range a64Kinds {
		kind[k.name] = k
	}
	access := map[string]a64Access{}
	for _, a := range a64Accesses {
		access[a.name] = a
	}
	tests := []struct {
		kind, access string
		want         a64Outcome
	}{
		{"plain slot", "read64", a64Outcome{x1: a64Pattern, hostData: a64Pattern}},
		{"plain slot", "write64", a64Outcome{x1: a64Written, hostData: a64Written}},
		{"plain slot", "exec", a64Outcome{x1: a64FnValue, hostData: a64Pattern}},
		{"read-only slot", "read64", a64Outcome{x1: a64Pattern, hostData: a64Pattern}},
		{"read-only slot", "ld_preidx", a64Outcome{x1: a64Pattern, hostData: a64Pattern}},
		{"read-only slot", "write64", a64Outcome{x1: a64Written, hostData: a64Written, mmio: 1}},
		{"read-only slot", "st_preidx", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"dirty-logged slot", "read64", a64Outcome{x1: a64Pattern, hostData: a64Pattern}},
		{"dirty-logged slot", "st_preidx", a64Outcome{x1: a64Written, hostData: a64Written, dirty: true}},
		{"dirty-logged slot", "exec", a64Outcome{x1: a64FnValue, hostData: a64Pattern}},
		{"hole in the slot", "read64", a64Outcome{}},
		{"hole in the slot", "write64", a64Outcome{x1: a64Written, hostData: a64Written}},
		{"unbacked gpa", "read64", a64Outcome{x1: a64Pattern, hostData: a64Pattern, mmio: 1}},
		{"unbacked gpa", "write64", a64Outcome{x1: a64Written, hostData: a64Pattern, mmio: 2}},
		{"unbacked gpa", "ld_preidx", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"plain slot", "dc_zva", a64Outcome{}},
		{"read-only slot", "dc_zva", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"dirty-logged slot", "dc_zva", a64Outcome{dirty: true}},
		{"hole in the slot", "dc_zva", a64Outcome{}},
		{"unbacked gpa", "dc_zva", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"plain slot", "cas", a64Outcome{x1: a64Written, hostData: a64Written}},
		{"read-only slot", "cas", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"dirty-logged slot", "cas", a64Outcome{x1: a64Written, hostData: a64Written, dirty: true}},
		{"hole in the slot", "cas", a64Outcome{x1: a64Written, hostData: a64Written}},
		{"unbacked gpa", "cas", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		// CASALB replaces the low byte; CASPAL the data and the zero
		// doubleword after it.
		{"plain slot", "casb", a64Outcome{x1: 0x0123_4567_89ab_cd01, hostData: 0x0123_4567_89ab_cd01}},
		{"plain slot", "casp", a64Outcome{x1: a64Written, hostData: a64Written, hostHi: a64WrittenHi}},
		{"read-only slot", "casb", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"read-only slot", "casp", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"dirty-logged slot", "casb", a64Outcome{x1: 0x0123_4567_89ab_cd01, hostData: 0x0123_4567_89ab_cd01, dirty: true}},
		{"dirty-logged slot", "casp", a64Outcome{x1: a64Written, hostData: a64Written, hostHi: a64WrittenHi, dirty: true}},
		{"hole in the slot", "casb", a64Outcome{x1: 0x01, hostData: 0x01}},
		{"hole in the slot", "casp", a64Outcome{x1: a64Written, hostData: a64Written, hostHi: a64WrittenHi}},
		{"unbacked gpa", "casb", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
		{"unbacked gpa", "casp", a64Outcome{x1: a64Pattern, hostData: a64Pattern, failRun: true}},
	}
	for _, tt := range tests {
		k, ok1 := kind[tt.kind]
		a, ok2 := access[tt.access]
		if !ok1 || !ok2 {
			t.Fatalf("unknown pair %q %q", tt.kind, tt.access)
		}
		if got := a64Expect(k, a); got != tt.want {
			t.Errorf("%s: %s = %+v, want %+v", tt.kind, tt.access, got, tt.want)
		}
	}
	specs := 0
	for _, k := range a64Kinds {
		for _, a := range a64Accesses {
			if a64Expect(k, a).skip == "" {
				specs++
			}
		}
	}
	if specs != 43 {
		t.Errorf("%d data-page specs, want 43 (5 kinds × 9 accesses, less the fetches from a hole and from no slot)", specs)
	}
	for _, pair := range [][2]string{{"hole in the slot", "exec"}, {"unbacked gpa", "exec"}} {
		if got := a64Expect(kind[pair[0]], access[pair[1]]); got.skip == "" {
			t.Errorf("%s: %s declares a spec: %+v", pair[0], pair[1], got)
		}
	}
}
