package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/reports"
)

// arm64Fixture is the report directory of a real arm64 stage:
// `make test-arm64 ARM64_LABELS='arch:arm64 && smoke' ARM64_UNITS=0`
// (real KVM/arm64 in Debian's 6.12 arm64 kernel under QEMU 10.0.2),
// backends kvm-arm64 and emu-arm64, written before Meta.Platform existed.
const arm64Fixture = "testdata/arm64-smoke"

// copyDir copies a report directory's files, so a test can change or
// check them without touching the original.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// snapshot hashes every file below the directories.
func snapshot(t *testing.T, dirs ...string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			out[p] = sha256.Sum256(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func readRun(t *testing.T, dir string) reports.Run {
	t.Helper()
	r, err := readReport(filepath.Join(dir, reports.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rewrite changes the report.json of dir with edit.
func rewrite(t *testing.T, dir string, edit func(*reports.Run)) {
	t.Helper()
	r := readRun(t, dir)
	edit(&r)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, reports.JSONFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// junitProps is junit.xml with each testsuite's properties.
type junitProps struct {
	Tests  int `xml:"tests,attr"`
	Suites []struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Skipped    int    `xml:"skipped,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Testcases []struct {
			Name string `xml:"name,attr"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func (j junitProps) prop(i int, name string) string {
	for _, p := range j.Suites[i].Properties {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// testcaseNames are "testsuite/testcase" of a junit.xml.
func testcaseNames(t *testing.T, dir string) []string {
	t.Helper()
	var j junitProps
	readReportFile(t, dir, "junit.xml", xml.Unmarshal, &j)
	var out []string
	for _, s := range j.Suites {
		for _, c := range s.Testcases {
			out = append(out, s.Name+"/"+c.Name)
		}
	}
	return out
}

// TestMergePlatformsEndToEnd: a real x86 emu run and a real arm64
// stage's report merge into one report directory (junit.xml, report.ktap,
// report.json, report.html) with both architectures: every testcase of
// both under its own unchanged name, once; counts per architecture that
// agree in every format and with the inputs; each testsuite with its own
// platform's facts; the inputs untouched.
func TestMergePlatformsEndToEnd(t *testing.T) {
	root := t.TempDir()
	x86, arm, out := filepath.Join(root, "suites"), filepath.Join(root, "arm64"), filepath.Join(root, "merged")
	if r := kvmspec(t, nil, "run", "--backend", "emu", "--label-filter", "smoke", "--seed", "5", "--report-dir", x86); r.code != exitOK {
		t.Fatalf("x86 run: exit %d\n%s", r.code, r.stderr)
	}
	copyDir(t, arm64Fixture, arm)
	before := snapshot(t, x86, arm)

	r := kvmspec(t, nil, "merge", "--platforms", out, x86, arm)
	if r.code != exitOK {
		t.Fatalf("merge --platforms: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after := snapshot(t, x86, arm); !mapsEqual(before, after) {
		t.Error("merge --platforms changed its inputs")
	}
	for _, f := range []string{"junit.xml", "report.ktap", "report.json", "report.html"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	xr, ar, m := readRun(t, x86), readRun(t, arm), readRun(t, out)

	// Every testcase once, under its own name.
	merged := testcaseNames(t, out)
	want := append(testcaseNames(t, x86), testcaseNames(t, arm)...)
	slices.Sort(merged)
	slices.Sort(want)
	if !slices.Equal(merged, want) {
		t.Errorf("merged junit.xml testcases differ from the inputs':\nmerged %d %v\ninputs %d %v", len(merged), merged, len(want), want)
	}
	if len(slices.Compact(slices.Clone(merged))) != len(merged) {
		t.Error("a testcase name twice in the merged junit.xml")
	}

	// Counts per architecture: those of the inputs, in report.json, the
	// JUnit testsuites' properties, KTAP, the page and the summary.
	archs := m.ArchCounts()
	if len(archs) != 2 || archs[0].Arch != "x86_64" || archs[1].Arch != "arm64" {
		t.Fatalf("architectures %+v", archs)
	}
	if archs[0].Counts.Total != len(xr.Cases) || archs[1].Counts.Total != len(ar.Cases) || archs[1].Counts.Passed == 0 {
		t.Errorf("per architecture %+v; inputs %d x86 and %d arm64 testcases", archs, len(xr.Cases), len(ar.Cases))
	}
	if m.Counts().Total != len(xr.Cases)+len(ar.Cases) || m.Filtered != xr.Filtered+ar.Filtered {
		t.Errorf("counts %+v", m.Counts())
	}
	var j junitProps
	readReportFile(t, out, "junit.xml", xml.Unmarshal, &j)
	perArch := map[string]int{}
	for i, s := range j.Suites {
		if s.Tests != len(s.Testcases) {
			t.Errorf("testsuite %s: tests=%d, %d testcases", s.Name, s.Tests, len(s.Testcases))
		}
		arch := j.prop(i, "kvmspec.arch")
		perArch[arch] += s.Tests
		wantKernel, wantProfile := hostKernel(xr), xr.Meta.Profile
		if arch == "arm64" {
			wantKernel, wantProfile = hostKernel(ar), ar.Meta.Profile
		}
		if got := j.prop(i, "host.kernel"); got != wantKernel || j.prop(i, "kvmspec.profile") != wantProfile {
			t.Errorf("testsuite %s (%s): kernel %q profile %q, want %q %q", s.Name, arch, got, j.prop(i, "kvmspec.profile"), wantKernel, wantProfile)
		}
		for _, a := range archs {
			if j.prop(i, "kvmspec.arch."+a.Arch) != a.Counts.String() {
				t.Errorf("testsuite %s: kvmspec.arch.%s %q", s.Name, a.Arch, j.prop(i, "kvmspec.arch."+a.Arch))
			}
		}
	}
	if perArch["x86_64"] != archs[0].Counts.Total || perArch["arm64"] != archs[1].Counts.Total || j.Tests != len(merged) {
		t.Errorf("junit testcases per kvmspec.arch %v, want %+v", perArch, archs)
	}
	checkJUnitSchema(t, out)
	ktap, err := os.ReadFile(filepath.Join(out, "report.ktap"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`(?m)^ {8}(ok|not ok) `).FindAll(ktap, -1)); n != len(merged) {
		t.Errorf("report.ktap has %d leaves, want %d", n, len(merged))
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range archs {
		line := fmt.Sprintf(`(?m)^  %s +%d +%d +%d +%d +%d `, a.Arch, a.Counts.Passed, a.Counts.Failed, a.Counts.Skipped, a.Counts.Deviations, a.Counts.Total)
		if !regexp.MustCompile(line).MatchString(r.stdout) {
			t.Errorf("summary lacks %s's counts:\n%s", a.Arch, r.stdout)
		}
		if !strings.Contains(string(ktap), "# arch "+a.Arch+": "+a.Counts.String()) {
			t.Errorf("report.ktap lacks %s's counts", a.Arch)
		}
		if !regexp.MustCompile(fmt.Sprintf(`<tr><td>%s</td><td class="num[^"]*">%d</td><td class="num[^"]*">%d</td>`, a.Arch, a.Counts.Passed, a.Counts.Failed)).Match(page) {
			t.Errorf("report.html lacks %s's counts", a.Arch)
		}
	}
	if !strings.Contains(r.stdout, "merged platforms x86_64,arm64") || !strings.Contains(r.stdout, "PASS: ") {
		t.Errorf("summary:\n%s", r.stdout)
	}
}

func mapsEqual(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func hostKernel(r reports.Run) string {
	for _, p := range r.Meta.Host {
		if p.Name == "host.kernel" {
			return p.Value
		}
	}
	return ""
}

// TestMergePlatformsRefusesAndFails: what cannot be one report is refused
// with exit 2 before anything is written (a backend in two runs, a missing
// or corrupt input, OUT being an input, bad flags); a merge whose runs
// fail, or whose platform tested nothing, exits 1; a skipped stage is
// recorded and passes.
func TestMergePlatformsRefusesAndFails(t *testing.T) {
	root := t.TempDir()
	dir := func(name string) string { return filepath.Join(root, name) }
	x86 := dir("x86")
	if r := kvmspec(t, nil, "run", "--backend", "emu", "--label-filter", "smoke && cpl3", "--report-dir", x86); r.code != exitOK {
		t.Fatalf("x86 run: exit %d\n%s", r.code, r.stderr)
	}
	copyDir(t, arm64Fixture, dir("arm64"))
	copyDir(t, arm64Fixture, dir("corrupt"))
	b, err := os.ReadFile(filepath.Join(dir("corrupt"), "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir("corrupt"), "report.json"), b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	copyDir(t, arm64Fixture, dir("failing"))
	rewrite(t, dir("failing"), func(r *reports.Run) {
		i := slices.IndexFunc(r.Cases, func(c reports.Case) bool { return c.State == reports.StatePassed })
		r.Cases[i].State, r.Cases[i].Message = reports.StateFailed, "ESR 0x96000045 where 0x96000046 was expected"
	})
	copyDir(t, arm64Fixture, dir("allskipped"))
	rewrite(t, dir("allskipped"), func(r *reports.Run) {
		for i := range r.Cases {
			r.Cases[i].State, r.Cases[i].Message = reports.StateSkipped, "kvm-arm64: unavailable"
		}
	})
	before := snapshot(t, root)

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // in stdout (a merge that wrote its report)
		stderr string
	}{
		{"a backend in two runs", []string{x86, x86}, exitUsage, "", `backend emu is in report 1 (` + x86 + `) and report 2 (` + x86 + `)`},
		{"corrupt", []string{x86, dir("corrupt")}, exitUsage, "", "report 2 of 2 (" + dir("corrupt") + "): " + filepath.Join(dir("corrupt"), "report.json") + ": report json: "},
		{"missing", []string{x86, dir("nothing")}, exitUsage, "", "report 2 of 2 (" + dir("nothing") + "): open " + filepath.Join(dir("nothing"), "report.json") + ": no such file or directory; nothing written"},
		{"OUT is an input", []string{"OUT=" + x86, x86, dir("arm64")}, exitUsage, "", "the merge must not overwrite its inputs"},
		{"skipped flag without --platforms", []string{"--skipped-platform", "arm64=no qemu", "NOPLAT", x86, x86}, exitUsage, "", "need --platforms"},
		{"skipped flag without a reason", []string{"--skipped-platform", "arm64", x86}, exitUsage, "", "want NAME=REASON"},
		{"only OUT", nil, exitUsage, "", "at least one report directory"},
		{"arm64 stage skipped", []string{x86, "--skipped-platform", "arm64=qemu-system-aarch64 not installed"}, exitOK,
			"platform arm64 (arm64): skipped: qemu-system-aarch64 not installed", ""},
		{"arm64 stage failed without a report", []string{x86, "--failed-platform", "arm64=the guest sent no results"}, exitFailed,
			"suite/[platform arm64]: platform arm64: the guest sent no results", "FAIL: 1 of"},
		{"a failing arm64 testcase", []string{x86, dir("failing")}, exitFailed, "ESR 0x96000045", "FAIL: 1 of"},
		{"arm64 tested nothing", []string{x86, dir("allskipped")}, exitFailed, "platform arm64: all 30 testcases were skipped: nothing was tested there", "FAIL: 1 of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := dir("out-" + strings.ReplaceAll(tc.name, " ", "-"))
			args := []string{"merge", "--platforms", out}
			for _, a := range tc.args {
				switch {
				case strings.HasPrefix(a, "OUT="):
					args[2] = strings.TrimPrefix(a, "OUT=")
				case a == "NOPLAT":
					args = slices.DeleteFunc(args, func(s string) bool { return s == "--platforms" })
				default:
					args = append(args, a)
				}
			}
			if tc.name == "only OUT" {
				args = args[:3]
			}
			r := kvmspec(t, nil, args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("merge %v: exit %d, want %d with %q / %q\nstdout:\n%s\nstderr:\n%s", args[1:], r.code, tc.code, tc.stdout, tc.stderr, r.stdout, r.stderr)
			}
			_, err := os.Stat(out)
			if wrote := err == nil; wrote != (tc.code != exitUsage) {
				t.Errorf("exit %d: OUT written %v", r.code, wrote)
			}
			if tc.code == exitUsage && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("a usage error of more than one line:\n%s", r.stderr)
			}
		})
	}
	after := snapshot(t, root)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
	// The skipped stage is in every report file.
	m := readRun(t, dir("out-arm64-stage-skipped"))
	if i := slices.IndexFunc(m.Meta.Platforms, func(p reports.Platform) bool { return p.Name == "arm64" }); i < 0 || m.Meta.Platforms[i].Skipped != "qemu-system-aarch64 not installed" {
		t.Errorf("report.json platforms %+v", m.Meta.Platforms)
	}
	var j junitProps
	readReportFile(t, dir("out-arm64-stage-skipped"), "junit.xml", xml.Unmarshal, &j)
	if got := j.prop(0, "kvmspec.platform.arm64.status"); got != "skipped: qemu-system-aarch64 not installed" {
		t.Errorf("junit kvmspec.platform.arm64.status %q", got)
	}
}
