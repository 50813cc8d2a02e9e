package main

// End-to-end tests of the binary on the emu backend, so that a machine
// without /dev/kvm still tests report writing, interruption, concurrent
// runs and input checking. Each run selects a handful of specs.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quick selects two fast smoke specs on emu.
var quick = []string{"--backend", "emu", "--label-filter", "smoke", "--focus", "arithmetic"}

// slow selects one emu spec that runs for many seconds (its iteration
// count raised), so a test can signal a run in the middle of a spec.
var slow = []string{"--backend", "emu", "--label-filter", "dirtylog && cpl3", "--focus", "clear-log concurrent writer",
	"--param", "dirtylog.iterations=100000"}

func runArgs(dir string, extra ...string) []string {
	return append(append([]string{"run", "--report-dir", dir}, quick...), extra...)
}

// reportState is what the tests read from report.json.
type reportState struct {
	Incomplete string `json:"incomplete"`
	Meta       struct {
		Seed   int64             `json:"seed"`
		Params map[string]string `json:"params"`
	} `json:"meta"`
	Cases []struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"cases"`
}

func readState(t *testing.T, dir string) reportState {
	t.Helper()
	var s reportState
	readReportFile(t, dir, "report.json", json.Unmarshal, &s)
	return s
}

// greenDir is a report directory holding a passing run's reports.
func greenDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if r := kvmspec(t, nil, runArgs(dir, "--seed", "1111")...); r.code != exitOK {
		t.Fatalf("green run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return dir
}

// start runs kvmspec in the background and waits until it has marked dir
// incomplete (it has checked its input and taken the directory) and
// Ginkgo has begun the suite (its signal handler is installed).
func start(t *testing.T, dir string, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := watchdog(cmd)
	t.Cleanup(func() { stop(); cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, "report.json")); err == nil && bytes.Contains(b, []byte(`"incomplete"`)) &&
			strings.Contains(out.String(), suiteHeader) {
			return cmd, out
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("run never marked %s incomplete and began the suite:\n%s", dir, out.String())
	return nil, nil
}

// suiteHeader is what Ginkgo prints as the suite begins ("[seed] kvmspec
// - 1/807 specs"), after it installed its signal handler.
const suiteHeader = "] kvmspec - "

// syncBuffer is a bytes.Buffer that a child's output can be copied into
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// A run stopped by a signal never leaves the previous run's green
// reports: SIGINT and SIGTERM write the interrupted run's reports, SIGKILL
// leaves the "incomplete" marker; the next run then writes its own.
func TestInterruptedRunLeavesNoStaleReports(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := greenDir(t)
			cmd, out := start(t, dir, nil, append([]string{"run", "--report-dir", dir}, slow...)...)
			time.Sleep(300 * time.Millisecond) // into the spec
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := exitCode(cmd.Wait())
			s := readState(t, dir)
			switch sig {
			case syscall.SIGKILL, syscall.SIGHUP, syscall.SIGQUIT:
				// Killed (SIGQUIT: Go dumps its goroutines and exits 2).
				if code == exitOK || !strings.HasPrefix(s.Incomplete, "incomplete: the run started at") {
					t.Fatalf("exit %d, incomplete %q: the killed run's marker should stay", code, s.Incomplete)
				}
			default:
				interrupted := false
				for _, c := range s.Cases {
					interrupted = interrupted || c.State == "interrupted"
				}
				if code != exitFailed || !interrupted || s.Incomplete != "" {
					t.Fatalf("exit %d, cases %+v, incomplete %q\n%s", code, s.Cases, s.Incomplete, out)
				}
			}
			if s.Meta.Seed == 1111 {
				t.Fatal("report.json is still the green run's")
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".kvmspec-tmp-*"))
			if (sig == syscall.SIGINT || sig == syscall.SIGTERM) && len(left) > 0 {
				t.Errorf("temporaries left: %v", left)
			}
			// The next run takes the directory (the lock died with the
			// process) and writes a complete report.
			if r := kvmspec(t, nil, runArgs(dir, "--seed", "2222")...); r.code != exitOK {
				t.Fatalf("next run: exit %d\n%s", r.code, r.stderr)
			}
			if s := readState(t, dir); s.Incomplete != "" || s.Meta.Seed != 2222 {
				t.Fatalf("next run's report: incomplete %q seed %d", s.Incomplete, s.Meta.Seed)
			}
			checkJUnitSchema(t, dir)
		})
	}
}

// A signal that arrives before the specs start (Ginkgo's handler is not
// installed yet) still marks the directory, and the run exits 130.
func TestEarlySignalMarksDirectory(t *testing.T) {
	// The earlier the signal, the likelier it beats the runtime's handler
	// on a loaded machine; later ones must give one of the two answers.
	for _, delay := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
		dir := greenDir(t)
		cmd := exec.Command(binary, runArgs(dir)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := watchdog(cmd)
		defer stop()
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGINT)
		code := exitCode(cmd.Wait())
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Logf("after %v: killed before the Go runtime had a handler", delay)
			continue
		}
		s := readState(t, dir)
		switch code {
		case exitInterrupted:
			if !strings.Contains(s.Incomplete, "interrupted by interrupt before any spec ran") {
				t.Fatalf("after %v: exit 130 but report.json says %q", delay, s.Incomplete)
			}
		case exitFailed:
			// The signal came once Ginkgo ran: an interrupted run's report.
			if s.Meta.Seed == 1111 {
				t.Fatalf("after %v: report.json is still the green run's", delay)
			}
		default:
			t.Fatalf("after %v: exit %d", delay, code)
		}
		t.Logf("after %v: exit %d", delay, code)
		return
	}
	t.Skip("every signal arrived before the Go runtime could install a handler (a loaded machine)")
}

// A second run into a directory another run holds is refused at once,
// and the first run's reports are whole.
func TestConcurrentRunsRefused(t *testing.T) {
	dir := t.TempDir()
	first, out := start(t, dir, nil, append([]string{"run", "--report-dir", dir}, slow...)...)
	r := kvmspec(t, nil, runArgs(dir)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "in use by another run") ||
		!strings.Contains(r.stderr, "pid "+strconv.Itoa(first.Process.Pid)) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("second run: exit %d, stderr %q", r.code, r.stderr)
	}
	time.Sleep(300 * time.Millisecond) // into the spec
	first.Process.Signal(syscall.SIGINT)
	if code := exitCode(first.Wait()); code != exitFailed {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	if s := readState(t, dir); s.Incomplete != "" || len(s.Cases) == 0 {
		t.Fatalf("first run's report: %+v", s)
	}
}

// checkJUnitSchema validates dir's junit.xml with xmllint against the
// Jenkins schema where xmllint is installed (the reports package checks
// the same constraints in Go everywhere).
func checkJUnitSchema(t *testing.T, dir string) {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		return
	}
	schema := filepath.Join("..", "..", "fixtures", "junit", "jenkins-xunit-junit-10.xsd")
	if out, err := exec.Command(xmllint, "--noout", "--schema", schema, filepath.Join(dir, "junit.xml")).CombinedOutput(); err != nil {
		t.Errorf("junit.xml does not validate: %v\n%s", err, out)
	}
}

// A green run does not print the report entries (perf tables) of its
// passing specs: they are in the report files.
func TestPassingSpecsQuiet(t *testing.T) {
	dir := t.TempDir()
	r := kvmspec(t, nil, "run", "--backend", "emu", "--label-filter", "perf || smoke", "--focus", "arithmetic|phases|1 vcpu",
		"--param", "dirtylog.perf.mem=4M", "--param", "pagefault.pages=64", "--report-dir", dir)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Count(r.stdout, "\n")
	if strings.Contains(r.stdout, "Report Entries") || lines > 40 {
		t.Errorf("%d lines on stdout, report entries included:\n%s", lines, r.stdout)
	}
	if !strings.Contains(r.stdout, "PASS: ") || !strings.Contains(r.stdout, "perf (median, n):") {
		t.Errorf("summary missing:\n%s", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || !bytes.Contains(b, []byte(`"report_entries"`)) || !bytes.Contains(b, []byte(`"samples"`)) {
		t.Errorf("report.json lacks the entries or the samples: %v", err)
	}
}

// On a terminal a run shows a progress line: specs done of the total,
// failures so far, the current spec. script(1) gives the run a terminal.
func TestProgressLineOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed: no terminal to run under")
	}
	dir := t.TempDir()
	cmdline := strings.Join(append([]string{binary}, runArgs(dir)...), " ")
	out, err := exec.Command(script, "-qec", cmdline, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"[0/2] 0 failed", "[1/2] 0 failed  emu/smoke/arithmetic", "\r\x1b[K", "PASS: 2 passed"} {
		if !strings.Contains(text, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, text)
		}
	}

	// With --shard the line counts this shard's specs only: its last
	// state is n of n, n the testcases the shard reports.
	dir = t.TempDir()
	cmdline = strings.Join(append([]string{binary, "run", "--report-dir", dir, "--shard", "1/2"}, smokeEmu...), " ")
	out, err = exec.Command(script, "-qec", cmdline, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	n := readJUnit(t, dir).Tests
	lines := regexp.MustCompile(`\[(\d+)/(\d+)\] \d+ failed`).FindAllStringSubmatch(string(out), -1)
	if n == 0 || len(lines) == 0 {
		t.Fatalf("%d testcases, %d progress lines:\n%q", n, len(lines), out)
	}
	if last := lines[len(lines)-1]; last[1] != strconv.Itoa(n) || last[2] != strconv.Itoa(n) {
		t.Errorf("last progress %s, want [%d/%d]", last[0], n, n)
	}
}

// --progress-file gets a line as each spec starts and ends, appended to
// what the file held, with the counts of the run: the line before a
// hang names the spec a machine hung in. A failing spec's end says so.
func TestProgressFile(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "progress.log")
	if err := os.WriteFile(log, []byte("earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kvmspec(t, nil, append(runArgs(dir), "--progress-file", log)...)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	ts := `kvmspec: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z `
	spec := `emu/smoke/arithmetic[^\n]*`
	want := []string{`earlier line`, ts + `selected 2 specs`,
		ts + `start \[1/2\] ` + spec, ts + `passed \[1/2\] ` + spec + ` \(\d+\.\d{3}s\)`,
		ts + `start \[2/2\] ` + spec, ts + `passed \[2/2\] ` + spec + ` \(\d+\.\d{3}s\)`}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b)
	}
	for i, w := range want {
		if !regexp.MustCompile(`^` + w + `$`).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %q", i, lines[i], w)
		}
	}
	// The start and end lines of one spec name the same testcase.
	name := func(l string) string { return l[strings.Index(l, "emu/"):] }
	if s, e := name(lines[2]), name(lines[3]); !strings.HasPrefix(e, s+" (") {
		t.Errorf("start %q and end %q name different specs", s, e)
	}
}
