package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvmspec-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kvmspec")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build kvmspec: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func kvmspec(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := watchdog(cmd)
	err := cmd.Wait()
	if stop() {
		t.Fatalf("kvmspec %s: still running after %v, stopped with SIGQUIT:\n%s", strings.Join(args, " "), childDeadline, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// childDeadline bounds every kvmspec the tests start: a run that hangs
// fails its test with the run's goroutines instead of stalling the
// package until go test's own timeout names no culprit.
const childDeadline = 3 * time.Minute

// watchdog sends a started cmd SIGQUIT (the Go runtime prints every
// goroutine and exits) once childDeadline passes, and SIGKILL 10 s after.
// The returned stop ends the watch and says whether it fired.
func watchdog(cmd *exec.Cmd) (stop func() bool) {
	var fired atomic.Bool
	quit := time.AfterFunc(childDeadline, func() {
		fired.Store(true)
		cmd.Process.Signal(syscall.SIGQUIT)
	})
	kill := time.AfterFunc(childDeadline+10*time.Second, func() { cmd.Process.Kill() })
	return func() bool {
		quit.Stop()
		kill.Stop()
		return fired.Load()
	}
}

// junit is the part of the JUnit schema the tests read.
type junit struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Name      string `xml:"name,attr"`
		Tests     int    `xml:"tests,attr"`
		Failures  int    `xml:"failures,attr"`
		Skipped   int    `xml:"skipped,attr"`
		Testcases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Type    string `xml:"type,attr"`
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// readReportFile decodes one of dir's report files into v.
func readReportFile(t *testing.T, dir, name string, unmarshal func([]byte, any) error, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func readJUnit(t *testing.T, dir string) junit {
	t.Helper()
	var j junit
	readReportFile(t, dir, "junit.xml", xml.Unmarshal, &j)
	return j
}

// TestUsageErrors: every bad input is refused before anything runs, with
// exit 2 and one plain line on stderr (no panic, no stack, no terminal
// escapes), and the report directory keeps what it had.
func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	afile := filepath.Join(root, "afile")
	big := filepath.Join(root, "big.json")
	notReport := filepath.Join(root, "other.json")
	for _, f := range []struct {
		path string
		data []byte
	}{
		{afile, nil},
		{big, bytes.Repeat([]byte(" "), 2<<20)},
		{notReport, []byte(`{"schema_version": 1, "results": [{"name": "x"}]}`)},
	} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: kvmspec"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"run", "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{"bad label filter", []string{"run", "--label-filter", "smoke && (("}, `bad --label-filter "smoke && ((": Mismatched '('`},
		{"bad focus", []string{"run", "--focus", "("}, `bad --focus "(": missing closing )`},
		{"bad skip", []string{"run", "--skip", "[a"}, `bad --skip "[a"`},
		{"bad focus in list", []string{"list", "--focus", "("}, `bad --focus "("`},
		{"bad focus file", []string{"run", "--focus-file", "x.go:abc"}, "bad --focus-file"},
		{"unknown backend", []string{"run", "--backend", "xen"}, `unknown backend "xen"`},
		{"bad seed", []string{"run", "--seed", "abc"}, "bad --seed"},
		{"stray argument", []string{"caps", "extra"}, "unexpected arguments"},
		{"bad param", []string{"run", "--param", "novalue"}, "want key=value"},
		{"unknown param", []string{"run", "--param", "dirtylog.memory=1M"}, `unknown --param "dirtylog.memory"`},
		{"malformed size param", []string{"run", "--param", "dirtylog.mem=lots"}, `bad --param dirtylog.mem="lots"`},
		{"zero count param", []string{"run", "--param", "conformance.random=0"}, "want a positive integer"},
		{"negative param", []string{"run", "--param", "pagefault.pages=-1"}, "want a non-negative integer"},
		{"malformed duration param", []string{"run", "--param", "dirtylog.interval=soon"}, "want a positive duration"},
		{"zero timeout", []string{"run", "--timeout", "0"}, "bad --timeout 0s"},
		{"negative timeout", []string{"run", "--timeout", "-5m"}, "bad --timeout -5m0s"},
		{"bad flake attempts", []string{"run", "--flake-attempts", "-1"}, "bad --flake-attempts"},
		{"parallel", []string{"run", "--procs", "4"}, "parallel runs"},
		{"ginkgo flag", []string{"run", "-ginkgo.fail-fast"}, "-ginkgo.fail-fast is a Ginkgo flag"},
		{"ginkgo report flag", []string{"run", "--ginkgo.junit-report=x.xml"}, "--ginkgo.junit-report is a Ginkgo flag"},
		{"missing profile file", []string{"run", "--profile-file", "/nonexistent.json"}, "host profile"},
		{"profile from a device", []string{"run", "--profile-file", "/dev/zero"}, "not a regular file"},
		{"oversized profile", []string{"run", "--profile-file", big}, "larger than"},
		{"empty report dir", []string{"run", "--report-dir", ""}, "bad --report-dir ''"},
		{"empty progress file", []string{"run", "--progress-file", ""}, "bad --progress-file ''"},
		{"progress file under a file", []string{"run", "--progress-file", filepath.Join(afile, "p.log")}, "bad --progress-file"},
		{"progress file is a directory", []string{"run", "--progress-file", root}, "bad --progress-file"},
		{"report dir is a file", []string{"run", "--report-dir", afile}, "not a directory"},
		{"report dir under a file", []string{"run", "--report-dir", filepath.Join(afile, "out")}, "not a directory"},
		{"threshold NaN", []string{"report", "--threshold", "NaN", notReport}, "bad --threshold NaN"},
		{"threshold Inf", []string{"report", "--threshold", "+Inf", notReport}, "bad --threshold +Inf"},
		{"threshold negative", []string{"report", "--threshold", "-1", notReport}, "bad --threshold -1"},
		{"report of a device", []string{"report", "/dev/zero"}, "not a regular file"},
		{"not a kvmspec report", []string{"report", notReport}, "not a kvmspec report"},
		{"baseline not a kvmspec report", []string{"report", "--baseline", notReport, notReport}, "not a kvmspec report"},
		{"report without file", []string{"report"}, "want one NEW.json"},
		{"history of one", []string{"report", "--history", notReport}, "--history wants two or more reports"},
		{"history with baseline", []string{"report", "--history", "--baseline", notReport, notReport, notReport}, "exclude each other"},
		{"help for nothing", []string{"help", "frobnicate"}, `unknown command "frobnicate"`},
	}
	dir := greenDir(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if len(args) > 0 && args[0] == "run" && !slices.Contains(args, "--report-dir") {
				args = append(append([]string{}, args...), "--report-dir", dir)
			}
			r := kvmspec(t, nil, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("stderr %q does not say %q", r.stderr, c.want)
			}
			if c.args != nil && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
			if strings.ContainsAny(r.stderr, "\x1b") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("stderr has escapes or a stack: %q", r.stderr)
			}
		})
	}
	if s := readState(t, dir); s.Incomplete != "" || s.Meta.Seed != 1111 {
		t.Errorf("a refused run touched the report directory: %+v", s)
	}
}

// TestHelp: `help CMD` and `CMD --help` describe the command, its flags,
// exit codes and, for run, the parameter keys and labels; flags may come
// after positional arguments.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "run"}, {"run", "--help"}, {"run", "-h"}} {
		r := kvmspec(t, nil, args...)
		if r.code != exitOK {
			t.Fatalf("%v: exit %d", args, r.code)
		}
		for _, want := range []string{"usage: kvmspec run", "Runs the selected specs", "-label-filter", "-report-dir",
			"exit status:", "130", "dirtylog.perf.mem", "conformance.random", "smoke, dirtylog", "backend:emu", "cpl3", "SIGUSR1"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, r.stdout)
			}
		}
	}
	for _, cmd := range []string{"caps", "list", "report", "version"} {
		r := kvmspec(t, nil, "help", cmd)
		if r.code != exitOK || !strings.Contains(r.stdout, "usage: kvmspec "+cmd) || !strings.Contains(r.stdout, "exit status:") {
			t.Errorf("help %s: exit %d\n%s", cmd, r.code, r.stdout)
		}
	}
	r := kvmspec(t, nil, "help")
	if r.code != exitOK || !strings.Contains(r.stdout, "report ") {
		t.Errorf("help: %+v", r)
	}
	// caps names the reason once, not "unavailable: kvm: unavailable: …".
	r = kvmspec(t, []string{"KVMSPEC_KVM_DEVICE=/nonexistent/kvm"}, "caps", "--backend", "kvm")
	if r.code != exitOK || strings.Count(r.stdout, "unavailable") != 1 || !strings.Contains(r.stdout, "/nonexistent/kvm does not exist") {
		t.Errorf("caps without kvm:\n%s", r.stdout)
	}
}

func TestRunWritesReports(t *testing.T) {
	dir := t.TempDir()
	// Flags after the positional "run" in any order, --param recorded.
	r := kvmspec(t, nil, "run", "--backend", "emu", "--label-filter", "smoke", "--focus", "arithmetic|pio", "--report-dir", dir, "--seed", "4242",
		"--param", "conformance.random=7")
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	j := readJUnit(t, dir)
	n := 0
	for _, s := range j.Suites {
		if len(s.Testcases) != s.Tests {
			t.Errorf("suite %s: tests=%d but %d testcases", s.Name, s.Tests, len(s.Testcases))
		}
		n += len(s.Testcases)
	}
	if n != j.Tests || n != 4 {
		t.Errorf("testsuites tests=%d, testcases %d, want 4 (arithmetic and pio, two modes)", j.Tests, n)
	}
	var rep struct {
		SchemaVersion int `json:"schema_version"`
		Meta          struct {
			Seed int64 `json:"seed"`
		} `json:"meta"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.SchemaVersion < 1 || rep.Meta.Seed != 4242 {
		t.Fatalf("report.json: %v %+v", err, rep)
	}
	if s := readState(t, dir); s.Meta.Params["conformance.random"] != "7" {
		t.Errorf("report.json params %v", s.Meta.Params)
	}
	junitText, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if !bytes.Contains(junitText, []byte(`<property name="kvmspec.param.conformance.random" value="7">`)) {
		t.Errorf("junit.xml lacks the --param property")
	}
	checkJUnitSchema(t, dir)
	if !strings.Contains(r.stdout, "seed 4242") {
		t.Errorf("summary does not print the seed:\n%s", r.stdout)
	}
}

func TestNothingSelectedFails(t *testing.T) {
	r := kvmspec(t, nil, "run", "--label-filter", "no-such-label", "--report-dir", t.TempDir())
	if r.code != exitFailed || !strings.Contains(r.stderr, "no spec matched") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

const selftestProfile = `{
  "name": "selftest",
  "description": "deviations of kvmspec's own self-test specs",
  "match": {},
  "deviations": [
    {"id": "st-fails", "backend": "emu", "specs": ["selftest/a deviation that fails as declared"], "reason": "declared to fail", "run": true},
    {"id": "st-passes", "backend": "emu", "specs": ["selftest/a deviation that passes"], "reason": "declared to fail but passes", "run": true},
    {"id": "st-notrun", "backend": "emu", "specs": ["selftest/a deviation that is not run"], "reason": "would harm the host", "run": false}
  ]
}`

func TestSelftestOutcomes(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(t.TempDir(), "selftest.json")
	if err := os.WriteFile(prof, []byte(selftestProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kvmspec(t, []string{"KVMSPEC_SELFTEST=1"}, "run", "--backend", "emu", "--label-filter", "selftest",
		"--profile-file", prof, "--report-dir", dir)
	if r.code != exitFailed {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	j := readJUnit(t, dir)
	cases := map[string]string{} // name → outcome
	detail := map[string]string{}
	for _, s := range j.Suites {
		for _, c := range s.Testcases {
			switch {
			case c.Failure != nil:
				cases[c.Name] = "failure:" + c.Failure.Type
				detail[c.Name] = c.Failure.Message + "\n" + c.Failure.Text
			case c.Skipped != nil:
				cases[c.Name] = "skipped"
				detail[c.Name] = c.Skipped.Message
			default:
				cases[c.Name] = "passed"
			}
		}
	}
	want := map[string]string{
		"a failing guest assert":                   "failure:failed",
		"a guest that spins past the spec timeout": "failure:timedout",
		"a spec after the timeout":                 "passed",
		"a deviation that fails as declared":       "skipped",
		"a deviation that passes":                  "failure:failed",
		"a deviation that is not run":              "skipped",
		"always skips":                             "skipped",
	}
	for name, w := range want {
		if cases[name] != w {
			t.Errorf("%q: %s, want %s (%s)", name, cases[name], w, detail[name])
		}
	}
	checks := []struct{ name, re string }{
		{"a failing guest assert", `selftest\.go:\d+: one is not two \(values: 0x1 0x2\)`},
		// The useful part first, no pointer address (stable across runs).
		{"a failing guest assert", `^guest assertion failed at \S+selftest\.go:\d+: one is not two [^|]*\n`},
		{"a deviation that fails as declared", `^known deviation: declared to fail \[st-fails\]`},
		{"a deviation that passes", `unexpected pass: remove the deviation st-passes`},
		{"a deviation that is not run", `^known deviation \(not run\): would harm the host`},
		{"always skips", `selftest: skipped on purpose`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(detail[c.name]) {
			t.Errorf("%q: %q does not match %s", c.name, detail[c.name], c.re)
		}
	}
}

func TestAllSkippedFails(t *testing.T) {
	r := kvmspec(t, []string{"KVMSPEC_SELFTEST=1"}, "run", "--backend", "emu", "--label-filter", "selftest", "--focus", "always skips", "--report-dir", t.TempDir())
	if r.code != exitFailed || !strings.Contains(r.stderr, "skipped: nothing was tested") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestWithoutKVM: a host without /dev/kvm reports the backend unavailable
// with the reason, skips its specs (a run of nothing but skips fails), and
// auto falls back to the bundled backend.
func TestWithoutKVM(t *testing.T) {
	noKVM := []string{"KVMSPEC_KVM_DEVICE=/nonexistent/kvm"}
	dir := t.TempDir()
	r := kvmspec(t, noKVM, "run", "--backend", "kvm", "--label-filter", "smoke", "--report-dir", dir)
	if r.code != exitFailed || !strings.Contains(r.stderr, "all") || !strings.Contains(r.stderr, "skipped") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	j := readJUnit(t, dir)
	skipped := 0
	for _, s := range j.Suites {
		skipped += s.Skipped
	}
	if j.Tests == 0 || skipped != j.Tests {
		t.Fatalf("junit: %d tests, %d skipped; want all skipped", j.Tests, skipped)
	}
	for _, c := range j.Suites[0].Testcases {
		if c.Skipped == nil || !strings.Contains(c.Skipped.Message, "/nonexistent/kvm does not exist") {
			t.Fatalf("%s: skip reason %+v does not name the missing device", c.Name, c.Skipped)
		}
	}
	r = kvmspec(t, noKVM, "run", "--backend", "auto", "--label-filter", "smoke", "--report-dir", t.TempDir())
	if r.code != exitOK || !strings.Contains(r.stdout, "backends emu") {
		t.Fatalf("auto without kvm: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kvmspec(t, noKVM, "caps", "--backend", "kvm")
	if r.code != exitOK || !strings.Contains(r.stdout, "unavailable") {
		t.Fatalf("caps without kvm: exit %d\n%s", r.code, r.stdout)
	}
}

func TestCapsAndList(t *testing.T) {
	r := kvmspec(t, nil, "caps")
	if r.code != exitOK || !strings.Contains(r.stdout, "kvm:") || !strings.Contains(r.stdout, "emu:") {
		t.Fatalf("caps: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kvmspec(t, nil, "list", "--backend", "kvm", "--label-filter", "smoke && cpl3")
	if r.code != exitOK || !strings.Contains(r.stdout, "smoke/pio out and in [cpl3]") || strings.Contains(r.stdout, "[cpl0]") {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kvmspec(t, nil, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "kvmspec ") {
		t.Fatalf("version: %+v", r)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	runInto := func(name string) string {
		d := filepath.Join(dir, name)
		r := kvmspec(t, nil, "run", "--backend", "emu", "--label-filter", "smoke", "--focus", "arithmetic|ucall", "--report-dir", d)
		if r.code != exitOK {
			t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
		}
		return filepath.Join(d, "report.json")
	}
	a, b := runInto("a"), runInto("b")

	r := kvmspec(t, nil, "report", "--baseline", a, b)
	if r.code != exitOK || !strings.Contains(r.stdout, "NO REGRESSIONS") {
		t.Fatalf("same suite twice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Flags after the positional argument; a history of the two.
	hist := filepath.Join(dir, "history.html")
	r = kvmspec(t, nil, "report", "--history", a, b, "--out", hist)
	if r.code != exitOK || !strings.Contains(r.stdout, "history of 2 runs") {
		t.Fatalf("history: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if page, err := os.ReadFile(hist); err != nil || !bytes.Contains(page, []byte("failing now (0)")) {
		t.Fatalf("history.html: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "b", "report.html"))
	if err != nil || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("report.html: %v", err)
	}

	// A case that passed in the baseline and fails now is a regression.
	data, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc["cases"].([]any)[0].(map[string]any)
	c["state"], c["message"] = "failed", "injected failure"
	bad := filepath.Join(dir, "bad.json")
	out, _ := json.Marshal(doc)
	if err := os.WriteFile(bad, out, 0o644); err != nil {
		t.Fatal(err)
	}
	r = kvmspec(t, nil, "report", "--baseline", a, "--out", filepath.Join(dir, "bad.html"), bad)
	if r.code != exitFailed || !strings.Contains(r.stdout, "REGRESSION") || !strings.Contains(r.stdout, "injected failure") {
		t.Fatalf("regression: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An incomplete report (a run that died) is no baseline, and a page
	// of one fails.
	doc["incomplete"] = "incomplete: the run started at 2026-12-05T09:00:00Z (pid 1) did not finish"
	incomplete := filepath.Join(dir, "incomplete.json")
	out, _ = json.Marshal(doc)
	if err := os.WriteFile(incomplete, out, 0o644); err != nil {
		t.Fatal(err)
	}
	r = kvmspec(t, nil, "report", "--baseline", incomplete, a)
	if r.code != exitUsage || !strings.Contains(r.stderr, "did not finish") {
		t.Errorf("incomplete baseline: exit %d, stderr %q", r.code, r.stderr)
	}
	r = kvmspec(t, nil, "report", "--out", filepath.Join(dir, "inc.html"), incomplete)
	if r.code != exitFailed || !strings.Contains(r.stderr, "did not finish") {
		t.Errorf("incomplete report: exit %d, stderr %q", r.code, r.stderr)
	}

	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte(`{"schema_version": 1, "cases": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"report", corrupt}, {"report", "--baseline", corrupt, a}, {"report"}, {"report", "--threshold", "-1", a}} {
		r = kvmspec(t, nil, args...)
		if r.code != exitUsage || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want a clear usage error", args, r.code, r.stderr)
		}
	}
}
