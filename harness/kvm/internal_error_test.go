package kvm

import (
	"strings"
	"testing"
)

func TestInternalErrorDetail(t *testing.T) {
	// emulation_failure: flags, then insn_size and insn_bytes in memory
	// order (little endian words): ud2 = 0f 0b.
	ud2 := []uint64{emulationFlagInstructionByte, 0x0b0f02, 0}
	long := []uint64{emulationFlagInstructionByte, 0xffeeddccbbaa990f, 0x0102030405060708}
	cases := []struct {
		name string
		sub  uint32
		data []uint64
		want []string
	}{
		{"emulation with bytes", internalErrorEmulation, ud2, []string{"KVM_INTERNAL_ERROR_EMULATION", "instruction bytes 0f 0b"}},
		{"emulation, fifteen bytes", internalErrorEmulation, long, []string{"instruction bytes 99 aa bb cc dd ee ff 08 07 06 05 04 03 02 01"}},
		{"emulation, size above 15 clipped", internalErrorEmulation, []uint64{1, 0x0b0fff, 0}, []string{"instruction bytes 0f 0b 00"}},
		{"emulation without the flag", internalErrorEmulation, []uint64{0, 0x0b0f02, 0}, []string{"no instruction bytes"}},
		{"emulation, short data", internalErrorEmulation, []uint64{1}, []string{"no instruction bytes"}},
		{"emulation, zero bytes", internalErrorEmulation, []uint64{1, 0, 0}, []string{"instruction bytes (none)"}},
		{"simul ex", internalErrorSimulEx, nil, []string{"KVM_INTERNAL_ERROR_SIMUL_EX"}},
		{"delivery ev", internalErrorDeliveryEv, []uint64{0x80000b0e, 0x30}, []string{"KVM_INTERNAL_ERROR_DELIVERY_EV", "vectoring info 0x80000b0e", "exit reason 0x30"}},
		{"unexpected exit", internalErrorUnexpectedExit, []uint64{0x41, 1}, []string{"UNEXPECTED_EXIT_REASON", "hardware exit reason 0x41"}},
		{"unknown", 99, nil, []string{"unknown KVM internal error suberror 99"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := internalErrorDetail(c.sub, c.data)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("detail %q lacks %q", got, w)
				}
			}
		})
	}
}

// The data words come from kvm_run, which a misbehaving kernel or a
// corrupted mapping could fill with anything: formatting must not panic.
func FuzzInternalErrorDetail(f *testing.F) {
	f.Add(uint32(1), uint64(1), uint64(0x0b0f02), uint64(0), 3)
	f.Add(uint32(3), uint64(0), uint64(0), uint64(0), 1)
	f.Fuzz(func(t *testing.T, sub uint32, a, b, c uint64, n int) {
		data := []uint64{a, b, c}
		if n >= 0 && n < len(data) {
			data = data[:n]
		}
		if internalErrorDetail(sub, data) == "" {
			t.Fatal("empty detail")
		}
	})
}
