package suites_test

import (
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites/selftest"
)

// verdictProfile declares a deviation on a selftest spec for every route a
// spec can fail by, one on a spec that passes and one that must not run.
const verdictProfile = "testdata/verdicts.json"

// declaredFailures are the selftest specs verdictProfile expects to fail,
// with the route and what each one's report must say it observed.
var declaredFailures = map[string]string{
	"a deviation that fails as declared":       `known deviation: fails through Expect [v-expect] (observed: failed: the declared deviation`,
	"a deviation that fails through Fail":      `known deviation: fails through Fail [v-fail] (observed: failed: failed through Ginkgo's Fail)`,
	"a deviation that panics":                  `known deviation: panics [v-panic] (observed: panicked: panicked on purpose)`,
	"a failing guest assert":                   `known deviation: the guest asserts [v-assert] (observed: failed: `,
	"a guest that spins past the spec timeout": `known deviation: the guest hangs [v-timeout] (observed: timedout: `,
	"a guest that exits unexpectedly":          `known deviation: the guest exits [v-exit] (observed: failed: `,
	"a deviation that is not run":              `known deviation (not run): would harm the host [v-notrun]`,
}

// TestVerdicts runs the selftest specs on the emu backend through
// TestSuites, as `go test ./suites/` does, in child processes (the specs
// register at init only under KVMSPEC_SELFTEST=1, and Ginkgo runs once per
// process). It checks that a declared deviation is a known deviation
// whatever route the spec failed by, that a run whose only failures are
// declared passes, in the report, in JUnit and in the test's exit status,
// that a declared spec that passes fails the run, and that --strict ignores
// the deviations but still never runs a harmful spec.
func TestVerdicts(t *testing.T) {
	if os.Getenv(selftest.EnvVar) == "1" {
		t.Skip("this process runs the selftest specs itself")
	}
	prof, err := filepath.Abs(verdictProfile)
	if err != nil {
		t.Fatal(err)
	}
	var focus []string
	for name := range declaredFailures {
		focus = append(focus, regexp.QuoteMeta(name)+"$")
	}

	t.Run("only declared failures", func(t *testing.T) {
		run, junit, err := runSelftest(t, prof, "-ginkgo.focus="+strings.Join(focus, "|"))
		if err != nil {
			t.Errorf("go test fails a run whose only failures are known deviations: %v", err)
		}
		c := run.Counts()
		if c.Total != len(declaredFailures) || c.Deviations != len(declaredFailures) || c.Failed != 0 {
			t.Errorf("counts %+v, want %d known deviations and nothing else", c, len(declaredFailures))
		}
		if junit.Tests != c.Total || junit.skipped() != c.Deviations || junit.Failures+junit.Errors != 0 {
			t.Errorf("JUnit counts tests=%d skipped=%d failures=%d errors=%d disagree with %+v",
				junit.Tests, junit.skipped(), junit.Failures, junit.Errors, c)
		}
		cases := byName(run)
		for name, want := range declaredFailures {
			k, ok := cases[name]
			switch {
			case !ok:
				t.Errorf("%q: not in the report", name)
			case k.State != reports.StateDeviation || !strings.HasPrefix(k.Message, want):
				t.Errorf("%q: %s %q, want deviation %q…", name, k.State, k.Message, want)
			case k.Deviation == nil || !strings.HasPrefix(k.Deviation.ID, "v-"):
				t.Errorf("%q: the report does not name the deviation: %+v", name, k.Deviation)
			}
		}
		if k := cases["a deviation that is not run"]; k.Duration > 0 && strings.Contains(k.Output, "ran") {
			t.Errorf("the not-run deviation ran: %q", k.Output)
		}
	})

	t.Run("unexpected pass", func(t *testing.T) {
		run, _, err := runSelftest(t, prof, "-ginkgo.focus=a deviation that passes$|a spec after the timeout$")
		if err == nil {
			t.Error("go test passes a run with an unexpected pass")
		}
		k := byName(run)["a deviation that passes"]
		if k.State != reports.StateFailed || !strings.HasPrefix(k.Message, "unexpected pass: remove the deviation v-passes from host profile verdicts (declared but passes)") {
			t.Errorf("declared spec that passes: %s %q", k.State, k.Message)
		}
		if c := run.Counts(); c.Failed != 1 || c.Passed != 1 {
			t.Errorf("counts %+v, want 1 failed, 1 passed", c)
		}
	})

	t.Run("strict", func(t *testing.T) {
		run, _, err := runSelftest(t, prof, "-kvmspec.strict", "-ginkgo.focus="+strings.Join(focus, "|"))
		if err == nil {
			t.Error("go test passes a strict run of failing specs")
		}
		want := map[string]reports.State{
			"a deviation that fails as declared":       reports.StateFailed,
			"a deviation that fails through Fail":      reports.StateFailed,
			"a deviation that panics":                  reports.StatePanicked,
			"a failing guest assert":                   reports.StateFailed,
			"a guest that spins past the spec timeout": reports.StateTimedout,
			"a guest that exits unexpectedly":          reports.StateFailed,
			// Strict never runs what harms the host.
			"a deviation that is not run": reports.StateDeviation,
		}
		for name, k := range byName(run) {
			if k.State != want[name] {
				t.Errorf("strict %q: %s %q, want %s", name, k.State, k.Message, want[name])
			}
		}
	})
}

// runSelftest runs TestSuites in a child process on the emu backend with
// the selftest specs and the given profile, and returns its report.json,
// the totals of its junit.xml and the child's failure, if any.
func runSelftest(t *testing.T, profile string, args ...string) (reports.Run, junitTotals, error) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestSuites$", "-test.count=1",
		"-kvmspec.backend=emu", "-kvmspec.profile-file=" + profile, "-kvmspec.report-dir=" + dir,
		"-ginkgo.label-filter=selftest"}, args...)...)
	cmd.Env = append(os.Environ(), selftest.EnvVar+"=1")
	out, runErr := cmd.CombinedOutput()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		t.Fatalf("run the selftest child: %v", runErr)
	}
	f, err := os.Open(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("the child wrote no report: %v\n%s", err, out)
	}
	defer f.Close()
	run, err := reports.ReadJSON(f)
	if err != nil {
		t.Fatalf("read the child's report: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var j junitTotals
	if err := xml.Unmarshal(data, &j); err != nil {
		t.Fatalf("parse the child's junit.xml: %v", err)
	}
	if t.Failed() || testing.Verbose() {
		// The child's own "--- FAIL: TestSuites" must not read as a
		// result of this process: go-junit-report finds "--- FAIL:"
		// anywhere on a line and made it a failed testcase of the unit
		// report. Its result lines are shown as "~~~ FAIL: …".
		t.Logf("child output:\n%s", strings.ReplaceAll(string(out), "--- ", "~~~ "))
	}
	return run, j, runErr
}

// junitTotals are the counts on junit.xml's root element, and the skips,
// which the Jenkins schema allows on the testsuites only.
type junitTotals struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Skipped int `xml:"skipped,attr"`
	} `xml:"testsuite"`
}

func (j junitTotals) skipped() int {
	n := 0
	for _, s := range j.Suites {
		n += s.Skipped
	}
	return n
}

func byName(r reports.Run) map[string]reports.Case {
	m := map[string]reports.Case{}
	for _, c := range r.Cases {
		m[c.Name] = c
	}
	return m
}
