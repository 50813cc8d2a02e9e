package reports

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"

	g "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// recordingT stands in for *testing.T so that the specs failing on purpose
// below do not fail this test.
type recordingT struct{ failed bool }

func (r *recordingT) Fail() { r.failed = true }

// ginkgoRan guards against a second RunSpecs.
var ginkgoRan bool

// TestRealGinkgoRun runs a small spec tree shaped like kvmspec's through
// Ginkgo itself, so that the assumptions FromGinkgo makes about real
// reports (how filtered specs look, where Skip messages land, how report
// entries carry gmeasure experiments) are checked against the library, not
// only against hand-built reports. Ginkgo allows one RunSpecs per process:
// keep this the only test that calls it.
func TestRealGinkgoRun(t *testing.T) {
	if f := flag.Lookup("test.count"); ginkgoRan || (f != nil && f.Value.String() != "1") {
		// Ginkgo exits the process on a second RunSpecs and on -count > 1.
		t.Skip("Ginkgo runs one suite per process, and refuses go test -count > 1")
	}
	ginkgoRan = true
	gomega.RegisterFailHandler(g.Fail)
	var got Run
	var captured types.Report

	g.Describe("kvm", g.Label("backend:kvm"), func() {
		g.Describe("smoke", g.Label("smoke"), func() {
			g.It("passes [cpl3]", g.Label("cpl3"), func() {})
			g.It("fails", func() { gomega.Expect(1).To(gomega.Equal(2)) })
			g.It("skips", func() { g.Skip("kvm: PMU disabled (kvm.enable_pmu=N)") })
			g.It("deviates", func() { g.Skip("known deviation: int3 at CPL0 exits with an emulation failure") })
			g.It("panics", func() { panic("boom") })
			g.It("times out", func(ctx g.SpecContext) {
				g.By("waiting for KVM_RUN")
				<-ctx.Done()
			}, g.SpecTimeout(50*time.Millisecond))
			g.It("is deselected", g.Label("slow"), func() {})
			g.Describe("exceptions", func() {
				g.It("#UD [cpl0]", func() {
					g.By("running the guest")
					g.GinkgoWriter.Println("guest: SYNC(1)")
					g.AddReportEntry("host health", "host kernel ok; taint 0→0")
				})
			})
			g.DescribeTable("table", func(n int) { gomega.Expect(n).To(gomega.BeNumerically(">", 0)) },
				g.Entry("one", 1), g.Entry("two", 2))
		})
	})
	g.Describe("emu", g.Label("backend:emu"), func() {
		g.Describe("perf", g.Label("perf", "kind:perf"), g.Serial, func() {
			g.It("measures", func() {
				exp := gmeasure.NewExperiment("pio")
				g.AddReportEntry(exp.Name, exp)
				for i := 1; i <= 5; i++ {
					exp.RecordValue("exits", float64(i), gmeasure.Units("exits"))
					exp.RecordDuration("round trip", time.Duration(i)*time.Microsecond)
				}
			})
		})
	})
	g.ReportAfterSuite("kvmspec report", func(r types.Report) {
		captured = r
		got = FromGinkgo(r, Meta{Version: "test", Backends: []string{"kvm", "emu"}})
	})

	suiteConfig, reporterConfig := g.GinkgoConfiguration()
	suiteConfig.LabelFilter = "!slow"
	suiteConfig.RandomSeed = 1
	reporterConfig.Succinct = true
	reporterConfig.NoColor = true
	rt := &recordingT{}
	if g.RunSpecs(rt, "kvmspec", suiteConfig, reporterConfig) || !rt.failed {
		t.Fatal("the suite passed, but it has failing specs")
	}

	byID := map[string]Case{}
	for _, c := range got.Cases {
		byID[c.Backend+"/"+c.ID] = c
	}
	want := map[string]State{
		"kvm/smoke/passes [cpl3]":           StatePassed,
		"kvm/smoke/fails":                   StateFailed,
		"kvm/smoke/skips":                   StateSkipped,
		"kvm/smoke/deviates":                StateDeviation,
		"kvm/smoke/panics":                  StatePanicked,
		"kvm/smoke/times out":               StateTimedout,
		"kvm/smoke/exceptions / #UD [cpl0]": StatePassed,
		"kvm/smoke/table / one":             StatePassed,
		"kvm/smoke/table / two":             StatePassed,
		"emu/perf/measures":                 StatePassed,
	}
	for id, st := range want {
		c, ok := byID[id]
		if !ok {
			t.Errorf("case %s missing", id)
			continue
		}
		if c.State != st {
			t.Errorf("%s: state %s, want %s (%s)", id, c.State, st, c.Message)
		}
	}
	if len(got.Cases) != len(want) || got.Filtered != 1 {
		var ids []string
		for id := range byID {
			ids = append(ids, id)
		}
		t.Errorf("cases %v, filtered %d; want %d cases and 1 filtered (of %d spec reports)", ids, got.Filtered, len(want), len(captured.SpecReports))
	}
	if c := byID["kvm/smoke/skips"]; c.Message != "kvm: PMU disabled (kvm.enable_pmu=N)" {
		t.Errorf("skip message %q", c.Message)
	}
	if c := byID["kvm/smoke/fails"]; !strings.Contains(c.Message, "to equal") || !strings.Contains(c.FailureLocation, "ginkgo_test.go:") {
		t.Errorf("failure %q at %q", c.Message, c.FailureLocation)
	}
	if c := byID["kvm/smoke/panics"]; !strings.Contains(c.Failure, "panic: boom") {
		t.Errorf("panic text %q", c.Failure)
	}
	if c := byID["kvm/smoke/times out"]; !strings.Contains(c.Failure, `during step "waiting for KVM_RUN"`) && !strings.Contains(c.Failure, "STEP: waiting for KVM_RUN") {
		t.Errorf("timeout text lacks the step:\n%s", c.Failure)
	}
	ud := byID["kvm/smoke/exceptions / #UD [cpl0]"]
	if !strings.Contains(ud.Output, "guest: SYNC(1)") || len(ud.Entries) != 1 || ud.Entries[0].Value != "host kernel ok; taint 0→0" {
		t.Errorf("#UD output %q entries %+v", ud.Output, ud.Entries)
	}
	perf := byID["emu/perf/measures"].Perf
	if len(perf) != 2 || perf[0].Name != "exits" || perf[0].Median != 3 || perf[0].N != 5 || perf[1].Units != "ns" || perf[1].Median != 3000 {
		t.Errorf("perf %+v", perf)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	doc := decodeJUnit(t, got)
	skipped := 0
	for _, s := range doc.Suites {
		skipped += s.Skipped
	}
	if doc.Tests != 10 || doc.Failures != 2 || doc.Errors != 1 || skipped != 2 {
		t.Errorf("junit totals %d/%d/%d/%d, want 10/2/1/2", doc.Tests, doc.Failures, doc.Errors, skipped)
	}
	var buf bytes.Buffer
	got.Summary(&buf, false)
	t.Logf("\n%s", buf.String())
}
