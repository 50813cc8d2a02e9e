// Package corpus holds the guest programs that differential tests run on
// two backends: a curated table covering each instruction class of the
// harness/asm subset in every size and operand form, and a seeded random
// program generator. Programs are bodies only: each harness adds its own
// way to end (a ucall, a port write) and its own initial state.
//
// Conventions every harness provides: RBP points DataPtrOffset bytes into a
// page-aligned data window of DataLen bytes; RSI and RDI point 0x40 bytes
// below and above RBP; RSP is a usable stack; R15 is left alone.
package corpus

import (
	"fmt"
	"math/rand"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Data window geometry.
const (
	DataLen          = 0x2000 // two pages, so accesses can straddle a boundary
	DataPtrOffset    = 0x200  // RBP = window + DataPtrOffset
	DataPageBoundary = 0x1000
)

// Program is one instruction (or a short sequence) run on both backends
// from the same state.
type Program struct {
	Name string
	// Op and Size name the flag-defining instruction, so flags the
	// architecture leaves undefined can be masked.
	Op   x86asm.Op
	Size int
	// Count is the masked shift/rotate count, when it matters for flags.
	Count func(r *hv.Regs) int
	// Fix adjusts a random initial state (e.g. a small divisor).
	Fix   func(r *hv.Regs, rnd *rand.Rand)
	Build func(a *asm.Assembler)
	// DefinedFlags, when non-zero, is the set of RFLAGS bits to compare
	// (random programs compute it); otherwise Op/Size/Count decide.
	DefinedFlags uint64
	// KVMDeviation, when set, says why this host class's KVM is known to
	// differ from the architecture on this program.
	KVMDeviation string
}

// Outcome is what a run leaves behind.
type Outcome struct {
	Exit string // how the program ended, in backend-neutral words
	Regs hv.Regs
	Data []byte
}

// EdgeValues are operands that exercise carries, overflows and sign changes.
var EdgeValues = []uint64{0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
	0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 1<<63 - 1, 1 << 63, ^uint64(0), ^uint64(0) - 1}

// RandValue is an edge value, a small number or a random 64-bit value.
func RandValue(rnd *rand.Rand) uint64 {
	switch rnd.Intn(4) {
	case 0:
		return EdgeValues[rnd.Intn(len(EdgeValues))]
	case 1:
		return uint64(rnd.Intn(64))
	}
	return rnd.Uint64()
}

// RandState fills all 16 GPRs and the arithmetic flags with random values;
// the caller then sets RSP, RBP, RSI, RDI, R15 and RIP for its harness.
// IF is set: kvm_pvm runs ring-3 code with IF=1 whatever the guest asked,
// so PUSHF would differ otherwise.
func RandState(rnd *rand.Rand) hv.Regs {
	var r hv.Regs
	for i := 0; i < 16; i++ {
		r.SetGPR(i, RandValue(rnd))
	}
	r.RFLAGS = hv.FlagsFixed | hv.FlagIF | rnd.Uint64()&hv.FlagsArith
	return r
}

// UndefinedFlagsFunc returns the RFLAGS bits the architecture leaves
// undefined after op of the given size and count (harness/emu provides it).
type UndefinedFlagsFunc func(op x86asm.Op, count, size int) uint64

// Compare describes how b differs from a after p ran from state in, or
// returns "" when they agree on the exit, every GPR, RIP, the defined
// flags and the data window. It names the first differing byte.
func Compare(p Program, in *hv.Regs, a, b Outcome, nameA, nameB string, undefined UndefinedFlagsFunc) string {
	var msg string
	if a.Exit != b.Exit {
		msg += fmt.Sprintf("exit: %s %s, %s %s\n", nameA, a.Exit, nameB, b.Exit)
	}
	for i := 0; i < 16; i++ {
		if a.Regs.GPR(i) != b.Regs.GPR(i) {
			msg += fmt.Sprintf("%s: %s %#x, %s %#x\n", hv.GPRNames[i], nameA, a.Regs.GPR(i), nameB, b.Regs.GPR(i))
		}
	}
	if a.Regs.RIP != b.Regs.RIP {
		msg += fmt.Sprintf("rip: %s %#x, %s %#x\n", nameA, a.Regs.RIP, nameB, b.Regs.RIP)
	}
	cnt := 0
	if p.Count != nil {
		cnt = p.Count(in)
	}
	mask := uint64(hv.FlagsArith | hv.FlagDF)
	switch {
	case p.DefinedFlags != 0:
		mask = p.DefinedFlags &^ definedMarker
	case undefined != nil:
		mask &^= undefined(p.Op, cnt, p.Size)
	}
	if (a.Regs.RFLAGS^b.Regs.RFLAGS)&mask != 0 {
		msg += fmt.Sprintf("rflags: %s %#x, %s %#x (compared bits %#x)\n", nameA, a.Regs.RFLAGS, nameB, b.Regs.RFLAGS, mask)
	}
	for i := range a.Data {
		if i < len(b.Data) && a.Data[i] != b.Data[i] {
			msg += fmt.Sprintf("data[%#x]: %s %#x, %s %#x\n", i, nameA, a.Data[i], nameB, b.Data[i])
			break
		}
	}
	return msg
}
