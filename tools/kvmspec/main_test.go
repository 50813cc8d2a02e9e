package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/kvm"
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
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// junit is the part of the JUnit schema the tests read.
type junit struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
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

func readJUnit(t *testing.T, dir string) junit {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	return j
}

func requireKVM(t *testing.T) {
	t.Helper()
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		t.Skipf("needs a usable kvm backend: %v", err)
	}
	h.Close()
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: kvmspec"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"run", "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{"bad label filter", []string{"run", "--label-filter", "smoke && ((", "--report-dir", t.TempDir()}, "bad --label-filter"},
		{"unknown backend", []string{"run", "--backend", "xen", "--report-dir", t.TempDir()}, `unknown backend "xen"`},
		{"bad seed", []string{"run", "--seed", "abc"}, "bad --seed"},
		{"stray argument", []string{"caps", "extra"}, "unexpected arguments"},
		{"bad param", []string{"run", "--param", "novalue"}, "want key=value"},
		{"missing profile file", []string{"run", "--profile-file", "/nonexistent.json", "--report-dir", t.TempDir()}, "host profile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := kvmspec(t, nil, c.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("stderr %q does not say %q", r.stderr, c.want)
			}
		})
	}
}

func TestRunWritesReports(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	r := kvmspec(t, nil, "run", "--backend", "kvm", "--label-filter", "smoke", "--focus", "arithmetic|pio", "--report-dir", dir, "--seed", "4242")
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
	if err := json.Unmarshal(b, &rep); err != nil || rep.SchemaVersion != 1 || rep.Meta.Seed != 4242 {
		t.Fatalf("report.json: %v %+v", err, rep)
	}
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
    {"id": "st-fails", "backend": "kvm", "specs": ["selftest/a deviation that fails as declared"], "reason": "declared to fail", "run": true},
    {"id": "st-passes", "backend": "kvm", "specs": ["selftest/a deviation that passes"], "reason": "declared to fail but passes", "run": true},
    {"id": "st-notrun", "backend": "kvm", "specs": ["selftest/a deviation that is not run"], "reason": "would harm the host", "run": false}
  ]
}`

func TestSelftestOutcomes(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	prof := filepath.Join(t.TempDir(), "selftest.json")
	if err := os.WriteFile(prof, []byte(selftestProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kvmspec(t, []string{"KVMSPEC_SELFTEST=1"}, "run", "--backend", "kvm", "--label-filter", "selftest",
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
	requireKVM(t)
	r := kvmspec(t, []string{"KVMSPEC_SELFTEST=1"}, "run", "--backend", "kvm", "--label-filter", "selftest", "--focus", "always skips", "--report-dir", t.TempDir())
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
	if j.Tests == 0 || j.Skipped != j.Tests {
		t.Fatalf("junit: %d tests, %d skipped; want all skipped", j.Tests, j.Skipped)
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
