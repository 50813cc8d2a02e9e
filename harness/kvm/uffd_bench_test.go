package kvm

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The same two loops as tools/refbench/uffd.c, so `make bench` can compare
// the Go missing-page handlers with C. Each first touch of a page is a
// MISSING fault answered with UFFDIO_COPY; the handler does no work, as the
// C handler copies a page filled once.
//
// Where the toucher and the reader run decides the cost: on one CPU a
// fault is a context switch (~5 µs here), across CPUs a wake-up IPI, which
// kvm-pvm makes ~15× dearer. Compare both sides under the same taskset
// (and GOMAXPROCS=2, which taskset would otherwise lower to 1).

func noopHandler(hv.Fault, []byte) error { return nil }

// requireTwoPs skips where a host goroutine's fault cannot be served
// promptly (see hostTouchNeedsTwoPs in uffd.go).
func requireTwoPs(tb testing.TB) {
	tb.Helper()
	if runtime.GOMAXPROCS(0) < hostTouchNeedsTwoPs {
		tb.Skip("GOMAXPROCS=1: a host goroutine blocked on a missing page holds the only P the handler needs")
	}
}

// BenchmarkUffdFirstTouchHost: a host goroutine reads one byte of each of
// b.N pages of a demand-paged slot.
func BenchmarkUffdFirstTouchHost(b *testing.B) {
	h := openOrSkip(b)
	requireUserfault(b, h)
	requireTwoPs(b)
	vm, err := h.CreateVM(hv.VMConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	mem, err := hv.NewMemory(uint64(b.N)*hv.PageSize, hv.Anonymous)
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	if err := vm.SetMemslot(hv.Memslot{Slot: 1, GPA: uffdDataGPA, Size: mem.Size(), Memory: mem}); err != nil {
		b.Fatal(err)
	}
	if err := vm.SetMissingPageHandler(1, noopHandler); err != nil {
		b.Fatal(err)
	}
	defer vm.SetMissingPageHandler(1, nil)
	p := mem.Bytes()
	sum := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum += int(p[i*hv.PageSize])
	}
	b.StopTimer()
	if f := vm.MissingPageFaults(); f != uint64(b.N) || sum != 0 {
		b.Fatalf("%d faults for %d pages (sum %d)", f, b.N, sum)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/touch")
}

// BenchmarkUffdFirstTouchGuest: a CPL0 guest reads one quadword of each of
// b.N pages of a demand-paged slot in one Run.
func BenchmarkUffdFirstTouchGuest(b *testing.B) {
	h := openOrSkip(b)
	requireUserfault(b, h)
	g := newUffdGuest(b, h, b.N, hv.Anonymous, touchProgram(b, b.N, false))
	if err := g.vm.SetMissingPageHandler(1, noopHandler); err != nil {
		b.Fatal(err)
	}
	defer g.vm.SetMissingPageHandler(1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ResetTimer()
	e, err := g.vcpu.Run(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if e.Kind() != hv.ExitIO {
		b.Fatalf("exit %v", e)
	}
	if f := g.vm.MissingPageFaults(); f != uint64(b.N) {
		b.Fatalf("%d faults for %d pages", f, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/touch")
}
