// Package suites runs kvmspec's Ginkgo specs: it opens the selected
// backends, detects the host profile, builds the spec tree of every
// registered area and turns Ginkgo's report into kvmspec's reports. The
// kvmspec CLI and `go test ./suites/` both call Run.
package suites

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
	"github.com/kvmspec/kvmspec/harness/profile"
	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	// The areas register their specs.
	_ "github.com/kvmspec/kvmspec/suites/conformance"
	_ "github.com/kvmspec/kvmspec/suites/debug"
	_ "github.com/kvmspec/kvmspec/suites/dirtylog"
	_ "github.com/kvmspec/kvmspec/suites/pagefault"
	_ "github.com/kvmspec/kvmspec/suites/selftest"
	_ "github.com/kvmspec/kvmspec/suites/smoke"
)

// Version is kvmspec's version, recorded in every report.
var Version = "0.1.0-dev"

// Options select what a run does.
type Options struct {
	Backend     string // kvm, emu, auto or all
	LabelFilter string
	Focus       []string
	Skip        []string
	ReportDir   string // where junit.xml and report.json go; "" writes none
	Seed        int64  // 0: derived from the time
	Timeout     time.Duration
	Verbose     bool
	Strict      bool   // ignore host profiles
	Profile     string // host profile by name; "" detects, "none" applies none
	ProfileFile string // a host profile JSON file instead of the embedded ones
	DryRun      bool
	Params      map[string]string
}

// UsageError is a bad request: the CLI exits 2 for it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// KVMDeviceEnv is the environment variable that overrides /dev/kvm.
const KVMDeviceEnv = "KVMSPEC_KVM_DEVICE"

// BackendNames are the backends in the order "all" runs them.
var BackendNames = []string{"kvm", "emu"}

// OpenBackend opens one backend by name. An error wrapping
// hv.ErrUnavailable means it cannot run on this host.
func OpenBackend(name string) (hv.Hypervisor, error) {
	switch name {
	case "kvm":
		// KVMSPEC_KVM_DEVICE names another device node: boards that expose
		// KVM elsewhere, and tests of what a host without KVM sees.
		h, err := kvm.Open(kvm.Options{Device: os.Getenv(KVMDeviceEnv)})
		if err != nil {
			// Not h itself: a nil *kvm.Hypervisor in an interface is not nil.
			return nil, err
		}
		return h, nil
	case "emu":
		return emu.New(emu.Options{}), nil
	}
	return nil, &UsageError{Msg: fmt.Sprintf("unknown backend %q (want kvm, emu, auto or all)", name)}
}

// SelectBackends resolves kvm|emu|auto|all into backends, open where
// possible. Unavailable backends are kept with their reason: their specs
// are skipped with it.
func SelectBackends(sel string) ([]*framework.Backend, error) {
	var names []string
	switch sel {
	case "", "auto":
		if h, err := OpenBackend("kvm"); err == nil {
			return []*framework.Backend{newBackend("kvm", h, nil)}, nil
		}
		names = []string{"emu"}
	case "all":
		names = BackendNames
	default:
		names = strings.Split(sel, ",")
	}
	var out []*framework.Backend
	for _, n := range names {
		h, err := OpenBackend(n)
		if errors.As(err, new(*UsageError)) {
			// An unknown name: close what was opened and say so.
			for _, b := range out {
				if b.HV != nil {
					b.HV.Close()
				}
			}
			return nil, err
		}
		out = append(out, newBackend(n, h, err))
	}
	return out, nil
}

func newBackend(name string, h hv.Hypervisor, err error) *framework.Backend {
	b := &framework.Backend{Name: name, HV: h, Err: err}
	if h != nil {
		b.Caps = h.Caps()
		b.Health = name == "kvm"
	} else {
		b.Caps = hv.Caps{Backend: name}
	}
	return b
}

// ValidateLabelFilter checks a filter expression's syntax.
func ValidateLabelFilter(f string) error {
	if f == "" {
		return nil
	}
	if _, err := types.ParseLabelFilter(f); err != nil {
		return &UsageError{Msg: fmt.Sprintf("bad --label-filter %q: %v", f, err)}
	}
	return nil
}

// LoadProfileFile reads a host profile from a file (a board's own, or a
// test's); it applies whatever the host is.
func LoadProfileFile(path string) (*profile.Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &UsageError{Msg: fmt.Sprintf("host profile: %v", err)}
	}
	p, err := profile.Parse(filepath.Base(path), data)
	if err != nil {
		return nil, &UsageError{Msg: fmt.Sprintf("host profile: %v", err)}
	}
	return &p, nil
}

// LoadProfile returns the host profile to apply: forced by name, none,
// or detected from the facts.
func LoadProfile(name string, facts host.Facts) (*profile.Profile, error) {
	profiles, err := profile.Load(fixtures.Hosts, "hosts")
	if err != nil {
		return nil, err
	}
	switch name {
	case "":
		return profile.Detect(profiles, facts), nil
	case "none":
		return nil, nil
	}
	p := profile.Find(profiles, name)
	if p == nil {
		return nil, &UsageError{Msg: fmt.Sprintf("unknown host profile %q", name)}
	}
	return p, nil
}

// CapLines renders a backend's capabilities for reports and `kvmspec caps`.
func CapLines(b *framework.Backend) []reports.CapLine {
	if b.HV == nil {
		return []reports.CapLine{{Name: "backend", Supported: false, Detail: b.Err.Error()}}
	}
	var out []reports.CapLine
	for _, c := range b.Caps.Names() {
		s := b.Caps.Features[c]
		out = append(out, reports.CapLine{Name: string(c), Supported: s.OK, Detail: s.Reason})
	}
	return out
}

// Run builds and runs the specs and returns the run's report model. It
// writes junit.xml and report.json when opt.ReportDir is set. The error is
// for runs that could not happen at all (bad options, unreadable profiles).
// Ginkgo calls t.Fail for every spec that failed, known deviations
// included: judge the run with Verdict, not with t.
func Run(t GinkgoTestingT, opt Options) (reports.Run, error) {
	if err := ValidateLabelFilter(opt.LabelFilter); err != nil {
		return reports.Run{}, err
	}
	backends, err := SelectBackends(opt.Backend)
	if err != nil {
		return reports.Run{}, err
	}
	defer func() {
		for _, b := range backends {
			if b.HV != nil {
				b.HV.Close()
			}
		}
	}()
	facts := host.Collect()
	var prof *profile.Profile
	if opt.ProfileFile != "" {
		prof, err = LoadProfileFile(opt.ProfileFile)
	} else {
		prof, err = LoadProfile(opt.Profile, facts)
	}
	if err != nil {
		return reports.Run{}, err
	}
	if opt.Seed == 0 {
		opt.Seed = time.Now().UnixNano()%1_000_000_000 + 1
	}
	env := &framework.Env{Seed: opt.Seed, Strict: opt.Strict, Params: opt.Params}
	meta := reports.Meta{Version: Version, Seed: opt.Seed, LabelFilter: opt.LabelFilter,
		Focus: strings.Join(opt.Focus, "|"), Strict: opt.Strict, Host: facts.Properties(),
		Caps: map[string][]reports.CapLine{}, Started: time.Now(), ReportDir: opt.ReportDir}
	if prof != nil {
		meta.Profile = prof.Name
	}
	for _, b := range backends {
		b.Env = env
		b.Profile = prof
		meta.Backends = append(meta.Backends, b.Name)
		meta.Caps[b.Name] = CapLines(b)
	}

	framework.Build(backends)
	var report types.Report
	ReportAfterSuite("kvmspec report", func(r Report) { report = r })

	sc := types.NewDefaultSuiteConfig()
	sc.RandomSeed = opt.Seed
	sc.LabelFilter = opt.LabelFilter
	sc.FocusStrings = opt.Focus
	sc.SkipStrings = opt.Skip
	sc.DryRun = opt.DryRun
	if opt.Timeout > 0 {
		sc.Timeout = opt.Timeout
	}
	rc := types.NewDefaultReporterConfig()
	rc.Succinct = !opt.Verbose
	rc.Verbose = opt.Verbose
	rc.NoColor = true
	gomega.RegisterFailHandler(Fail)
	RunSpecs(t, "kvmspec", sc, rc)

	meta.Finished = time.Now()
	run := reports.FromGinkgo(report, meta)
	if opt.ReportDir != "" && !opt.DryRun {
		if err := reports.WriteDir(opt.ReportDir, run); err != nil {
			return run, err
		}
	}
	return run, nil
}

// Verdict says whether a run counts as a pass, and why not. A run that
// selected nothing, or whose cases were all skipped, is not a pass: a
// typo in a filter or a missing /dev/kvm must not read as green.
func Verdict(r reports.Run) error {
	c := r.Counts()
	switch {
	case len(r.Problems) > 0:
		return fmt.Errorf("the run itself is broken: %s", strings.Join(r.Problems, "; "))
	case c.Total == 0:
		return fmt.Errorf("no spec matched the filters (%d deselected)", c.Filtered)
	case c.Failed > 0:
		return fmt.Errorf("%d of %d specs failed", c.Failed, c.Total)
	case !slices.ContainsFunc(r.Cases, reports.Case.Checked):
		return fmt.Errorf("all %d specs were skipped: nothing was tested", c.Total)
	}
	return nil
}
