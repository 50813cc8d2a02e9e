package kvm

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// BenchmarkARM64MMIORoundTrip: guest store to an unbacked address → host →
// guest, the run loop on the vCPU thread (arm64's counterpart of
// BenchmarkPIORoundTrip, and the cost of one arm64 ucall).
func BenchmarkARM64MMIORoundTrip(b *testing.B) {
	h := openARM64OrSkip(b)
	g := newA64Guest(b, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Mov(a64.X1, a64.Imm(a64MMIO))
		l := a.Here()
		a.Str(a64.X1, a64.Ptr(a64.X1, 0))
		a.B(l)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ResetTimer()
	err := g.vcpu.Do(func() error {
		for i := 0; i < b.N; i++ {
			e, err := g.vcpu.Run(ctx)
			if err != nil {
				return err
			}
			if e.Kind() != hv.ExitMMIO {
				return fmt.Errorf("exit %v, want mmio", e)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/exit")
}
