package a64_test

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// A tiny arm64 guest: it points SP at its stack, reports a value to the
// host by storing it to an unmapped MMIO address (the ucall exit, as KVM's
// arm64 selftests do), then powers off with PSCI SYSTEM_OFF over HVC.
func Example() {
	const (
		mmioUcall  = 0xA000_0000 // unbacked guest physical page: a KVM_EXIT_MMIO
		stackTop   = 0x4001_0000
		systemOff  = 0x8400_0008 // PSCI 0.2 SYSTEM_OFF function ID
		ucallValue = 42
	)
	a := a64.New(0x4000_0000)
	stack := a.NewLabel()
	a.LdrLabel(a64.X1, stack)
	a.Mov(a64.SP, a64.X1)
	a.Mov(a64.X0, a64.Imm(ucallValue))
	a.Mov(a64.X2, a64.Imm(mmioUcall))
	a.Str(a64.X0, a64.Ptr(a64.X2, 0))
	a.Mov(a64.W0, a64.Imm(systemOff))
	a.Hvc(0)
	hang := a.Here()
	a.B(hang)
	a.Align(8)
	a.Bind(stack)
	a.Quad(stackTop)

	lines, err := a.Listing()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range lines {
		fmt.Printf("%#x  %s\n", l.PC, l.Text)
	}
	// Output:
	// 0x40000000  ldr x1, 0x40000028
	// 0x40000004  mov sp, x1
	// 0x40000008  mov x0, #0x2a
	// 0x4000000c  mov x2, #0xa0000000
	// 0x40000010  str x0, [x2]
	// 0x40000014  mov w0, #0x8
	// 0x40000018  movk w0, #0x8400, lsl #16
	// 0x4000001c  hvc #0x0
	// 0x40000020  b 0x40000020
	// 0x40000024  .balign 8
	// 0x40000028  .quad 0x40010000
}
