package suites_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/suites"
	. "github.com/onsi/ginkgo/v2"
)

var (
	backend   = flag.String("kvmspec.backend", "all", "backends to run: kvm, emu, auto or all")
	reportDir = flag.String("kvmspec.report-dir", "", "write junit.xml and report.json here")
	strict    = flag.Bool("kvmspec.strict", false, "ignore host profiles' expected failures")
	profFile  = flag.String("kvmspec.profile-file", "", "apply this host profile JSON file instead of detecting one")
	emuOpts   = flag.String("kvmspec.emu", "", "emu backend options, as kvmspec run --emu")
	params    = paramFlag{}
)

func init() {
	flag.Var(params, "kvmspec.param", "spec parameter key=value (repeatable), as kvmspec run --param")
}

// paramFlag collects repeated -kvmspec.param key=value flags.
type paramFlag map[string]string

func (p paramFlag) String() string { return fmt.Sprint(map[string]string(p)) }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

// TestSuites runs every area's specs under `go test`, the same specs the
// kvmspec binary runs. Select with -ginkgo.label-filter / -ginkgo.focus;
// Ginkgo's other suite and report flags (-ginkgo.fail-fast,
// -ginkgo.focus-file, -ginkgo.flake-attempts, -ginkgo.junit-report …)
// are passed through, and ginkgo -p is refused by suites.Run.
func TestSuites(t *testing.T) {
	sc, rc := GinkgoConfiguration()
	eo, err := emu.ParseOptions(*emuOpts)
	if err != nil {
		t.Fatal(err)
	}
	// Ginkgo fails t for every failed spec, known deviations included; the
	// verdict below is the classified one, as the CLI's exit status is.
	run, err := suites.Run(&ginkgoT{}, suites.Options{
		Backend: *backend, LabelFilter: sc.LabelFilter, Focus: sc.FocusStrings, Skip: sc.SkipStrings,
		FocusFiles: sc.FocusFiles, SkipFiles: sc.SkipFiles, FailFast: sc.FailFast, FlakeAttempts: sc.FlakeAttempts,
		Seed: sc.RandomSeed, Timeout: sc.Timeout, Verbose: rc.Verbose, Strict: *strict, ReportDir: *reportDir,
		DryRun: sc.DryRun, Params: params, Emu: eo, ProfileFile: *profFile, Reporter: &rc, ParallelTotal: sc.ParallelTotal,
	})
	if sc.DryRun && err == nil {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := suites.Verdict(run); err != nil {
		t.Fatal(err)
	}
}

// ginkgoT takes Ginkgo's raw pass/fail, which suites.Verdict supersedes.
type ginkgoT struct{}

func (*ginkgoT) Fail() {}
