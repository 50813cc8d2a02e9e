// Package suites runs kvmspec's Ginkgo specs: it opens the selected
// backends, detects the host profile, builds the spec tree of every
// registered area and turns Ginkgo's report into kvmspec's reports. The
// kvmspec CLI and `go test ./suites/` both call Run.
package suites

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	// The areas register their specs.
	_ "github.com/kvmspec/kvmspec/suites/conformance"
	_ "github.com/kvmspec/kvmspec/suites/debug"
	_ "github.com/kvmspec/kvmspec/suites/dirtylog"
	_ "github.com/kvmspec/kvmspec/suites/lightnvm"
	_ "github.com/kvmspec/kvmspec/suites/memslot"
	_ "github.com/kvmspec/kvmspec/suites/pagefault"
	_ "github.com/kvmspec/kvmspec/suites/pagereport"
	_ "github.com/kvmspec/kvmspec/suites/pmu"
	_ "github.com/kvmspec/kvmspec/suites/selftest"
	_ "github.com/kvmspec/kvmspec/suites/smoke"
	_ "github.com/kvmspec/kvmspec/suites/vgpu"
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
	Params      map[string]string // --param key=value, checked against Params
	// Emu shapes the emu backend (kvmspec run --emu; emu.ParseOptions).
	Emu emu.Options

	// Ginkgo's own settings, passed through to RunSpecs.
	FailFast      bool     // stop after the first failure
	FlakeAttempts int      // retry a failing spec up to this many times
	FocusFiles    []string // run only specs in these files (file[:line] regexps)
	SkipFiles     []string // skip specs in these files
	// Reporter, when set, is Ginkgo's reporter configuration (go test
	// ./suites/ passes its -ginkgo.* report flags this way); kvmspec's
	// own settings (verbosity, no colour) are applied on top.
	Reporter *types.ReporterConfig
	// ParallelTotal is Ginkgo's process count (ginkgo -p); more than one
	// is refused: every process would open its own backends and run every
	// spec, and kvmspec's reports are built in one process.
	ParallelTotal int
	// Interrupted, when set, returns the signal that arrived before the
	// specs started ("" for none): the CLI catches SIGINT/SIGTERM from
	// its first instruction on, and Run then leaves an "interrupted"
	// report instead of running.
	Interrupted func() string
	// HandOff, when set, is called as the suite begins, once Ginkgo's
	// own signal handler is installed: a signal that arrived after the
	// last Interrupted call and before that handler is raised again so
	// that Ginkgo interrupts the run instead of never hearing of it.
	HandOff func()
	// Shard, when set, runs only the selected specs it owns (--shard
	// i/n); the others are left out of the report and counted in its
	// Meta.Shard.Elsewhere.
	Shard *reports.Shard
	// MaxProfileSize caps --profile-file (0: DefaultMaxProfileSize).
	MaxProfileSize int64
	// Progress, when set, is called as each selected spec starts and
	// ends, for a progress line on a terminal.
	Progress func(Progress)
}

// Progress is where a run is: specs done of the total selected, failures
// so far, and the spec running now ("" between specs). The report made as
// a spec ends also names that spec (Ended), its state as the reports
// give it (passed, failed, skipped, ...) and its run time.
type Progress struct {
	Done, Total, Failed int
	Current             string
	Ended, State        string
	RunTime             time.Duration
}

// DefaultMaxProfileSize bounds a host profile file: real ones are a few
// KiB, and /dev/zero must not be read forever.
const DefaultMaxProfileSize = 1 << 20

// ErrInterrupted is returned by Run when a signal arrived before any spec
// ran; the report directory then holds an "interrupted" report.
var ErrInterrupted = errors.New("interrupted before any spec ran")

// UsageError is a bad request: the CLI exits 2 for it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// KVMDeviceEnv is the environment variable that overrides /dev/kvm.
const KVMDeviceEnv = "KVMSPEC_KVM_DEVICE"

// BackendNames are the backends in the order "all" runs them.
var BackendNames = []string{"kvm", "emu"}

// OpenBackend opens one backend by name. An error wrapping
// hv.ErrUnavailable means it cannot run on this host.
func OpenBackend(name string) (hv.Hypervisor, error) { return openBackend(name, emu.Options{}) }

// openBackend is OpenBackend with the emu's options.
func openBackend(name string, eo emu.Options) (hv.Hypervisor, error) {
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
		return emu.New(eo), nil
	}
	return nil, &UsageError{Msg: fmt.Sprintf("unknown backend %q (want kvm, emu, auto or all)", name)}
}

// SelectBackends resolves kvm|emu|auto|all into backends, open where
// possible. Unavailable backends are kept with their reason: their specs
// are skipped with it.
func SelectBackends(sel string) ([]*framework.Backend, error) {
	return selectBackends(sel, emu.Options{})
}

// selectBackends is SelectBackends with the emu's options.
func selectBackends(sel string, eo emu.Options) ([]*framework.Backend, error) {
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
		h, err := openBackend(n, eo)
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

// ValidateLabelFilter checks a filter expression's syntax. The error is
// one plain line: Ginkgo's own is several, with terminal colours.
func ValidateLabelFilter(f string) error {
	if f == "" {
		return nil
	}
	if _, err := types.ParseLabelFilter(f); err != nil {
		why := err.Error()
		var ge types.GinkgoError
		if errors.As(err, &ge) {
			why = ge.Message
		}
		return &UsageError{Msg: fmt.Sprintf("bad --label-filter %q: %s", f, lastLine(reports.Plain(why)))}
	}
	return nil
}

// lastLine is the last non-empty line of s, trimmed: Ginkgo's label
// filter errors end with the reason after an echo of the filter.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Validate checks every option before anything runs, so a typo costs a
// one-line error (a *UsageError) rather than a panic, a stack trace or a
// run whose specs fail one by one.
func (opt Options) Validate() error {
	if err := validateBackendNames(opt.Backend); err != nil {
		return err
	}
	if err := ValidateLabelFilter(opt.LabelFilter); err != nil {
		return err
	}
	for _, re := range [...]struct {
		flag string
		res  []string
	}{{"--focus", opt.Focus}, {"--skip", opt.Skip}} {
		for _, r := range re.res {
			if _, err := regexp.Compile(r); err != nil {
				return &UsageError{Msg: fmt.Sprintf("bad %s %q: %s", re.flag, r, reports.Plain(strings.TrimPrefix(err.Error(), "error parsing regexp: ")))}
			}
		}
	}
	for _, ff := range [...]struct {
		flag  string
		files []string
	}{{"--focus-file", opt.FocusFiles}, {"--skip-file", opt.SkipFiles}} {
		if _, err := types.ParseFileFilters(ff.files); err != nil {
			var ge types.GinkgoError
			why := err.Error()
			if errors.As(err, &ge) {
				why = ge.Message
			}
			return &UsageError{Msg: fmt.Sprintf("bad %s %q: %s", ff.flag, ff.files, lastLine(reports.Plain(why)))}
		}
	}
	switch {
	case opt.Timeout < 0:
		return &UsageError{Msg: fmt.Sprintf("bad --timeout %v: want a positive duration", opt.Timeout)}
	case opt.FlakeAttempts < 0:
		return &UsageError{Msg: fmt.Sprintf("bad --flake-attempts %d: want 0 or more", opt.FlakeAttempts)}
	case opt.ParallelTotal > 1:
		return &UsageError{Msg: fmt.Sprintf("parallel runs (ginkgo -p, --procs, %d processes) are not supported: "+
			"kvmspec builds one report per process; run serially, or run several kvmspec processes with distinct --label-filter and --report-dir", opt.ParallelTotal)}
	}
	return ValidateParams(opt.Params)
}

func validateBackendNames(sel string) error {
	switch sel {
	case "", "auto", "all":
		return nil
	}
	for _, n := range strings.Split(sel, ",") {
		if !slices.Contains(BackendNames, n) {
			return &UsageError{Msg: fmt.Sprintf("unknown backend %q (want kvm, emu, auto or all)", n)}
		}
	}
	return nil
}

// LoadProfileFile reads a host profile from a file (a board's own, or a
// test's); it applies whatever the host is. Files larger than max bytes
// (0: DefaultMaxProfileSize) and files that are not regular files are
// refused without reading them whole.
func LoadProfileFile(path string, max int64) (*profile.Profile, error) {
	if max <= 0 {
		max = DefaultMaxProfileSize
	}
	data, err := ReadCapped(path, max)
	if err != nil {
		return nil, &UsageError{Msg: fmt.Sprintf("host profile: %v", err)}
	}
	p, err := profile.Parse(filepath.Base(path), data)
	if err != nil {
		return nil, &UsageError{Msg: fmt.Sprintf("host profile: %v", err)}
	}
	return &p, nil
}

// ReadCapped reads a regular file of at most max bytes: input files
// (profiles, kvmspec exec layouts and binaries) are refused when they are
// devices, pipes or larger than a sane input, before being read whole.
func ReadCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
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

// Run builds and runs the specs and returns the run's report model. The
// error is for runs that could not happen at all (bad options, unreadable
// profiles, an unusable report directory), and ErrInterrupted. Ginkgo
// calls t.Fail for every spec that failed, known deviations included:
// judge the run with Verdict, not with t.
//
// Everything the caller asked for is checked before any spec runs. With
// opt.ReportDir set the directory is then taken (reports.OpenDir: created,
// locked against other runs, marked incomplete) and, after the specs,
// junit.xml and report.json are replaced together.
func Run(t GinkgoTestingT, opt Options) (reports.Run, error) {
	if err := opt.Validate(); err != nil {
		return reports.Run{}, err
	}
	facts := host.Collect()
	var prof *profile.Profile
	var err error
	if opt.ProfileFile != "" {
		prof, err = LoadProfileFile(opt.ProfileFile, opt.MaxProfileSize)
	} else {
		prof, err = LoadProfile(opt.Profile, facts)
	}
	if err != nil {
		return reports.Run{}, err
	}
	if opt.Seed == 0 {
		opt.Seed = time.Now().UnixNano()%1_000_000_000 + 1
	}
	meta := reports.Meta{Version: Version, Seed: opt.Seed, LabelFilter: opt.LabelFilter,
		Focus: strings.Join(opt.Focus, "|"), Skip: strings.Join(opt.Skip, "|"), Strict: opt.Strict,
		Host: facts.Properties(), Caps: map[string][]reports.CapLine{}, Started: time.Now(),
		ReportDir: opt.ReportDir, Params: opt.Params, ProfileFile: opt.ProfileFile, Shard: opt.Shard}
	if prof != nil {
		meta.Profile = prof.Name
		meta.Deviations = len(prof.Deviations)
	}

	var dir *reports.Dir
	if opt.ReportDir != "" && !opt.DryRun {
		if dir, err = reports.OpenDir(opt.ReportDir, meta); err != nil {
			return reports.Run{}, &UsageError{Msg: err.Error()}
		}
		defer dir.Close()
	}
	backends, err := selectBackends(opt.Backend, opt.Emu)
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
	env := &framework.Env{Seed: opt.Seed, Strict: opt.Strict, Params: opt.Params}
	for _, b := range backends {
		b.Env = env
		b.Profile = prof
		meta.Backends = append(meta.Backends, b.Name)
		meta.Caps[b.Name] = CapLines(b)
	}

	framework.Build(backends)
	if opt.Shard != nil {
		// Outermost, so another shard's spec skips before any setup of
		// its own (host health, deviations) runs.
		BeforeEach(func() {
			if key := reports.SpecKey(CurrentSpecReport()); !opt.Shard.Owns(key) {
				Skip(reports.OutOfShardPrefix + "not shard " + opt.Shard.String())
			}
		})
	}
	var report types.Report
	ReportAfterSuite("kvmspec report", func(r Report) { report = r })
	if opt.Progress != nil {
		reportProgress(opt.Progress)
	}

	// A signal caught before Ginkgo installs its handler (in RunSpecs)
	// would otherwise be lost: Ginkgo never sees it.
	if opt.Interrupted != nil {
		if sig := opt.Interrupted(); sig != "" {
			if dir != nil {
				if err := dir.Write(reports.IncompleteRun(meta, "interrupted by "+sig+" before any spec ran")); err != nil {
					return reports.Run{}, err
				}
			}
			return reports.Run{}, ErrInterrupted
		}
	}
	if opt.HandOff != nil {
		// RunSpecs installs Ginkgo's handler before it runs any node.
		ReportBeforeSuite(func(Report) { opt.HandOff() })
	}
	sc, rc := ginkgoConfig(opt)
	gomega.RegisterFailHandler(Fail)
	RunSpecs(t, "kvmspec", sc, rc)

	meta.Finished = time.Now()
	run := reports.FromGinkgo(report, meta)
	if dir != nil {
		if err := dir.Write(run); err != nil {
			return run, err
		}
	}
	return run, nil
}

// reportProgress registers the reporting nodes that feed f. Specs the
// filters deselected are reported too, as skipped without a message, and
// are not counted; with --shard, the total shrinks by each selected spec
// another shard owns as the run passes it.
func reportProgress(f func(Progress)) {
	var p Progress
	ReportBeforeSuite(func(r Report) {
		p.Total = r.PreRunStats.SpecsThatWillRun
		f(p)
	})
	deselected := func(s SpecReport) bool {
		return s.State == types.SpecStateSkipped && s.Failure.Message == "" && s.RunTime == 0
	}
	id := func(s SpecReport) string {
		if b := taxonomy.BackendOf(s.Labels()); b != "" {
			return b + "/" + reports.SpecID(s)
		}
		return reports.SpecID(s)
	}
	ReportBeforeEach(func(s SpecReport) {
		if s.State == types.SpecStateSkipped {
			return // deselected (or skipped before it starts): nothing runs
		}
		p.Current = id(s)
		f(p)
	})
	ReportAfterEach(func(s SpecReport) {
		if deselected(s) {
			return
		}
		if s.State == types.SpecStateSkipped && strings.HasPrefix(s.Failure.Message, reports.OutOfShardPrefix) {
			// Selected, but another shard runs it: Ginkgo counted it in
			// the total it gave before the suite.
			p.Total--
			p.Current = ""
			f(p)
			return
		}
		p.Done++
		if s.Failed() {
			p.Failed++
		}
		p.Current = ""
		p.Ended, p.State, p.RunTime = id(s), s.State.String(), s.RunTime
		f(p)
		p.Ended, p.State, p.RunTime = "", "", 0
	})
}

// ginkgoConfig turns the options into Ginkgo's configuration.
func ginkgoConfig(opt Options) (types.SuiteConfig, types.ReporterConfig) {
	sc := types.NewDefaultSuiteConfig()
	sc.RandomSeed = opt.Seed
	sc.LabelFilter = opt.LabelFilter
	sc.FocusStrings = opt.Focus
	sc.SkipStrings = opt.Skip
	sc.FocusFiles = opt.FocusFiles
	sc.SkipFiles = opt.SkipFiles
	sc.FailFast = opt.FailFast
	sc.FlakeAttempts = opt.FlakeAttempts
	sc.DryRun = opt.DryRun
	if opt.Timeout > 0 {
		sc.Timeout = opt.Timeout
	}
	rc := types.NewDefaultReporterConfig()
	if opt.Reporter != nil {
		rc = *opt.Reporter
	}
	rc.Succinct = !opt.Verbose
	rc.Verbose = opt.Verbose
	rc.NoColor = true
	return sc, rc
}

// Verdict says whether a run counts as a pass, and why not. A run that
// selected nothing, or whose cases were all skipped, is not a pass: a
// typo in a filter or a missing /dev/kvm must not read as green.
func Verdict(r reports.Run) error {
	c := r.Counts()
	switch {
	case r.Incomplete != "":
		return errors.New(r.Incomplete)
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
