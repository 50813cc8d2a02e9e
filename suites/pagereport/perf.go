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

func intParam(b *framework.Backend, name string, def int) int {
	GinkgoHelper()
	if b.Env == nil {
		return def
	}
	v, err := strconv.Atoi(b.Env.Param(name, strconv.Itoa(def)))
	Expect(err).NotTo(HaveOccurred(), "--param %s", name)
	Expect(v).To(BeNumerically(">", 0), "--param %s", name)
	return v
}

// perfSpecs measures reclaim (guest free to host discard, MiB/s), the
// device's discard alone, and what the guest pays per page when it
// touches reported memory again, beside the first touch of fresh memory.
func perfSpecs(b *framework.Backend) {
	It("reclaim rate and re-touch cost", func(ctx SpecContext) {
		blocks := intParam(b, paramBlocks, 64)
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
			r.run(ctx, func(u *guest.Ucall) error {
				if u.Stage() == pagereport.StageSync {
					at[syncArg(u)] = time.Now()
				}
				return nil
			})
			s := r.dev.Stats()
			Expect(s.BytesDiscarded).To(BeEquivalentTo(blocks * block))
			mib := float64(blocks*block) / (1 << 20)
			pages := float64(blocks * pagesPer)
			exp.RecordValue("reclaim, guest free to host discard", mib/at[2].Sub(at[1]).Seconds(), gmeasure.Units("MiB/s"), gmeasure.Precision(0))
			exp.RecordValue("device discard", mib/s.DiscardTime.Seconds(), gmeasure.Units("MiB/s"), gmeasure.Precision(0))
			exp.RecordValue("first touch per page", float64(at[1].Sub(at[0]).Nanoseconds())/pages, gmeasure.Units("ns"), gmeasure.Precision(0))
			exp.RecordValue("re-touch of reported memory per page", float64(at[3].Sub(at[2]).Nanoseconds())/pages, gmeasure.Units("ns"), gmeasure.Precision(0))
		}, gmeasure.SamplingConfig{N: intParam(b, paramSamples, 3), Duration: 5 * time.Minute})
		AddReportEntry(exp.Name, exp)
		for _, m := range []string{"reclaim, guest free to host discard", "device discard", "first touch per page", "re-touch of reported memory per page"} {
			st := exp.GetStats(m)
			AddReportEntry(fmt.Sprintf("median %s (%s)", m, st.Units), fmt.Sprintf("%.0f", st.ValueFor(gmeasure.StatMedian)))
		}
	}, SpecTimeout(10*time.Minute))
}
