package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites"
)

// finishShard parses --shard and --shard-balance into the run's options.
func (rf *runFlags) finishShard() error {
	if rf.shard == "" {
		if rf.balance != "" {
			return &suites.UsageError{Msg: "--shard-balance without --shard: give --shard i/n too"}
		}
		return nil
	}
	sh, err := reports.ParseShard(rf.shard)
	if err != nil {
		return &suites.UsageError{Msg: err.Error()}
	}
	if rf.balance != "" {
		prev, err := readReport(rf.balance)
		if err != nil {
			return &suites.UsageError{Msg: fmt.Sprintf("bad --shard-balance: %v", err)}
		}
		sh.BalanceBy(prev, rf.balance)
	}
	rf.opt.Shard = sh
	return nil
}

// shardVerdict is suites.Verdict, except that a shard left with nothing
// to run because the other shards own every selected spec passes: a
// fixed shard count over a narrow filter must not fail the fleet.
func shardVerdict(r reports.Run) error {
	if sh := r.Meta.Shard; sh != nil && len(r.Cases) == 0 && sh.Elsewhere > 0 && r.Incomplete == "" {
		return nil
	}
	return suites.Verdict(r)
}

// mergeFlags are merge's flags: without --platforms it merges shards,
// as it always did.
type mergeFlags struct {
	platforms bool
	absent    absentPlatforms
}

// absentPlatforms collects --skipped-platform and --failed-platform.
type absentPlatforms struct {
	list *[]reports.AbsentPlatform
	fail bool
}

func (a absentPlatforms) String() string {
	if a.list == nil {
		return ""
	}
	var s []string
	for _, p := range *a.list {
		if p.Failed == a.fail {
			s = append(s, p.Name+"="+p.Reason)
		}
	}
	return strings.Join(s, ", ")
}

func (a absentPlatforms) Set(v string) error {
	name, reason, ok := strings.Cut(v, "=")
	name, reason = strings.TrimSpace(name), strings.TrimSpace(reason)
	if !ok || name == "" || reason == "" {
		return fmt.Errorf("want NAME=REASON, e.g. arm64='qemu-system-aarch64 not installed', got %q", v)
	}
	*a.list = append(*a.list, reports.AbsentPlatform{Name: name, Reason: reason, Failed: a.fail})
	return nil
}

var mergeCmd = &command{
	name: "merge", args: "[--platforms [--skipped-platform NAME=REASON]...] OUT DIR...",
	summary: "combine report directories: the shards of one run, or runs of several platforms",
	description: `Reads report.json from each DIR and writes into OUT one report. Nothing is
written when a DIR cannot be read, and the DIRs are never changed.

Without --platforms, the DIRs are the --report-dir of each shard of one run
("kvmspec run --shard i/n"): OUT gets the junit.xml, report.ktap and
report.json of the whole run, every shard's testcases with the counts an
unsharded run would have. Shards that overlap (one given twice, or a
testcase in two), a missing shard, or shards run with different backends
or filters are refused. "kvmspec report OUT/report.json" makes its HTML
page.

With --platforms, the DIRs are runs made on different platforms, for
example the x86 suites of make test (reports/out/suites) and its arm64
stage (reports/out/arm64, backends kvm-arm64 and emu-arm64): OUT gets
junit.xml, report.ktap, report.json and report.html holding every run's
testcases under their own backends. Each backend's JUnit testsuites keep
their platform's properties (kernel, CPU, host profile, settings) plus
kvmspec.platform and kvmspec.arch; report.json's meta.platforms lists each
platform with its own meta and counts; the page and the summary show the
counts per architecture. A backend named in two DIRs (their testcases
would collide) and a shard not yet merged are refused. A platform whose
stage did not run is named with --skipped-platform (recorded, not a
failure) or --failed-platform (a failing testcase). The merge fails like
a run: a failure anywhere, a run that did not finish, or a platform that
tested nothing (all its testcases skipped) fails it.`,
	exits: []string{
		"0  merged; every testcase passed",
		"1  merged; a testcase failed, a run did not finish, or a platform tested nothing",
		"2  bad usage: unreadable report, overlapping or missing shards, a backend in two platforms' runs, OUT in use or one of the DIRs",
	},
	flags: func(fs *flag.FlagSet) any {
		f := &mergeFlags{}
		list := &[]reports.AbsentPlatform{}
		f.absent = absentPlatforms{list: list}
		fs.BoolVar(&f.platforms, "platforms", false, "the DIRs are runs of different platforms (architectures, hosts), not shards of one run")
		fs.Var(absentPlatforms{list: list}, "skipped-platform", "with --platforms: `NAME=REASON` of a platform whose stage did not run here (repeatable); recorded, not a failure")
		fs.Var(absentPlatforms{list: list, fail: true}, "failed-platform", "with --platforms: `NAME=REASON` of a platform whose stage failed without a report (repeatable); a failing testcase")
		return f
	},
	run: func(c *command, state any, pos []string, stdout, stderr io.Writer) int {
		f := state.(*mergeFlags)
		if f.platforms {
			return mergePlatforms(f, pos, stdout, stderr)
		}
		if len(*f.absent.list) > 0 {
			fmt.Fprintf(stderr, "kvmspec merge: --skipped-platform and --failed-platform need --platforms (see kvmspec help merge)\n")
			return exitUsage
		}
		if len(pos) < 2 {
			fmt.Fprintf(stderr, "kvmspec merge: want OUT and at least one shard's report directory (see kvmspec help merge)\n")
			return exitUsage
		}
		var runs []reports.Run
		for _, dir := range pos[1:] {
			r, err := readReport(filepath.Join(dir, reports.JSONFile))
			if err != nil {
				fmt.Fprintf(stderr, "kvmspec merge: %v\n", err)
				return exitUsage
			}
			runs = append(runs, r)
		}
		merged, err := reports.Merge(runs)
		if err != nil {
			fmt.Fprintf(stderr, "kvmspec %v\n", err)
			if errors.Is(err, reports.ErrShards) {
				return exitUsage
			}
			return exitFailed
		}
		merged.Meta.ReportDir = pos[0]
		if err := reports.WriteDir(pos[0], merged); err != nil {
			fmt.Fprintf(stderr, "kvmspec merge: %v\n", err)
			if errors.Is(err, reports.ErrDirBusy) {
				return exitUsage
			}
			return exitFailed
		}
		merged.Summary(stdout, false)
		if err := suites.Verdict(merged); err != nil {
			fmt.Fprintln(stderr, "kvmspec merge: FAIL:", err)
			return exitFailed
		}
		return exitOK
	},
}

// mergePlatforms is merge --platforms: reports.MergePlatforms of the DIRs,
// written with its HTML page, then the summary and the verdict.
func mergePlatforms(f *mergeFlags, pos []string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "kvmspec merge: "+format+"\n", args...)
		return code
	}
	if len(pos) < 2 {
		return fail(exitUsage, "--platforms wants OUT and at least one report directory (see kvmspec help merge)")
	}
	out, dirs := pos[0], pos[1:]
	var runs []reports.PlatformRun
	for i, dir := range dirs {
		if same, err := sameDir(out, dir); err != nil {
			return fail(exitUsage, "%v", err)
		} else if same {
			return fail(exitUsage, "OUT %s is report directory %d (%s): the merge must not overwrite its inputs; give another OUT", out, i+1, dir)
		}
		r, err := readReport(filepath.Join(dir, reports.JSONFile))
		if err != nil {
			return fail(exitUsage, "report %d of %d (%s): %v; nothing written", i+1, len(dirs), dir, err)
		}
		runs = append(runs, reports.PlatformRun{Source: dir, Run: r})
	}
	merged, err := reports.MergePlatforms(runs, *f.absent.list)
	if err != nil {
		fmt.Fprintf(stderr, "kvmspec %v; nothing written\n", err)
		return exitUsage
	}
	merged.Meta.ReportDir = out
	if err := writeMerged(out, merged); err != nil {
		fmt.Fprintf(stderr, "kvmspec merge: %v\n", err)
		if errors.Is(err, reports.ErrDirBusy) {
			return exitUsage
		}
		return exitFailed
	}
	merged.Summary(stdout, false)
	fmt.Fprintf(stdout, "page: %s\n", filepath.Join(out, htmlFile))
	if err := suites.Verdict(merged); err != nil {
		fmt.Fprintln(stderr, "kvmspec merge: FAIL:", err)
		return exitFailed
	}
	return exitOK
}

// htmlFile is the page merge --platforms writes beside the reports, the
// name kvmspec report gives it.
const htmlFile = "report.html"

// writeMerged writes the report files of r into dir and its HTML page,
// which replaces an earlier one only once it is whole.
func writeMerged(dir string, r reports.Run) error {
	d, err := reports.OpenDir(dir, r.Meta)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Write(r); err != nil {
		return err
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page, nil); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".kvmspec-tmp-"+htmlFile+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone already when renamed
	_, err = tmp.Write(page.Bytes())
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, htmlFile), err)
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, htmlFile))
}

// sameDir reports whether a and b name one directory (b must exist to be
// one; a need not yet).
func sameDir(a, b string) (bool, error) {
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	if err := errors.Join(err1, err2); err != nil {
		return false, err
	}
	if aa == ab {
		return true, nil
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false, nil // OUT does not exist yet: not an input
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, nil // the read reports it
	}
	return os.SameFile(sa, sb), nil
}
