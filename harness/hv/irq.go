package hv

import "fmt"

// Interrupts is how host code and device models interrupt a guest. Each
// method may be called from any goroutine, also while the target vCPU
// runs: the interrupt is latched in the target's local APIC (IRR) and the
// vCPU is kicked, so a guest spinning or halted with interrupts enabled
// takes it at its next instruction boundary. Guest-visible behaviour is
// the xAPIC's: delivery through the IDT when RFLAGS.IF=1 and the vector's
// priority class is above the processor priority (TPR, ISR), ISR set until
// the guest writes EOI.
//
// A VM has interrupt controllers only when created with VMConfig.IRQChip;
// otherwise these methods fail with an error wrapping ErrUnsupported.
type Interrupts interface {
	// Interrupt raises a fixed-mode, edge-triggered interrupt with
	// vector (16..255) at the local APIC of vCPU id.
	Interrupt(vcpu int, vector uint8) error
	// SignalMSI delivers a message-signalled interrupt as a device's
	// memory write of data to addr: addr must be in 0xFEExxxxx with the
	// destination APIC ID in bits 19:12 (physical destination mode);
	// data's bits 7:0 are the vector and bits 10:8 the delivery mode
	// (only fixed, 0, is accepted).
	SignalMSI(addr uint64, data uint32) error
	// SetIRQLine drives input pin gsi of the I/O APIC high or low. What
	// the guest sees follows the pin's redirection entry, which the guest
	// programs: edge-triggered pins interrupt on a rising edge,
	// level-triggered pins while high and until EOI.
	SetIRQLine(gsi uint32, high bool) error
}

// MSI address and data fields (Intel SDM vol. 3, 11.11).
const (
	MSIAddrBase      = 0xfee00000
	MSIAddrMask      = 0xfff00000
	MSIDestShift     = 12
	MSIDestMask      = 0xff
	MSIDataVecMask   = 0xff
	MSIDataModeShift = 8
	MSIDataModeMask  = 0x7
	// IOAPICBase is the I/O APIC's default MMIO base; IOAPICPins its pin count.
	IOAPICBase = 0xfec00000
	IOAPICPins = 24
	// LAPICBase is the local APIC's default MMIO base.
	LAPICBase = 0xfee00000
)

// MSI is a decoded message-signalled interrupt.
type MSI struct {
	Dest   uint8
	Vector uint8
}

// DecodeMSI checks an MSI's address and data as SignalMSI accepts them.
func DecodeMSI(addr uint64, data uint32) (MSI, error) {
	if addr&MSIAddrMask != MSIAddrBase {
		return MSI{}, fmt.Errorf("MSI address %#x: not in the 0xfeexxxxx interrupt window", addr)
	}
	if mode := data >> MSIDataModeShift & MSIDataModeMask; mode != 0 {
		return MSI{}, fmt.Errorf("MSI data %#x: delivery mode %d, only fixed (0) is supported", data, mode)
	}
	m := MSI{Dest: uint8(addr >> MSIDestShift & MSIDestMask), Vector: uint8(data & MSIDataVecMask)}
	if m.Vector < 16 {
		return MSI{}, fmt.Errorf("MSI data %#x: vector %d is reserved (below 16)", data, m.Vector)
	}
	return m, nil
}

// CheckVector refuses the vectors a fixed interrupt cannot use (0-15:
// the APIC reports them as illegal).
func CheckVector(v uint8) error {
	if v < 16 {
		return fmt.Errorf("interrupt vector %d is reserved (below 16)", v)
	}
	return nil
}
