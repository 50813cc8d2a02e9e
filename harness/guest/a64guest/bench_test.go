package a64guest

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
)

// BenchmarkDecodeUcall is the host's share of a ucall: the exit checks,
// the walk of the record pointer through guest memory, and the parse.
func BenchmarkDecodeUcall(b *testing.B) {
	g, err := newGuest(emu.New(emu.Options{}), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ub := g.UserBlock(0)
	must(b, g.VM.WriteGPA(ub, record(uint64(guest.UcallSync), 0, 2, 1, 2)))
	e := ucallExit(UcallMMIOGPA, true, ub, 8)
	w := g.Walker()
	b.ResetTimer()
	for range b.N {
		if _, err := decodeUcall(e, 0, w, g.sites.get); err != nil {
			b.Fatal(err)
		}
	}
}
