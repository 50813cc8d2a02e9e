// Command kvmspec runs the kvmspec conformance suites against the
// hypervisors of this host and writes JUnit and JSON reports.
//
//	kvmspec run    [flags]   run the suites, write reports/out/junit.xml, report.ktap and report.json
//	kvmspec caps   [flags]   what each backend supports here, and why not
//	kvmspec list   [flags]   the specs a filter selects
//	kvmspec report [flags] NEW.json   HTML page; comparison with a baseline
//	kvmspec merge  OUT DIR...         one report from the report directories of shards (run --shard i/n)
//	kvmspec exec   [flags] LAYOUT.json   run a flat or ELF64 binary, print its exits and final state
//	kvmspec help   [CMD]     a command's description, flags and exit codes
//	kvmspec version
//
// Exit status: 0 all selected specs passed; 1 a failure, or nothing was
// tested (no spec selected, or all skipped); 2 bad usage, found before
// anything runs; 130 interrupted before any spec ran.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	"github.com/kvmspec/kvmspec/tools/kvmspec/internal/interrupt"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
	defaultDir      = "reports/out"
	suiteTimeout    = time.Hour
)

// command is one subcommand: its help text and its implementation.
type command struct {
	name, args, summary, description string
	// exits are the command's exit codes, one "N  meaning" per line.
	exits []string
	// flags registers the command's flags; extra adds help sections.
	flags func(fs *flag.FlagSet) any
	extra func(w io.Writer)
	run   func(c *command, state any, args []string, stdout, stderr io.Writer) int
}

var commands []*command

func init() {
	commands = []*command{runCmd, capsCmd, listCmd, reportCmd, mergeCmd, execCmd, lightnvmCmd, versionCmd}
}

// commandNames lists the commands for error messages, from the table.
func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func topUsage(w io.Writer) {
	fmt.Fprint(w, "usage: kvmspec <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help     a command's description, flags and exit codes: kvmspec help run\n")
}

// Main is the CLI without process exit, for tests.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		if len(args) > 1 {
			c := lookup(args[1])
			if c == nil {
				fmt.Fprintf(stderr, "kvmspec help: unknown command %q\n", args[1])
				return exitUsage
			}
			c.help(stdout)
			return exitOK
		}
		topUsage(stdout)
		return exitOK
	case "--version":
		args[0] = "version"
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "kvmspec: unknown command %q (commands: %s, help)\n", args[0], commandNames())
		return exitUsage
	}
	return c.main(args[1:], stdout, stderr)
}

// main parses the command's flags, which may come before or after its
// positional arguments, and runs it. Parse errors are one line on stderr.
func (c *command) main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvmspec "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var state any
	if c.flags != nil {
		state = c.flags(fs)
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "ginkgo.") && strings.HasPrefix(a, "-") {
			fmt.Fprintf(stderr, "kvmspec %s: %s is a Ginkgo flag, not a kvmspec one: use kvmspec's own (--fail-fast, --flake-attempts, --focus-file, --skip-file, --label-filter, --focus, --skip, --seed, --timeout, -v; see kvmspec help %s)\n",
				c.name, strings.SplitN(a, "=", 2)[0], c.name)
			return exitUsage
		}
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvmspec %s: %v (see kvmspec help %s)\n", c.name, err, c.name)
		return exitUsage
	}
	return c.run(c, state, pos, stdout, stderr)
}

// parseInterspersed parses flags wherever they are among the positional
// arguments ("report new.json --baseline old.json"); "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// help prints the command's description, flags and exit codes.
func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "usage: kvmspec %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.description))
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.flags != nil {
		c.flags(fs)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags (before or after the arguments):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if c.extra != nil {
		c.extra(w)
	}
	fmt.Fprint(w, "\nexit status:\n")
	for _, e := range c.exits {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

func noArgs(c *command, pos []string, stderr io.Writer) bool {
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "kvmspec %s: unexpected arguments %q (see kvmspec help %s)\n", c.name, pos, c.name)
		return false
	}
	return true
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

// list collects a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

type runFlags struct {
	fs         *flag.FlagSet
	opt        suites.Options
	focus      string
	skip       string
	seed       string
	procs      int
	focusFiles list
	skipFiles  list
	ktap       bool // --ktap: KTAP on stdout, everything else on stderr
	shard      string
	balance    string
	emu        string // --emu, for emu.ParseOptions
	progress   string // --progress-file
	progressF  *os.File
}

func (rf *runFlags) register(fs *flag.FlagSet, withReports bool) {
	rf.fs = fs
	rf.opt.Params = params{}
	fs.StringVar(&rf.opt.Backend, "backend", "auto", "backends: kvm, emu, auto (kvm if usable, else emu), all, or a comma list")
	fs.StringVar(&rf.opt.LabelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'smoke && !cpl0' (labels below)")
	fs.StringVar(&rf.focus, "focus", "", "run only specs whose full text matches this regular expression")
	fs.StringVar(&rf.skip, "skip", "", "skip specs whose full text matches this regular expression")
	fs.Var(&rf.focusFiles, "focus-file", "run only specs in files matching this file[:line] filter (repeatable)")
	fs.Var(&rf.skipFiles, "skip-file", "skip specs in files matching this file[:line] filter (repeatable)")
	fs.StringVar(&rf.opt.Profile, "profile", "", "host profile to apply (default: detected; 'none' for none)")
	fs.StringVar(&rf.opt.ProfileFile, "profile-file", "", "apply the host profile in this JSON file (at most 1 MiB)")
	fs.Var(params(rf.opt.Params), "param", "spec parameter key=value (repeatable; keys below)")
	fs.StringVar(&rf.shard, "shard", "", "run only shard i/n of the selected specs (stable per testcase; combine with kvmspec merge)")
	fs.StringVar(&rf.emu, "emu", "", "emu backend options, comma list: out-rip=at-insn|past (see README)")
	fs.StringVar(&rf.balance, "shard-balance", "", "assign shards by the durations in this earlier report.json (every shard must give the same file)")
	if withReports {
		fs.StringVar(&rf.opt.ReportDir, "report-dir", defaultDir, "directory for junit.xml, report.ktap and report.json (created; refused while another run writes it)")
		fs.StringVar(&rf.seed, "seed", "", "random seed (printed by every run; pass it back to replay)")
		fs.DurationVar(&rf.opt.Timeout, "timeout", suiteTimeout, "timeout for the whole run (positive)")
		fs.BoolVar(&rf.opt.Strict, "strict", false, "ignore the host profile's known deviations")
		fs.BoolVar(&rf.opt.FailFast, "fail-fast", false, "stop after the first failing spec")
		fs.IntVar(&rf.opt.FlakeAttempts, "flake-attempts", 0, "run a failing spec up to N times; it passes if one attempt does")
		fs.IntVar(&rf.procs, "procs", 1, "parallel processes: only 1 is supported")
		fs.BoolVar(&rf.opt.Verbose, "v", false, "verbose: every spec's output")
		fs.StringVar(&rf.progress, "progress-file", "", "append a line to this file as each spec starts and ends (e.g. /dev/kmsg: the spec a hung machine was in)")
		fs.BoolVar(&rf.ktap, "ktap", false, "print the KTAP report (report.ktap) on stdout at the end, everything else on stderr, for kselftest runners")
	}
}

// finish checks what the flag package cannot and fills in the options.
func (rf *runFlags) finish() error {
	set := map[string]bool{}
	rf.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if rf.focus != "" {
		rf.opt.Focus = []string{rf.focus}
	}
	if rf.skip != "" {
		rf.opt.Skip = []string{rf.skip}
	}
	rf.opt.FocusFiles, rf.opt.SkipFiles = rf.focusFiles, rf.skipFiles
	if rf.seed != "" {
		n, err := strconv.ParseInt(rf.seed, 0, 64)
		if err != nil || n <= 0 {
			return &suites.UsageError{Msg: fmt.Sprintf("bad --seed %q: want a positive integer", rf.seed)}
		}
		rf.opt.Seed = n
	}
	if set["report-dir"] && strings.TrimSpace(rf.opt.ReportDir) == "" {
		return &suites.UsageError{Msg: "bad --report-dir '': name a directory (reports are always written)"}
	}
	if set["timeout"] && rf.opt.Timeout <= 0 {
		return &suites.UsageError{Msg: fmt.Sprintf("bad --timeout %v: want a positive duration such as 30m", rf.opt.Timeout)}
	}
	if rf.procs < 1 {
		return &suites.UsageError{Msg: fmt.Sprintf("bad --procs %d: want 1", rf.procs)}
	}
	rf.opt.ParallelTotal = rf.procs
	eo, err := emu.ParseOptions(rf.emu)
	if err != nil {
		return &suites.UsageError{Msg: fmt.Sprintf("bad --emu %q: %v", rf.emu, err)}
	}
	rf.opt.Emu = eo
	if err := rf.finishShard(); err != nil {
		return err
	}
	if err := rf.opt.Validate(); err != nil {
		return err
	}
	if set["progress-file"] {
		if strings.TrimSpace(rf.progress) == "" {
			return &suites.UsageError{Msg: "bad --progress-file '': name a file"}
		}
		f, err := openProgressFile(rf.progress)
		if err != nil {
			return &suites.UsageError{Msg: fmt.Sprintf("bad --progress-file: %v", err)}
		}
		rf.progressF = f
		l := &progressLog{w: f, now: time.Now}
		rf.opt.Progress = l.Set
	}
	return nil
}

// testingT satisfies Ginkgo's GinkgoTestingT outside `go test`.
type testingT struct{ failed bool }

func (t *testingT) Fail() { t.failed = true }

func usageOrFail(c *command, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "kvmspec %s: %v\n", c.name, err)
	var ue *suites.UsageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

var runCmd = &command{
	name: "run", args: "[flags]",
	summary: "run the suites and write reports (default backend: auto)",
	description: `Runs the selected specs on the selected backends and writes junit.xml,
report.ktap (KTAP version 1, as kernel CI reads it) and report.json into
--report-dir (default reports/out), then prints a summary. With --ktap the
KTAP report is printed on stdout at the end and everything else goes to
stderr. With --shard i/n only shard i of n of the selected specs runs
(stable per testcase); kvmspec merge combines the shards' directories.

Every flag and --param is checked before anything runs. The report
directory is then locked and its junit.xml and report.json replaced by an
"incomplete, started at ..." report, which the run replaces with its
results at the end, both files together: a run that is killed leaves a
report that says so, never the previous run's. A second run into the same
directory is refused while the first holds it.

While specs run, SIGUSR1 (kill -USR1 PID) prints where the current spec is
(Ginkgo's progress report); SIGINT or SIGTERM stops the run, which still
writes its reports (the remaining specs as "not run: interrupted").`,
	exits: []string{
		"0    every selected spec passed",
		"1    a spec failed, nothing was selected, every spec was skipped, or the run was interrupted",
		"2    bad usage (flag, filter, --param, profile file, report directory in use), found before anything ran",
		"130  interrupted before any spec ran (the report directory says so)",
	},
	flags: func(fs *flag.FlagSet) any {
		rf := &runFlags{}
		rf.register(fs, true)
		return rf
	},
	extra: func(w io.Writer) {
		fmt.Fprint(w, "\nparameters (--param key=value):\n")
		for _, p := range suites.Params {
			fmt.Fprintf(w, "  %-26s %-10s default %-14s %s\n", p.Key, p.Kind, p.Default, p.Meaning)
		}
		fmt.Fprint(w, "\nlabels (--label-filter):\n")
		var areas []string
		for _, a := range taxonomy.Areas() {
			if !a.Internal() {
				areas = append(areas, a.String())
			}
		}
		fmt.Fprintf(w, "  areas: %s\n", strings.Join(areas, ", "))
		fmt.Fprintf(w, "  backends: %s\n", labelList(func(yield func(ginkgo.Labels) bool) {
			for _, b := range taxonomy.Backends() {
				if !yield(b.Label()) {
					return
				}
			}
		}))
		fmt.Fprintf(w, "  modes (the ring test code runs in): %s\n", labelList(slices.Values(taxonomy.Modes())))
		fmt.Fprintf(w, "  kinds: %s\n", labelList(slices.Values(taxonomy.Kinds())))
		fmt.Fprintf(w, "  architectures (of the spec's guests; none: x86-64): %s\n", labelList(slices.Values(taxonomy.Archs())))
		fmt.Fprintf(w, "  capabilities: %s<capability>, e.g. %smulti-vcpu (see kvmspec caps)\n", taxonomy.NeedsPrefix, taxonomy.NeedsPrefix)
	},
	run: func(c *command, state any, pos []string, stdout, stderr io.Writer) int {
		rf := state.(*runFlags)
		if !noArgs(c, pos, stderr) {
			return exitUsage
		}
		if err := rf.finish(); err != nil {
			return usageOrFail(c, err, stderr)
		}
		if rf.progressF != nil {
			defer rf.progressF.Close()
		}
		rf.opt.Interrupted, rf.opt.HandOff = interrupt.Caught, interrupt.HandOff
		var run reports.Run
		var err error
		ktapOut := stdout
		if rf.ktap {
			// Ginkgo writes to fd 1; KTAP readers want nothing but KTAP there.
			stdout = stderr
			stdoutTo(2, func() { run, err = suites.Run(&testingT{}, rf.opt) })
		} else if f, ok := stdout.(*os.File); ok && f == os.Stdout && !rf.opt.Verbose {
			// Passing specs' report entries (perf tables, host health)
			// belong in the report files, not on the screen.
			ferr := filtered(func(con *console) {
				rf.opt.Progress = both(rf.opt.Progress, con.SetProgress)
				run, err = suites.Run(&testingT{}, rf.opt)
			})
			if ferr != nil {
				run, err = suites.Run(&testingT{}, rf.opt)
			}
		} else {
			run, err = suites.Run(&testingT{}, rf.opt)
		}
		if errors.Is(err, suites.ErrInterrupted) {
			fmt.Fprintf(stderr, "kvmspec run: %v\n", err)
			return exitInterrupted
		}
		if err != nil {
			return usageOrFail(c, err, stderr)
		}
		fmt.Fprintln(stdout)
		run.Summary(stdout, rf.opt.Verbose)
		if rf.ktap {
			if err := run.WriteKTAP(ktapOut); err != nil {
				fmt.Fprintln(stderr, "kvmspec run:", err)
				return exitFailed
			}
		}
		if err := shardVerdict(run); err != nil {
			fmt.Fprintln(stderr, "kvmspec run: FAIL:", err)
			return exitFailed
		}
		return exitOK
	},
}

// labelList joins labels for the help text.
func labelList(labels iter.Seq[ginkgo.Labels]) string {
	var out []string
	for l := range labels {
		out = append(out, l...)
	}
	return strings.Join(out, ", ")
}

var capsCmd = &command{
	name: "caps", args: "[--backend B]",
	summary:     "print what each backend supports on this host, and why not",
	description: "Prints the host, the host profile that matches it, and for each backend its\ncapabilities: supported, or the reason it is not.",
	exits:       []string{"0  printed", "2  bad usage"},
	flags: func(fs *flag.FlagSet) any {
		return fs.String("backend", "all", "backends to describe: kvm, emu, auto, all, or a comma list")
	},
	run: func(c *command, state any, pos []string, stdout, stderr io.Writer) int {
		if !noArgs(c, pos, stderr) {
			return exitUsage
		}
		backends, err := suites.SelectBackends(*state.(*string))
		if err != nil {
			return usageOrFail(c, err, stderr)
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
	},
}

func printCaps(w io.Writer, b *framework.Backend) {
	fmt.Fprintf(w, "\n%s:\n", b.Name)
	if b.HV == nil {
		fmt.Fprintf(w, "  unavailable: %s\n", unavailableReason(b.Err))
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

// unavailableReason is the reason alone: the heading already names the
// backend and says it is unavailable.
func unavailableReason(err error) string {
	var ue *hv.UnavailableError
	if errors.As(err, &ue) {
		if ue.Err != nil {
			return ue.Reason + ": " + ue.Err.Error()
		}
		return ue.Reason
	}
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}

var listCmd = &command{
	name: "list", args: "[flags]",
	summary:     "print the specs a filter selects, with their labels",
	description: "Prints the specs the filters select, one per backend, without running them.",
	exits:       []string{"0  at least one spec selected", "1  no spec selected", "2  bad usage"},
	flags: func(fs *flag.FlagSet) any {
		rf := &runFlags{}
		rf.register(fs, false)
		return rf
	},
	extra: func(w io.Writer) { fmt.Fprint(w, "\nparameter keys and labels: see kvmspec help run\n") },
	run: func(c *command, state any, pos []string, stdout, stderr io.Writer) int {
		rf := state.(*runFlags)
		if !noArgs(c, pos, stderr) {
			return exitUsage
		}
		rf.procs = 1
		if err := rf.finish(); err != nil {
			return usageOrFail(c, err, stderr)
		}
		rf.opt.DryRun = true
		var run reports.Run
		var err error
		quiet(func() { run, err = suites.Run(&testingT{}, rf.opt) })
		if err != nil {
			return usageOrFail(c, err, stderr)
		}
		run = rf.opt.Shard.Select(run)
		for _, k := range run.Cases {
			fmt.Fprintf(stdout, "%-4s %-60s [%s]\n", k.Backend, k.ID, strings.Join(k.Labels, ", "))
		}
		fmt.Fprintf(stdout, "%d specs selected, %d deselected\n", len(run.Cases), run.Filtered)
		if sh := run.Meta.Shard; sh != nil {
			fmt.Fprintf(stdout, "shard %s: %d more selected specs are in other shards\n", sh, sh.Elsewhere)
		}
		if len(run.Cases) == 0 {
			return exitFailed
		}
		return exitOK
	},
}

var versionCmd = &command{
	name: "version", args: "",
	summary:     "print the version",
	description: "Prints kvmspec's version, as every report records it.",
	exits:       []string{"0  printed"},
	run: func(c *command, _ any, pos []string, stdout, stderr io.Writer) int {
		if !noArgs(c, pos, stderr) {
			return exitUsage
		}
		fmt.Fprintln(stdout, "kvmspec", suites.Version)
		return exitOK
	},
}
