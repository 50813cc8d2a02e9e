package pagereport

import (
	"flag"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

var benchMiB = flag.Uint64("pagereport.mib", 64, "memory BenchmarkDiscard touches and reports per op")

// BenchmarkDiscard is the device's side of a report: chains of Capacity
// 2 MiB ranges over touched memory, posted through the registers and
// completed, timed; touching the memory again before each op is not.
// tools/refbench/madvise.c is the same discard as a bare C loop.
func BenchmarkDiscard(b *testing.B) {
	for _, backing := range []hv.Backing{hv.Anonymous, hv.Memfd} {
		b.Run(backing.String(), func(b *testing.B) {
			size := *benchMiB << 20
			vm := newFakeVMRAM(b, backing, size, false)
			h := newDriver(b, vm, Config{})
			if !h.setup(features, DefaultQueueSize, 0) {
				b.Fatal("setup refused")
			}
			ram := vm.ram()
			const rng = 2 << 20
			chain := make([]Desc, 0, Capacity)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for off := 0; off < len(ram); off += hv.PageSize {
					ram[off] = 1
				}
				b.StartTimer()
				for off := uint64(0); off < size; off += rng {
					chain = append(chain, Desc{Addr: ramGPA + off, Len: rng})
					if len(chain) == Capacity || off+rng == size {
						h.post(chain...)
						chain = chain[:0]
					}
				}
			}
			b.StopTimer()
			if s := h.d.Stats(); s.BytesDiscarded != uint64(b.N)*size {
				b.Fatalf("discarded %d bytes, want %d", s.BytesDiscarded, uint64(b.N)*size)
			}
			b.ReportMetric(float64(size>>20)*float64(b.N)/b.Elapsed().Seconds(), "MiB/s")
		})
	}
}
