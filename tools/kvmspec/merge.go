package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

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

var mergeCmd = &command{
	name: "merge", args: "OUT DIR...",
	summary: "combine the report directories of shards into one report",
	description: `Reads report.json from each DIR (the --report-dir of each shard of one run,
"kvmspec run --shard i/n") and writes into OUT the junit.xml, report.ktap
and report.json of the whole run: every shard's testcases, with the counts
an unsharded run would have. Shards that overlap (one given twice, or a
testcase in two), a missing shard, or shards run with different backends
or filters are refused before anything is written. Then prints the
summary; "kvmspec report OUT/report.json" makes its HTML page.`,
	exits: []string{
		"0  merged; every testcase passed",
		"1  merged; a testcase failed or a shard did not finish",
		"2  bad usage: unreadable report, overlapping or missing shards, OUT in use",
	},
	run: func(c *command, _ any, pos []string, stdout, stderr io.Writer) int {
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
