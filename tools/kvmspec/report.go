package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/kvmspec/kvmspec/reports"
)

// maxReportSize bounds a report.json: a nightly run with every sample kept
// is a few MiB; a larger file, or a device, is not a report.
const maxReportSize = 256 << 20

type reportFlags struct {
	baseline  string
	out       string
	threshold float64
	history   bool
}

var reportCmd = &command{
	name: "report", args: "[flags] NEW.json   |   --history A.json B.json ...",
	summary: "turn a report.json into an HTML page; compare with a baseline",
	description: `Writes a self-contained HTML page of a run (default: report.html beside
NEW.json). With --baseline it also compares the two runs and prints what
changed. A case regresses when it fails now and did not before; a
measurement is worse only when a Mann-Whitney U test on the two runs'
samples says the change is significant (p < 0.05, as benchstat) and its
median moved past --threshold; with fewer than 5 samples on either side it
is "not enough data", never a regression. With --history it shows, over
the given reports (oldest first), each measurement's trend and since when
each failing case fails.`,
	exits: []string{
		"0  page written; no regression against the baseline",
		"1  a case regressed or a measurement got worse; or the page could not be written",
		"2  bad usage: unreadable, oversized or non-kvmspec report, bad --threshold",
	},
	flags: func(fs *flag.FlagSet) any {
		f := &reportFlags{}
		fs.StringVar(&f.baseline, "baseline", "", "an earlier report.json to compare with")
		fs.StringVar(&f.out, "out", "", "the HTML file to write (default: report.html beside the newest report)")
		fs.Float64Var(&f.threshold, "threshold", reports.DefaultThreshold, "relative change of a median that counts as worse or better (0 < t < 10)")
		fs.BoolVar(&f.history, "history", false, "the arguments are reports oldest first: show trends and failing-since")
		return f
	},
	run: runReport,
}

// readReport reads a report.json, refusing what is not a regular file of
// a bounded size before reading it.
func readReport(path string) (reports.Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return reports.Run{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return reports.Run{}, err
	}
	if !st.Mode().IsRegular() {
		return reports.Run{}, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxReportSize {
		return reports.Run{}, fmt.Errorf("%s: %d bytes, larger than a report (%d)", path, st.Size(), maxReportSize)
	}
	r, err := reports.ReadJSON(io.LimitReader(f, maxReportSize+1))
	if err != nil {
		return reports.Run{}, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// runReport writes the HTML page of a run and, given a baseline, prints
// what changed: exit 1 when a case regressed or a number got worse, so a
// nightly job can gate on it.
func runReport(c *command, state any, pos []string, stdout, stderr io.Writer) int {
	f := state.(*reportFlags)
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "kvmspec report: "+format+"\n", args...)
		return code
	}
	switch {
	case f.history && len(pos) < 2:
		return fail(exitUsage, "--history wants two or more reports, oldest first (see kvmspec help report)")
	case !f.history && len(pos) != 1:
		return fail(exitUsage, "want one NEW.json, got %d arguments (see kvmspec help report)", len(pos))
	case f.history && f.baseline != "":
		return fail(exitUsage, "--history and --baseline exclude each other: the oldest report of a history is its baseline")
	case math.IsNaN(f.threshold) || f.threshold <= 0 || f.threshold >= 10:
		return fail(exitUsage, "bad --threshold %v: want a fraction above 0 and below 10, e.g. 0.2", f.threshold)
	}
	runs := make([]reports.Run, len(pos))
	for i, p := range pos {
		r, err := readReport(p)
		if err != nil {
			return fail(exitUsage, "%v", err)
		}
		runs[i] = r
	}
	cur := runs[len(runs)-1]
	newest := pos[len(pos)-1]
	var base *reports.Run
	if f.baseline != "" {
		b, err := readReport(f.baseline)
		if err != nil {
			return fail(exitUsage, "baseline %v", err)
		}
		if b.Incomplete != "" {
			return fail(exitUsage, "baseline %s: %s", f.baseline, b.Incomplete)
		}
		base = &b
	}
	opt := reports.CompareOptions{Threshold: f.threshold}
	path := f.out
	if path == "" {
		path = filepath.Join(filepath.Dir(newest), "report.html")
	}
	var page bytes.Buffer
	var err error
	if f.history {
		err = reports.WriteHistoryHTML(&page, runs, opt)
	} else {
		err = cur.WriteHTMLOptions(&page, base, opt)
	}
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
		return fail(exitFailed, "%v", err)
	}
	fmt.Fprintln(stdout, "report:", path)
	if f.history {
		reports.History(runs, opt).Text(stdout)
		return exitOK
	}
	if cur.Incomplete != "" {
		return fail(exitFailed, "%s: %s", newest, cur.Incomplete)
	}
	if base == nil {
		return exitOK
	}
	cmp := reports.Compare(*base, cur, opt)
	cmp.Text(stdout)
	if cmp.Regressions() > 0 {
		return exitFailed
	}
	return exitOK
}
