package reports

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Limits of the non-verbose summary, so that a normal run fits one screen;
// the reports hold everything.
const (
	summaryFailures    = 10
	summarySkipReasons = 6
	summaryPerf        = 8
)

// Summary writes a one-screen account of the run: counts per backend and
// area, the failed cases with their first message line, skip reasons with
// counts, perf medians, where the reports are, and a verdict line. verbose
// lifts the limits and adds the failure texts.
func (r Run) Summary(w io.Writer, verbose bool) {
	m := r.Meta
	head := fmt.Sprintf("kvmspec %s  backends %s  seed %d", orDash(m.Version), orDash(strings.Join(m.Backends, ",")), m.Seed)
	if m.Profile != "" {
		head += "  profile " + m.Profile
	}
	if m.Strict {
		head += "  strict"
	}
	if m.LabelFilter != "" {
		head += fmt.Sprintf("  label-filter %q", m.LabelFilter)
	}
	if m.Focus != "" {
		head += fmt.Sprintf("  focus %q", m.Focus)
	}
	if sh := m.Shard; sh != nil && sh.Index > 0 {
		head += fmt.Sprintf("  shard %s (%d specs in other shards)", sh, sh.Elsewhere)
	} else if sh != nil {
		head += fmt.Sprintf("  merged shards %s", strings.Join(sh.Merged, ","))
	}
	if len(m.Platforms) > 0 {
		var names []string
		for _, p := range m.Platforms {
			names = append(names, p.Name)
		}
		head += "  merged platforms " + strings.Join(names, ",")
	}
	fmt.Fprintln(w, head)
	if len(m.Platforms) > 0 {
		r.summaryPlatforms(w)
	} else if h := hostLine(m); h != "" {
		fmt.Fprintln(w, h)
	}

	keys, byKey := groups(r.Cases)
	if len(keys) > 0 {
		width := len("backend/area")
		for _, k := range keys {
			width = max(width, len(k.name()))
		}
		fmt.Fprintf(w, "\n  %-*s  %4s  %4s  %4s  %4s  %6s\n", width, "backend/area", "pass", "fail", "skip", "dev", "time")
		for _, k := range keys {
			c := tally(byKey[k])
			var d time.Duration
			for _, x := range byKey[k] {
				d += x.Duration
			}
			fmt.Fprintf(w, "  %-*s  %4d  %4d  %4d  %4d  %6s\n", width, k.name(), c.Passed, c.Failed, c.Skipped, c.Deviations, d.Round(time.Millisecond))
		}
	}

	r.summaryArchs(w)
	r.summaryFailures(w, verbose)
	r.summarySkips(w, verbose)
	r.summaryPerf(w, verbose)
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nreport problems (%d):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if m.ReportDir != "" {
		fmt.Fprintf(w, "\nreports: %s  %s  %s\n", filepath.Join(m.ReportDir, JUnitFile), filepath.Join(m.ReportDir, KTAPFile), filepath.Join(m.ReportDir, JSONFile))
	}
	fmt.Fprintf(w, "\n%s\n", r.verdict())
}

// summaryPlatforms is one line per platform of a platforms merge: its
// backends, host, host profile and where its report was, or why it has
// none.
func (r Run) summaryPlatforms(w io.Writer) {
	for _, p := range r.Meta.Platforms {
		line := fmt.Sprintf("platform %s (%s):", p.Name, p.Arch)
		if p.Meta == nil {
			fmt.Fprintf(w, "%s %s\n", line, p.Status())
			continue
		}
		line += " " + orDash(strings.Join(p.Backends, ","))
		if h := hostLine(*p.Meta); h != "" {
			line += "  " + h
		}
		if p.Meta.Profile != "" {
			line += fmt.Sprintf("  profile %s (%d deviations)", p.Meta.Profile, p.Meta.Deviations)
		}
		if p.Meta.LabelFilter != "" {
			line += fmt.Sprintf("  label-filter %q", p.Meta.LabelFilter)
		}
		if p.Source != "" {
			line += "  from " + p.Source
		}
		if p.Incomplete != "" {
			line += "  " + p.Incomplete
		}
		fmt.Fprintln(w, line)
	}
}

// summaryArchs is the counts per architecture of a platforms merge.
func (r Run) summaryArchs(w io.Writer) {
	archs := r.ArchCounts()
	if len(archs) == 0 {
		return
	}
	width := len("architecture")
	for _, a := range archs {
		width = max(width, len(a.Arch))
	}
	fmt.Fprintf(w, "\n  %-*s  %4s  %4s  %4s  %4s  %5s  %s\n", width, "architecture", "pass", "fail", "skip", "dev", "total", "platforms")
	for _, a := range archs {
		c := a.Counts
		fmt.Fprintf(w, "  %-*s  %4d  %4d  %4d  %4d  %5d  %s\n", width, a.Arch, c.Passed, c.Failed, c.Skipped, c.Deviations, c.Total, a.note())
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func hostLine(m Meta) string {
	get := func(name string) string {
		for _, p := range m.Host {
			if p.Name == name {
				return p.Value
			}
		}
		return ""
	}
	var parts []string
	for _, name := range []string{"host.kernel", "host.arch", "host.cpu"} {
		if v := get(name); v != "" {
			parts = append(parts, v)
		}
	}
	if v := get("host.dev_kvm"); v != "" {
		parts = append(parts, "/dev/kvm "+v)
	}
	if v := get("host.taint"); v != "" && v != "0" {
		parts = append(parts, "tainted "+v)
	}
	if len(parts) == 0 {
		return ""
	}
	return "host: " + strings.Join(parts, ", ")
}

func (r Run) summaryFailures(w io.Writer, verbose bool) {
	var failed []Case
	for _, c := range r.Cases {
		if c.State.Failed() {
			failed = append(failed, c)
		}
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(w, "\nfailed (%d):\n", len(failed))
	for i, c := range failed {
		if i == summaryFailures && !verbose {
			fmt.Fprintf(w, "  … and %d more (see the reports)\n", len(failed)-i)
			break
		}
		where := c.FailureLocation
		if where == "" {
			where = c.Location
		}
		state := ""
		if c.State != StateFailed {
			state = " [" + string(c.State) + "]"
		}
		fmt.Fprintf(w, "  %s%s: %s", caseName(c), state, oneLine(c.Message))
		if where != "" {
			fmt.Fprintf(w, "  (%s)", where)
		}
		fmt.Fprintln(w)
		if verbose && c.Failure != "" {
			fmt.Fprintln(w, indent(indent(c.Failure)))
		}
	}
}

// caseName is the case's full name: backend/area/name.
func caseName(c Case) string {
	if c.Backend == "" {
		return c.ID
	}
	return c.Backend + "/" + c.ID
}

func (r Run) summarySkips(w io.Writer, verbose bool) {
	count := map[string]int{}
	for _, c := range r.Cases {
		if c.State == StateSkipped || c.State == StateDeviation {
			reason := oneLine(c.Message)
			if reason == "" {
				reason = "(no reason given)"
			}
			if c.Backend != "" && !strings.HasPrefix(reason, c.Backend+":") {
				reason = c.Backend + ": " + reason
			}
			count[reason]++
		}
	}
	if len(count) == 0 {
		return
	}
	reasons := make([]string, 0, len(count))
	total := 0
	for k, n := range count {
		reasons = append(reasons, k)
		total += n
	}
	sort.Slice(reasons, func(i, j int) bool {
		if count[reasons[i]] != count[reasons[j]] {
			return count[reasons[i]] > count[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	fmt.Fprintf(w, "\nskipped (%d):\n", total)
	for i, k := range reasons {
		if i == summarySkipReasons && !verbose {
			fmt.Fprintf(w, "  … and %d more reasons\n", len(reasons)-i)
			break
		}
		fmt.Fprintf(w, "  %4d× %s\n", count[k], k)
	}
}

func (r Run) summaryPerf(w io.Writer, verbose bool) {
	type row struct {
		name string
		m    Measurement
	}
	var rows []row
	for _, c := range r.Cases {
		for _, m := range c.Perf {
			rows = append(rows, row{caseName(c), m})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nperf (median, n):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, x := range rows {
		if i == summaryPerf && !verbose {
			fmt.Fprintf(tw, "  … and %d more measurements\n", len(rows)-i)
			break
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tn=%d\n", x.name, x.m.Name, formatValue(x.m.Median, x.m.Units), x.m.N)
	}
	tw.Flush()
}

// formatValue prints durations (units "ns") the way people read them.
func formatValue(v float64, units string) string {
	if units == "ns" {
		return time.Duration(v).Round(time.Duration(roundTo(v))).String()
	}
	s := fmt.Sprintf("%.4g", v)
	if units != "" {
		s += " " + units
	}
	return s
}

// roundTo keeps three or four significant digits of a duration.
func roundTo(ns float64) float64 {
	step := 1.0
	for ns/step >= 10000 {
		step *= 10
	}
	return step
}

// verdict is the summary's last two lines: the details, then the plain
// "WORD: N passed, N failed, N skipped" line CI tools read.
func (r Run) verdict() string {
	c := r.Counts()
	detail := fmt.Sprintf("%d specs, %d known deviations", c.Total, c.Deviations)
	if c.Filtered > 0 {
		detail += fmt.Sprintf(", %d filtered out", c.Filtered)
	}
	if d := r.Meta.Finished.Sub(r.Meta.Started); d > 0 {
		detail += ", " + d.Round(time.Millisecond).String()
	}
	word := "PASS"
	switch {
	case c.Failed > 0:
		word = "FAIL"
	case r.Validate() != nil:
		word = "FAIL"
		detail += "; report problems: " + r.Validate().Error()
	case c.Total == 0:
		word = "EMPTY"
	case c.Passed == 0:
		// Everything skipped: nothing was tested, which is not a pass.
		word = "SKIPPED"
	}
	// Deviations count as skips in the CI line: they did not pass.
	return fmt.Sprintf("%s\n%s: %d passed, %d failed, %d skipped", detail, word, c.Passed, c.Failed, c.Skipped+c.Deviations)
}
