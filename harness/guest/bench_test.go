package guest_test

import (
	"fmt"
	"testing"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
)

// BenchmarkNew is the cost of a standard guest per spec: page tables for
// all of memory (4 KiB pages), descriptor tables and runtime. At 1 GiB the
// page-table pool grows beyond its first chunk.
func BenchmarkNew(b *testing.B) {
	h := emu.New(emu.Options{})
	for _, mem := range []uint64{guest.DefaultMemSize, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", mem>>20), func(b *testing.B) {
			for b.Loop() {
				g, err := guest.New(h, guest.Config{MemSize: mem})
				if err != nil {
					b.Fatal(err)
				}
				g.Close()
			}
		})
	}
}

// BenchmarkAtomics is the host side of a guest/host handshake word.
func BenchmarkAtomics(b *testing.B) {
	g, err := guest.New(emu.New(emu.Options{}), guest.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	for b.Loop() {
		v, _ := g.Load64(guest.DataBase)
		if _, err := g.CAS64(guest.DataBase, v, v+1); err != nil {
			b.Fatal(err)
		}
	}
}
