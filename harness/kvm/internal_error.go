package kvm

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// internalErrorNames names KVM's KVM_INTERNAL_ERROR_* suberrors.
var internalErrorNames = map[uint32]string{
	internalErrorEmulation:      "KVM_INTERNAL_ERROR_EMULATION (KVM's instruction emulator failed)",
	internalErrorSimulEx:        "KVM_INTERNAL_ERROR_SIMUL_EX (unexpected simultaneous exceptions)",
	internalErrorDeliveryEv:     "KVM_INTERNAL_ERROR_DELIVERY_EV (unexpected exit while delivering an event)",
	internalErrorUnexpectedExit: "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON (unexpected hardware exit reason)",
}

// maxInsnBytes is the size of kvm_run.emulation_failure.insn_bytes.
const maxInsnBytes = 15

// internalErrorDetail turns a KVM_EXIT_INTERNAL_ERROR into words: the
// suberror's name and, for an emulation failure whose flags say so, the
// instruction bytes KVM could not emulate. data is kvm_run.internal.data
// (for an emulation failure, data[0] is emulation_failure.flags and
// data[1..2] hold insn_size and insn_bytes, in memory order).
func internalErrorDetail(suberror uint32, data []uint64) string {
	name, ok := internalErrorNames[suberror]
	if !ok {
		name = fmt.Sprintf("unknown KVM internal error suberror %d", suberror)
	}
	var b strings.Builder
	b.WriteString(name)
	switch suberror {
	case internalErrorEmulation:
		if len(data) >= 3 && data[0]&emulationFlagInstructionByte != 0 {
			var raw [16]byte
			binary.LittleEndian.PutUint64(raw[0:], data[1])
			binary.LittleEndian.PutUint64(raw[8:], data[2])
			n := min(int(raw[0]), maxInsnBytes)
			fmt.Fprintf(&b, "; instruction bytes % x", raw[1:1+n])
			if n == 0 {
				b.WriteString("(none)")
			}
		} else {
			b.WriteString("; no instruction bytes (KVM gave none)")
		}
	case internalErrorDeliveryEv:
		if len(data) >= 2 {
			fmt.Fprintf(&b, "; vectoring info %#x, hardware exit reason %#x", data[0], data[1])
		}
	case internalErrorUnexpectedExit:
		if len(data) >= 1 {
			fmt.Fprintf(&b, "; hardware exit reason %#x", data[0])
		}
	}
	return b.String()
}
