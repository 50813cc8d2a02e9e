package reports

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega/gmeasure"
)

// failureText assembles what a person needs to debug a failed spec from a
// report alone: the message, where, a panic's value and stack, where a
// timed-out or interrupted spec was stuck, and the steps it had taken.
func failureText(s types.SpecReport) string {
	f := s.Failure
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line("%s", f.Message)
	if loc := location(f.Location); loc != "" {
		line("at %s", loc)
	}
	if f.FailureNodeContext != types.FailureNodeIsLeafNode && f.FailureNodeType != types.NodeTypeInvalid {
		line("in %s at %s", f.FailureNodeType, location(f.FailureNodeLocation))
	}
	if f.ForwardedPanic != "" {
		line("panic: %s", f.ForwardedPanic)
		if st := strings.TrimSpace(f.Location.FullStackTrace); st != "" {
			line("%s", st)
		}
	}
	if pr := f.ProgressReport; !pr.IsZero() {
		writeProgress(&b, pr)
	}
	if af := f.AdditionalFailure; af != nil {
		line("then %s: %s", af.State, af.Failure.Message)
		if loc := location(af.Failure.Location); loc != "" {
			line("at %s", loc)
		}
	}
	for _, af := range s.AdditionalFailures {
		line("also %s: %s", af.State, af.Failure.Message)
		if loc := location(af.Failure.Location); loc != "" {
			line("at %s", loc)
		}
	}
	var steps []string
	for _, e := range s.SpecEvents {
		if e.SpecEventType == types.SpecEventByStart {
			steps = append(steps, fmt.Sprintf("  STEP: %s (%s)", e.Message, location(e.CodeLocation)))
		}
	}
	if len(steps) > 0 {
		line("steps:")
		for _, st := range steps {
			line("%s", st)
		}
	}
	return clean(strings.TrimRight(b.String(), "\n"))
}

// writeProgress says where a timed-out or interrupted spec was: the node,
// the step, and the spec goroutine's stack (the frames in spec code are
// what matter when a KVM_RUN hangs).
func writeProgress(b *strings.Builder, pr types.ProgressReport) {
	fmt.Fprintf(b, "stuck in %s %q at %s\n", pr.CurrentNodeType, pr.CurrentNodeText, location(pr.CurrentNodeLocation))
	if pr.CurrentStepText != "" {
		fmt.Fprintf(b, "during step %q at %s\n", pr.CurrentStepText, location(pr.CurrentStepLocation))
	}
	g := pr.SpecGoroutine()
	if g.IsZero() {
		return
	}
	fmt.Fprintf(b, "goroutine %d [%s]:\n", g.ID, g.State)
	for _, fc := range g.Stack {
		mark := "  "
		if fc.Highlight {
			mark = "> "
		}
		fmt.Fprintf(b, "%s%s\n    %s:%d\n", mark, fc.Function, fc.Filename, fc.Line)
	}
}

// ansi matches terminal escape sequences (colours from GinkgoWriter or
// gmeasure); they are noise in a file and invalid in XML.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// pointerTag matches Gomega's formatting of a pointer value,
// "<*guest.AssertError | 0x26a8f56410b0>": the address changes on every
// run, and tools that group failures by message would see a new failure
// every night.
var pointerTag = regexp.MustCompile(`<(\*[^<>|]*?) \| 0x[0-9a-fA-F]+>`)

// clean strips terminal escapes, invalid UTF-8 and pointer addresses from
// text bound for a report.
func clean(s string) string {
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansi.ReplaceAllString(s, "")
	}
	if strings.Contains(s, " | 0x") {
		s = pointerTag.ReplaceAllString(s, "<$1>")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Plain strips terminal escapes and invalid UTF-8, for text that goes
// into a report or a one-line error.
func Plain(s string) string { return clean(s) }

// summaryLen bounds a one-line message.
const summaryLen = 400

// typeTag matches Gomega's type annotations ("<int>: ", "<*T>: ").
var typeTag = regexp.MustCompile(`<[^<>\n]*>: ?`)

// errorHeads are the lines with which Gomega introduces an unexpected
// error; the error's own text, which says what went wrong, follows the
// type line, and a dump of the error's fields follows that.
var errorHeads = []string{"Expected success, but got an error:", "Unexpected error:"}

// oneLine folds a failure message onto one line of at most summaryLen
// characters, the useful part first. Gomega puts values on lines of their
// own ("Expected\n    <int>: 1\nto equal\n    <int>: 2"), so the first line
// alone would say nothing; for an unexpected error the error's text comes
// first and the struct dump Gomega appends is dropped (the full text stays
// in the report body).
func oneLine(s string) string {
	s = clean(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		head := strings.TrimSpace(l)
		if !slices.Contains(errorHeads, head) || i+1 >= len(lines) {
			continue
		}
		var text []string
		j := i + 1
		if typeTag.MatchString(lines[j]) && strings.TrimSpace(typeTag.ReplaceAllString(lines[j], "")) == "" {
			j++ // the type line
		}
		for ; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if strings.HasPrefix(t, "{") || t == "occurred" {
				break
			}
			text = append(text, t)
		}
		if len(text) > 0 {
			before := strings.Join(lines[:i], " ")
			s = strings.Join(text, " ") + " (" + strings.ToLower(strings.TrimSuffix(head, ":")) + ")"
			if strings.TrimSpace(before) != "" {
				s = before + ": " + s
			}
		}
		break
	}
	s = typeTag.ReplaceAllString(s, "")
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > summaryLen {
		s = string(r[:summaryLen-1]) + "…"
	}
	return s
}

// entries turns report entries into text and pulls gmeasure statistics out
// of the ones that carry experiments.
func entries(res types.ReportEntries) ([]Entry, []Measurement) {
	var out []Entry
	var perf []Measurement
	for _, e := range res {
		out = append(out, Entry{Name: e.Name, Value: entryText(e)})
		perf = append(perf, measurements(e)...)
	}
	return out, perf
}

// entryText prefers the plain String of a value over the colourised form
// Ginkgo's own StringRepresentation picks.
func entryText(e types.ReportEntry) string {
	raw := e.GetRawValue()
	switch v := raw.(type) {
	case nil:
		return clean(e.Value.Representation)
	case string:
		return clean(v)
	case fmt.Stringer:
		return clean(v.String())
	}
	if e.Value.Representation != "" {
		return clean(e.Value.Representation)
	}
	return clean(fmt.Sprintf("%+v", raw))
}

func measurements(e types.ReportEntry) []Measurement {
	var ms gmeasure.Measurements
	switch v := e.GetRawValue().(type) {
	case *gmeasure.Experiment:
		if v != nil {
			ms = v.Measurements
		}
	case gmeasure.Experiment:
		ms = v.Measurements
	case gmeasure.Measurement:
		ms = gmeasure.Measurements{v}
	case *gmeasure.Measurement:
		if v != nil {
			ms = gmeasure.Measurements{*v}
		}
	default:
		// In a parallel run the entry crossed a process boundary as JSON
		// and the raw value is a map; the JSON still holds the experiment.
		if e.Value.AsJSON != "" {
			var x gmeasure.Experiment
			if json.Unmarshal([]byte(e.Value.AsJSON), &x) == nil {
				ms = x.Measurements
			}
		}
	}
	var out []Measurement
	for _, m := range ms {
		if m.Type != gmeasure.MeasurementTypeValue && m.Type != gmeasure.MeasurementTypeDuration {
			continue // notes carry no numbers
		}
		st := m.Stats()
		units := m.Units
		samples := append([]float64{}, m.Values...)
		if st.Type == gmeasure.StatsTypeDuration {
			units = "ns"
			samples = make([]float64, len(m.Durations))
			for i, d := range m.Durations {
				samples[i] = float64(d.Nanoseconds())
			}
		}
		out = append(out, Measurement{
			Experiment: m.ExperimentName,
			Name:       m.Name,
			Units:      units,
			N:          st.N,
			Min:        st.FloatFor(gmeasure.StatMin),
			Median:     st.FloatFor(gmeasure.StatMedian),
			Mean:       st.FloatFor(gmeasure.StatMean),
			Max:        st.FloatFor(gmeasure.StatMax),
			StdDev:     st.FloatFor(gmeasure.StatStdDev),
			Samples:    samples,
		})
	}
	return out
}
