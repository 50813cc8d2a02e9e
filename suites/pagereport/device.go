package pagereport

import (
	"encoding/binary"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Device status values the guest driver reads back.
const (
	statusLive    = pagereport.StatusAcknowledge | pagereport.StatusDriver | pagereport.StatusFeaturesOK | pagereport.StatusDriverOK
	statusRefused = statusLive | pagereport.StatusNeedsReset
)

// setupCase is one driver setup and what the device must answer.
type setupCase struct {
	queueSize int
	features  uint64
	ready     bool
	status    uint64
}

// deviceSpecs: feature and queue wiring, and how elements complete
// (devices.md (c) checks 1 and 2).
func deviceSpecs(b *framework.Backend) {
	DescribeTable("queue setup",
		func(ctx SpecContext, c setupCase) {
			r := newRig(b, rigConfig{blocks: 1, queueSize: c.queueSize, features: c.features,
				script: script(op(pagereport.OpInit, 0, 1))})
			var got []uint64
			r.run(ctx, func(u *guest.Ucall) error {
				got = u.Args
				return nil
			})
			if c.status == 0 {
				Expect(got).To(HaveLen(2), "driver SYNC")
				Expect(got[0]).To(BeEquivalentTo(pagereport.StageInitFailed), "FEATURES_OK must be refused")
				Expect(got[1] & pagereport.StatusFeaturesOK).To(BeZero())
				return
			}
			Expect(got).To(HaveLen(5), "driver SYNC")
			ready := uint64(0)
			if c.ready {
				ready = 1
			}
			Expect(got[0]).To(BeEquivalentTo(pagereport.StageInit))
			Expect(got[2]).To(Equal(c.status), "status")
			Expect(got[3]).To(Equal(ready), "QueueReady")
			Expect(got[4]).To(BeEquivalentTo(pagereport.DefaultQueueSize), "QueueNumMax of transport queue %d", pagereport.ReportingQueue)
			if !c.ready {
				Expect(r.dev.Stats().NeedsReset).To(BeEquivalentTo(1))
				AddReportEntry("refusal", r.dev.Stats().LastNeedsReset)
			}
		},
		Entry("32 entries (PAGE_REPORTING_CAPACITY) are accepted", setupCase{queueSize: 32, ready: true, status: statusLive}, SpecTimeout(specTimeout)),
		Entry("128 entries (QueueNumMax) are accepted", setupCase{queueSize: 128, ready: true, status: statusLive}, SpecTimeout(specTimeout)),
		Entry("16 entries are refused: below 32", setupCase{queueSize: 16, status: statusRefused}, SpecTimeout(specTimeout)),
		Entry("48 entries are refused: not a power of two", setupCase{queueSize: 48, status: statusRefused}, SpecTimeout(specTimeout)),
		Entry("256 entries are refused: above QueueNumMax", setupCase{queueSize: 256, status: statusRefused}, SpecTimeout(specTimeout)),
		Entry("a driver without VIRTIO_F_VERSION_1 is refused FEATURES_OK", setupCase{queueSize: 32, features: pagereport.FeaturePageReporting}, SpecTimeout(specTimeout)),
	)

	DescribeTable("completes each report once, with used length 0, as device-writable buffers", func(ctx SpecContext, dev pagereport.Config) {
		const blocks = 64 // two passes of 32
		r := newRig(b, rigConfig{blocks: blocks, dev: dev, script: script(
			op(pagereport.OpInit, 0, 0),
			ops(pagereport.OpAlloc, 0, blocks, touched),
			ops(pagereport.OpFree, 0, blocks, 0),
		)})
		r.run(ctx, nil)
		Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 2, Entries: blocks}))
		used, err := r.g.Bytes(r.rep.Used(), 4+2*pagereport.UsedElemSize)
		Expect(err).NotTo(HaveOccurred())
		Expect(binary.LittleEndian.Uint16(used[2:])).To(BeEquivalentTo(2), "used idx")
		for i := 0; i < 2; i++ {
			e := used[4+pagereport.UsedElemSize*i:]
			Expect(binary.LittleEndian.Uint32(e[0:])).To(BeZero(), "used[%d].id: the chain's head", i)
			Expect(binary.LittleEndian.Uint32(e[4:])).To(BeZero(), "used[%d].len", i)
		}
		s := r.dev.Stats()
		Expect(s.Elements).To(BeEquivalentTo(2))
		Expect(s.Ranges).To(BeEquivalentTo(blocks))
		Expect(s.Ignored).To(BeEmpty(), "every range was device-writable, aligned and in RAM")
	},
		Entry("processed in the notifying access", pagereport.Config{}, SpecTimeout(specTimeout)),
		// A worker completes while the guest polls: a lost notification
		// would show as a failed report when the guest's poll bound runs out.
		Entry("processed on a worker, as QEMU's main loop does", pagereport.Config{Async: true}, SpecTimeout(specTimeout)),
	)
}
