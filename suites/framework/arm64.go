package framework

import (
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// NewARM64Guest builds an arm64 guest (harness/guest/a64guest) for the
// current spec, an arm64 one (RegisterArch with hv.ArchARM64), and frees
// it when the spec ends. Guest PRINTF output goes to the spec's log.
func (b *Backend) NewARM64Guest(cfg a64guest.Config) *a64guest.Guest {
	GinkgoHelper()
	if cfg.Output == nil {
		cfg.Output = GinkgoWriter
	}
	g, err := a64guest.New(b.HV, cfg)
	Expect(err).NotTo(HaveOccurred(), "create arm64 guest on %s", b.Name)
	DeferCleanup(func() {
		if err := g.Close(); err != nil {
			AddReportEntry("guest close error", err.Error())
		}
	})
	return g
}
