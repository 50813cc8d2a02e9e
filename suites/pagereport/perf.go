package pagereport

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// Parameters of the perf spec (--param name=value).
const (
	paramBlocks  = "pagereport.perf.blocks"  // 2 MiB blocks reported per sample [64]
	paramSamples = "pagereport.perf.samples" // samples [3]
)

// perfParams reads the perf spec's parameters.
func perfParams(b *framework.Backend) (blocks, samples int) {
	GinkgoHelper()
	vals := map[string]int{paramBlocks: 64, paramSamples: 3}
	for name := range vals {
		if b.Env == nil {
			break
		}
		if s, ok := b.Env.Params[name]; ok {
			v, err := strconv.Atoi(s)
			Expect(err == nil && v > 0).To(BeTrue(), "--param %s=%q: want a positive integer", name, s)
			vals[name] = v
		}
	}
	return vals[paramBlocks], vals[paramSamples]
}

// perfSpecs measures reclaim (guest free to host discard, MiB/s), the
// device's discard alone, and what the guest pays per page when it
// touches reported memory again, beside the first touch of fresh memory.
func perfSpecs(b *framework.Backend) {
	It("reclaim rate and re-touch cost", func(ctx SpecContext) {
		blocks, samples := perfParams(b)
		Expect(blocks%pagereport.HighWater).To(BeZero(), "--param %s: a multiple of %d, so every block is reported", paramBlocks, pagereport.HighWater)
		exp := gmeasure.NewExperiment(fmt.Sprintf("free page reporting, %d MiB", blocks*block>>20))
		exp.Sample(func(int) {
			r := newRig(b, rigConfig{blocks: blocks, script: script(
				op(pagereport.OpInit, 0, 0),
				op(pagereport.OpSync, 0, 0),
				ops(pagereport.OpAlloc, 0, blocks, touched),
				op(pagereport.OpSync, 0, 1),
				ops(pagereport.OpFree, 0, blocks, 0),
				op(pagereport.OpSync, 0, 2),
				ops(pagereport.OpAlloc, 0, blocks, touched),
				op(pagereport.OpSync, 0, 3),
			)})
			at := map[uint64]time.Time{}
			r.runSyncs(ctx, func(u *guest.Ucall) { at[syncArg(u)] = time.Now() })
			s := r.dev.Stats()
			Expect(s.BytesDiscarded).To(BeEquivalentTo(blocks * block))
			mib := float64(blocks*block) / (1 << 20)
			pages := float64(blocks * pagesPer)
			exp.RecordValue("reclaim, guest free to host discard", mib/at[2].Sub(at[1]).Seconds(), gmeasure.Units("MiB/s"), gmeasure.Precision(0))
			exp.RecordValue("device discard", mib/s.DiscardTime.Seconds(), gmeasure.Units("MiB/s"), gmeasure.Precision(0))
			exp.RecordValue("first touch per page", float64(at[1].Sub(at[0]).Nanoseconds())/pages, gmeasure.Units("ns"), gmeasure.Precision(0))
			exp.RecordValue("re-touch of reported memory per page", float64(at[3].Sub(at[2]).Nanoseconds())/pages, gmeasure.Units("ns"), gmeasure.Precision(0))
		}, gmeasure.SamplingConfig{N: samples, Duration: 5 * time.Minute})
		AddReportEntry(exp.Name, exp)
		for _, m := range []string{"reclaim, guest free to host discard", "device discard", "first touch per page", "re-touch of reported memory per page"} {
			st := exp.GetStats(m)
			AddReportEntry(fmt.Sprintf("median %s (%s)", m, st.Units), fmt.Sprintf("%.0f", st.ValueFor(gmeasure.StatMedian)))
		}
	}, SpecTimeout(10*time.Minute))
}
