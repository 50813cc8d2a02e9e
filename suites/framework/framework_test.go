package framework_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/profile"
	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

// fakeHV is a backend that is "available" but never asked for a VM.
type fakeHV struct{}

func (fakeHV) Name() string                        { return "fake" }
func (fakeHV) Caps() hv.Caps                       { return hv.Caps{Backend: "fake"} }
func (fakeHV) NewVM(hv.VMConfig) (hv.VM, error)    { return nil, errors.New("no VMs here") }
func (fakeHV) Close() error                        { return nil }
func (emptyKmsg) OpenKmsg() (io.ReadCloser, error) { return emptyKmsg{}, nil }
func (emptyKmsg) Read([]byte) (int, error)         { return 0, unix.EAGAIN }
func (emptyKmsg) Close() error                     { return nil }

type emptyKmsg struct{}

var taintFile string

func init() {
	framework.Register(taxonomy.SelfTest, func(b *framework.Backend) {
		It("taints the host", func() {
			Expect(os.WriteFile(taintFile, []byte("512\n"), 0o644)).To(Succeed())
		})
		It("leaves the host alone", func() {})
		It("fails as declared", func() { Expect(1).To(Equal(2)) })
		It("taints the host while failing as declared", func() {
			// A bit no other spec sets, so the taint is new whatever the order.
			Expect(os.WriteFile(taintFile, []byte("4096\n"), 0o644)).To(Succeed())
			Expect(1).To(Equal(2))
		})
		It("passes despite a deviation", func() { Expect(1).To(Equal(1)) })
		It("is not run", func() { Fail("ran") })
		It("needs a missing capability", func() { b.Require(hv.CapPMU) })
	})
	framework.RegisterArch(taxonomy.SelfTest, hv.ArchARM64, func(b *framework.Backend) {
		It("runs on arm64 guests only", func() { Fail("an arm64 spec ran on " + string(b.Caps.GuestArch()) + " guests") })
	})
}

// TestAreasOrder: an area's x86-64 specs come before its other
// architectures' and a second registration of one pair panics.
func TestAreasOrder(t *testing.T) {
	var got []string
	for _, a := range framework.Areas() {
		if a.Area == taxonomy.SelfTest {
			got = append(got, string(a.Arch))
		}
	}
	if want := []string{string(hv.ArchX86_64), string(hv.ArchARM64)}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("selftest registrations %q, want %q", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second arm64 selftest registration did not panic")
		}
	}()
	framework.RegisterArch(taxonomy.SelfTest, hv.ArchARM64, func(*framework.Backend) {})
}

func TestFramework(t *testing.T) {
	dir := t.TempDir()
	taintFile = filepath.Join(dir, "tainted")
	if err := os.WriteFile(taintFile, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := true
	norun := false
	prof := &profile.Profile{Name: "fw", Deviations: []profile.Deviation{
		{ID: "d1", Backend: "fake", Specs: []string{"selftest/fails as declared"}, Reason: "declared", Run: &run},
		{ID: "d4", Backend: "fake", Specs: []string{"selftest/taints the host while failing as declared"}, Reason: "declared", Run: &run},
		{ID: "d2", Backend: "fake", Specs: []string{"selftest/passes despite*"}, Reason: "declared too", Run: &run},
		{ID: "d3", Backend: "fake", Specs: []string{"selftest/is not run"}, Reason: "harmful", Run: &norun},
	}}
	b := &framework.Backend{Name: "fake", HV: fakeHV{}, Caps: fakeHV{}.Caps(), Env: &framework.Env{}, Profile: prof,
		Health: true, HealthSources: &host.Sources{Taint: host.TaintFile(taintFile), Kmsg: emptyKmsg{}}}
	framework.Build([]*framework.Backend{b})
	var report types.Report
	ReportAfterSuite("capture", func(r Report) { report = r })
	RegisterFailHandler(Fail)
	sc, rc := GinkgoConfiguration()
	sc.LabelFilter = taxonomy.SelfTest.String()
	rc.NoColor = true
	// The suite has failures on purpose; its verdict is checked below.
	RunSpecs(&quietT{}, "framework", sc, rc)

	// The verdict is the classified one: Ginkgo's own state of a spec a
	// deviation covers is only what the spec observed.
	got := map[string]string{}
	for _, c := range reports.FromGinkgo(report, reports.Meta{Backends: []string{"fake"}}).Cases {
		got[c.Name] = string(c.State) + ": " + c.Message
	}
	want := map[string]string{
		"taints the host":            "failed: host kernel health",
		"leaves the host alone":      "passed",
		"fails as declared":          "deviation: known deviation: declared [d1] (observed: failed: Expected <int>: 1 to equal <int>: 2)",
		"passes despite a deviation": "failed: unexpected pass: remove the deviation d2",
		"is not run":                 "deviation: known deviation (not run): harmful [d3]",
		"needs a missing capability": "skipped: fake: pmu unsupported",
		// In its architecture's container, skipped on x86-64 guests.
		"arm64 / runs on arm64 guests only": "skipped: an arm64 spec; fake's guests here are x86-64",
		// A deviation never covers a spec that harmed the host.
		"taints the host while failing as declared": "failed: Expected",
	}
	for name, w := range want {
		if !strings.HasPrefix(got[name], w) {
			t.Errorf("%q: got %q, want prefix %q", name, got[name], w)
		}
	}
}

type quietT struct{}

func (*quietT) Fail() {}
