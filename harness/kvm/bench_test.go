package kvm

import (
	"context"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The same guest and ioctls as tools/refbench/refbench.c, so `make bench`
// can compare the Go harness with C.
var pioLoop = []byte{0xe6, 0x10, 0xeb, 0xfc} // loop: out 0x10, al; jmp loop

func benchPIO(b *testing.B, inDo bool) {
	h := openOrSkip(b)
	g := newRawGuest(b, h, hv.VMConfig{}, pioLoop)
	// A deadline, as specs have: no per-Run default watchdog timer.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	loop := func() error {
		for i := 0; i < b.N; i++ {
			e, err := g.vcpu.Run(ctx)
			if err != nil {
				return err
			}
			if e.Kind() != hv.ExitIO {
				b.Fatalf("exit %v", e)
			}
		}
		return nil
	}
	for i := 0; i < 100; i++ {
		if _, err := g.vcpu.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var err error
	if inDo {
		err = g.vcpu.Do(loop)
	} else {
		err = loop()
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/exit")
}

// BenchmarkPIORoundTrip: guest OUT → host → guest, the run loop on the vCPU thread.
func BenchmarkPIORoundTrip(b *testing.B) { benchPIO(b, true) }

// BenchmarkPIORoundTripHandoff: the same, each Run handed to the vCPU thread.
func BenchmarkPIORoundTripHandoff(b *testing.B) { benchPIO(b, false) }

// BenchmarkVMCreateDestroy: VM + one vCPU (kvm_run mmap; x86:
// SET_CPUID2, arm64: KVM_ARM_VCPU_INIT), then close.
func BenchmarkVMCreateDestroy(b *testing.B) {
	h := openAnyOrSkip(b)
	for i := 0; i < b.N; i++ {
		vm, err := h.CreateVM(hv.VMConfig{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := vm.CreateVCPU(0); err != nil {
			b.Fatal(err)
		}
		if err := vm.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
