// Command kvmspec runs the kvmspec conformance suites against the
// hypervisors of this host and writes JUnit and JSON reports.
//
//	kvmspec run   [--backend kvm|emu|auto|all] [--label-filter EXPR] [--focus RE]
//	              [--report-dir DIR] [--seed N] [--timeout D] [--strict] [-v]
//	kvmspec caps  [--backend ...]
//	kvmspec list  [--backend ...] [--label-filter EXPR] [--focus RE]
//	kvmspec report [--baseline OLD.json] [--out FILE.html] [--threshold 0.2] NEW.json
//	kvmspec version
//
// Exit status: 0 all selected specs passed; 1 a failure, or nothing was
// tested (no spec selected, or all skipped); 2 bad usage.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites"
	"github.com/kvmspec/kvmspec/suites/framework"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	defaultDir  = "reports/out"
	usageHeader = `usage: kvmspec <command> [flags]

commands:
  run      run the suites and write reports (default backend: auto)
  caps     print what each backend supports on this host, and why not
  list     print the specs a filter selects, with their labels
  report   turn a report.json into an HTML page; compare with a baseline
  lightnvm sysfs: write an OCSSD geometry's sysfs tree (no suite run)
  version  print the version

Run "kvmspec <command> -h" for the command's flags.
`
)

// Main is the CLI without process exit, for tests.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageHeader)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "caps":
		return cmdCaps(args[1:], stdout, stderr)
	case "list":
		return cmdList(args[1:], stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "lightnvm":
		return cmdLightNVM(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "kvmspec", suites.Version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageHeader)
		return exitOK
	}
	fmt.Fprintf(stderr, "kvmspec: unknown command %q\n\n%s", args[0], usageHeader)
	return exitUsage
}

// params collects repeated --param key=value flags.
type params map[string]string

func (p params) String() string {
	keys := make([]string, 0, len(p))
	for k, v := range p {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (p params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

type runFlags struct {
	opt   suites.Options
	focus string
	skip  string
	seed  string
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kvmspec "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func (rf *runFlags) register(fs *flag.FlagSet, withReports bool) {
	rf.opt.Params = params{}
	fs.StringVar(&rf.opt.Backend, "backend", "auto", "backends: kvm, emu, auto (kvm if usable, else emu), all, or a comma list")
	fs.StringVar(&rf.opt.LabelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'smoke && !cpl0'")
	fs.StringVar(&rf.focus, "focus", "", "run only specs whose full text matches this regular expression")
	fs.StringVar(&rf.skip, "skip", "", "skip specs whose full text matches this regular expression")
	fs.StringVar(&rf.opt.Profile, "profile", "", "host profile to apply (default: detected; 'none' for none)")
	fs.StringVar(&rf.opt.ProfileFile, "profile-file", "", "apply the host profile in this JSON file")
	fs.Var(params(rf.opt.Params), "param", "spec parameter key=value (repeatable)")
	if withReports {
		fs.StringVar(&rf.opt.ReportDir, "report-dir", defaultDir, "directory for junit.xml and report.json")
		fs.StringVar(&rf.seed, "seed", "", "random seed (printed by every run; pass it back to replay)")
		fs.DurationVar(&rf.opt.Timeout, "timeout", time.Hour, "timeout for the whole run")
		fs.BoolVar(&rf.opt.Strict, "strict", false, "ignore the host profile's known deviations")
		fs.BoolVar(&rf.opt.Verbose, "v", false, "verbose: every spec's output")
	}
}

func (rf *runFlags) finish() error {
	if rf.focus != "" {
		rf.opt.Focus = []string{rf.focus}
	}
	if rf.skip != "" {
		rf.opt.Skip = []string{rf.skip}
	}
	if rf.seed != "" {
		n, err := strconv.ParseInt(rf.seed, 0, 64)
		if err != nil || n <= 0 {
			return &suites.UsageError{Msg: fmt.Sprintf("bad --seed %q: want a positive integer", rf.seed)}
		}
		rf.opt.Seed = n
	}
	return nil
}

func parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitUsage
	}
	return -1
}

// testingT satisfies Ginkgo's GinkgoTestingT outside `go test`.
type testingT struct{ failed bool }

func (t *testingT) Fail() { t.failed = true }

func usageOrFail(err error, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kvmspec:", err)
	var ue *suites.UsageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var rf runFlags
	fs := newFlagSet("run", stderr)
	rf.register(fs, true)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if err := rf.finish(); err != nil {
		return usageOrFail(err, stderr)
	}
	run, err := suites.Run(&testingT{}, rf.opt)
	if err != nil {
		return usageOrFail(err, stderr)
	}
	fmt.Fprintln(stdout)
	run.Summary(stdout, rf.opt.Verbose)
	if err := suites.Verdict(run); err != nil {
		fmt.Fprintln(stderr, "kvmspec: FAIL:", err)
		return exitFailed
	}
	return exitOK
}

func cmdCaps(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("caps", stderr)
	sel := fs.String("backend", "all", "backends to describe")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	backends, err := suites.SelectBackends(*sel)
	if err != nil {
		return usageOrFail(err, stderr)
	}
	facts := host.Collect()
	fmt.Fprintf(stdout, "host: %s, %s, kernel %s, /dev/kvm %s\n", facts.Hostname, facts.CPUModel, facts.Kernel, facts.DevKVM)
	if p, err := suites.LoadProfile("", facts); err != nil {
		fmt.Fprintf(stdout, "host profile: error: %v\n", err)
	} else if p != nil {
		fmt.Fprintf(stdout, "host profile: %s (%d known deviations)\n", p.Name, len(p.Deviations))
	} else {
		fmt.Fprintln(stdout, "host profile: none matched")
	}
	for _, b := range backends {
		printCaps(stdout, b)
		if b.HV != nil {
			b.HV.Close()
		}
	}
	return exitOK
}

func printCaps(w io.Writer, b *framework.Backend) {
	fmt.Fprintf(w, "\n%s:\n", b.Name)
	if b.HV == nil {
		fmt.Fprintf(w, "  unavailable: %v\n", b.Err)
		return
	}
	fmt.Fprintf(w, "  %-20s %d\n  %-20s %d\n", "max-vcpus", b.Caps.MaxVCPUs, "max-memslots", b.Caps.MaxMemslots)
	for _, c := range suites.CapLines(b) {
		if c.Supported {
			fmt.Fprintf(w, "  %-20s yes  %s\n", c.Name, c.Detail)
		} else {
			fmt.Fprintf(w, "  %-20s no — %s\n", c.Name, c.Detail)
		}
	}
}

func cmdList(args []string, stdout, stderr io.Writer) int {
	var rf runFlags
	fs := newFlagSet("list", stderr)
	rf.register(fs, false)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if err := rf.finish(); err != nil {
		return usageOrFail(err, stderr)
	}
	rf.opt.DryRun = true
	var run reports.Run
	var err error
	quiet(func() { run, err = suites.Run(&testingT{}, rf.opt) })
	if err != nil {
		return usageOrFail(err, stderr)
	}
	for _, c := range run.Cases {
		fmt.Fprintf(stdout, "%-4s %-60s [%s]\n", c.Backend, c.ID, strings.Join(c.Labels, ", "))
	}
	fmt.Fprintf(stdout, "%d specs selected, %d deselected\n", len(run.Cases), run.Filtered)
	if len(run.Cases) == 0 {
		return exitFailed
	}
	return exitOK
}

func readReport(path string) (reports.Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return reports.Run{}, err
	}
	defer f.Close()
	r, err := reports.ReadJSON(f)
	if err != nil {
		return reports.Run{}, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// cmdReport writes the HTML page of a run and, given a baseline, prints
// what changed: exit 1 when a case regressed or a number got worse, so a
// nightly job can gate on it.
func cmdReport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("report", stderr)
	baseline := fs.String("baseline", "", "an earlier report.json to compare with")
	out := fs.String("out", "", "the HTML file to write (default: report.html beside NEW.json)")
	threshold := fs.Float64("threshold", reports.DefaultThreshold, "relative change of a median that counts as worse or better")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: kvmspec report [--baseline OLD.json] [--out FILE.html] [--threshold 0.2] NEW.json")
		return exitUsage
	}
	if *threshold <= 0 {
		fmt.Fprintf(stderr, "kvmspec report: --threshold %v: want a positive fraction\n", *threshold)
		return exitUsage
	}
	cur, err := readReport(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "kvmspec report:", err)
		return exitUsage
	}
	var base *reports.Run
	if *baseline != "" {
		b, err := readReport(*baseline)
		if err != nil {
			fmt.Fprintln(stderr, "kvmspec report:", err)
			return exitUsage
		}
		base = &b
	}
	opt := reports.CompareOptions{Threshold: *threshold}
	path := *out
	if path == "" {
		path = filepath.Join(filepath.Dir(fs.Arg(0)), "report.html")
	}
	var page bytes.Buffer
	if err := cur.WriteHTMLOptions(&page, base, opt); err != nil {
		fmt.Fprintln(stderr, "kvmspec report:", err)
		return exitFailed
	}
	if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
		fmt.Fprintln(stderr, "kvmspec report:", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, "report:", path)
	if base == nil {
		return exitOK
	}
	c := reports.Compare(*base, cur, opt)
	c.Text(stdout)
	if c.Regressions() > 0 {
		return exitFailed
	}
	return exitOK
}
