package asm_test

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// A guest that increments a counter RCX times and halts, shown as a
// listing.
func Example() {
	a := asm.New(0x1000)
	counter := a.NewLabel()
	loop := a.Here()
	a.Lock().Add(asm.Rel(8, counter), asm.Imm(1))
	a.Dec(asm.RCX)
	a.Jcc(asm.CondNZ, loop)
	a.Hlt()
	a.Align(8, 0)
	a.Bind(counter)
	a.Quad(0)

	lines, err := a.Listing()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range lines {
		fmt.Printf("%#x  %s\n", l.PC, l.Text)
	}
	// Output:
	// 0x1000  lock add qword ptr [rip+0x7], 0x1  # 0x1010
	// 0x1009  dec rcx
	// 0x100c  jnz 0x1000
	// 0x100e  hlt
	// 0x100f  .byte 0x00
	// 0x1010  .quad 0x0
}
