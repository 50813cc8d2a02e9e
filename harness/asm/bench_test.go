package asm_test

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// BenchmarkAssemble builds and assembles a 200-instruction program drawn
// from all families (so with a realistic mix of memory forms, immediates
// and label references).
func BenchmarkAssemble(b *testing.B) {
	all := allCases()
	prog := make([]tc, 200)
	for i := range prog {
		prog[i] = all[i*len(all)/len(prog)]
	}
	b.ReportAllocs()
	for b.Loop() {
		a := asm.New(0x1000)
		for i := range prog {
			emitCase(a, &prog[i])
		}
		if _, err := a.Assemble(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListing measures the listing of the same program, which
// resolves Go source positions and disassembles every instruction.
func BenchmarkListing(b *testing.B) {
	all := allCases()
	a := asm.New(0x1000)
	for i := 0; i < 200; i++ {
		emitCase(a, &all[i*len(all)/200])
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Listing(); err != nil {
			b.Fatal(err)
		}
	}
}
