package memslot

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// BenchmarkUpdate does what tools/refbench/memslot.c does in C: with N
// one-page slots present (the sweep of memslot_perf_test: 1, 8, 64, 512,
// 4096 and the backend's maximum - 1), time a create, a move and a delete
// of one more slot, b.N rounds. The metrics are the medians per operation
// (create-ns, move-ns, delete-ns), which tools/refbench/compare-memslot.sh
// puts beside C's; setup-ms is the time the N slots took to create.
var benchSlots = flag.String("memslot.slots", "", "slot counts of BenchmarkUpdate, comma separated (default: the perf sweep)")

func BenchmarkUpdate(b *testing.B) {
	for _, name := range []string{"kvm", "emu"} {
		b.Run(name, func(b *testing.B) {
			h := openBench(b, name)
			counts, err := sweepCounts(*benchSlots, h.Caps().MaxMemslots)
			if err != nil {
				b.Fatal(err)
			}
			cache := map[int]*benchVM{}
			b.Cleanup(func() {
				for _, v := range cache {
					v.vm.Close()
					v.mem.Close()
				}
			})
			for _, n := range counts {
				b.Run(fmt.Sprintf("slots=%d", n), func(b *testing.B) { benchUpdate(b, h, n, cache) })
			}
		})
	}
}

func openBench(b *testing.B, name string) hv.Hypervisor {
	if name == "emu" {
		return emu.New(emu.Options{})
	}
	h, err := kvm.Open(kvm.Options{})
	if errors.Is(err, hv.ErrUnavailable) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

// benchVM is a VM with n one-page slots, made once per slot count: the
// testing package calls a benchmark function with b.N = 1 before the
// timed run, and the setup (minutes on a backend whose updates cost O(n))
// should not count twice.
type benchVM struct {
	vm    hv.VM
	mem   *hv.Memory
	setup time.Duration
}

func benchUpdate(b *testing.B, h hv.Hypervisor, n int, cache map[int]*benchVM) {
	v := cache[n]
	if v == nil {
		vm, err := h.NewVM(hv.VMConfig{})
		if err != nil {
			b.Fatal(err)
		}
		mem, err := hv.NewMemory(uint64(n+1)*hv.PageSize, hv.Anonymous)
		if err != nil {
			vm.Close()
			b.Fatal(err)
		}
		v = &benchVM{vm: vm, mem: mem}
		cache[n] = v
		a := area{gpa: perfGPA, pages: uint64(n), nslots: n, mem: mem}
		if v.setup, err = a.create(vm); err != nil {
			b.Fatal(err)
		}
	}
	// The setup's allocations (the slot map growing to n entries) can
	// leave a collection running beside the timed rounds, stealing the
	// CPU from the ioctls (on a one-vCPU guest at 32766 slots, up to 1.9x
	// C); the C reference has no collector.
	c := make([]time.Duration, 0, b.N)
	m := make([]time.Duration, 0, b.N)
	d := make([]time.Duration, 0, b.N)
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := probeRound(v.vm, uint32(n), v.mem, uint64(n)*hv.PageSize)
		if err != nil {
			b.Fatal(err)
		}
		c, m, d = append(c, t.create), append(m, t.move), append(d, t.delete)
	}
	b.StopTimer()
	b.ReportMetric(float64(median(c).Nanoseconds()), "create-ns")
	b.ReportMetric(float64(median(m).Nanoseconds()), "move-ns")
	b.ReportMetric(float64(median(d).Nanoseconds()), "delete-ns")
	b.ReportMetric(float64(v.setup.Microseconds())/1000, "setup-ms")
}
