package reports

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// DeviationEntry names the report entry with which the framework records,
// before a spec runs, the known deviation the host profile declares on it.
// Its value is a KnownDeviation. A deviation is judged here, on the spec's
// final state, and not inside the spec: a spec can fail by Expect, by
// Ginkgo's Fail, by a panic, by a guest assert or by its timeout, and the
// last two cannot be intercepted from inside the spec.
const DeviationEntry = "kvmspec known deviation"

// HealthFailurePrefix starts the failure of a spec that left the host
// kernel unhealthy (a new taint or kernel warning). A known deviation never
// covers it: a deviation that harms the host must be declared not to run.
const HealthFailurePrefix = "host kernel health: "

// KnownDeviation is the deviation of a host profile that applied to a case.
type KnownDeviation struct {
	ID      string `json:"id"`      // the deviation's ID in its profile
	Profile string `json:"profile"` // the host profile that declares it
	Reason  string `json:"reason"`  // why the spec is expected to fail
	// Run is false for a deviation whose specs are not run because
	// running them harms the host.
	Run bool `json:"run"`
}

// String is how the entry reads next to a failure in Ginkgo's output.
func (d KnownDeviation) String() string {
	if !d.Run {
		return fmt.Sprintf("host profile %s does not run this spec: %s [%s]", d.Profile, d.Reason, d.ID)
	}
	return fmt.Sprintf("host profile %s expects this spec to fail: %s [%s]", d.Profile, d.Reason, d.ID)
}

// NotRunMessage is the skip message of a spec a deviation keeps from
// running.
func (d KnownDeviation) NotRunMessage() string {
	return fmt.Sprintf("%s%s [%s]", DeviationNotRunPrefix, d.Reason, d.ID)
}

// deviationOf returns the deviation the framework recorded on a spec.
func deviationOf(s types.SpecReport) *KnownDeviation {
	for _, e := range s.ReportEntries {
		if e.Name != DeviationEntry {
			continue
		}
		if d, ok := e.GetRawValue().(KnownDeviation); ok {
			return &d
		}
		// A report that went through JSON (ginkgo --json-report) keeps
		// only the value's JSON form.
		var d KnownDeviation
		if json.Unmarshal([]byte(e.Value.AsJSON), &d) == nil && d.ID != "" {
			return &d
		}
	}
	return nil
}

// applyDeviation classifies a case whose spec a host-profile deviation
// covers, from the spec's final state: a spec that failed by any route
// (failure, timeout, panic) is a known deviation, one that passed is a
// failure so that a fixed bug cannot hide behind a stale profile, and a
// spec that did not finish for another reason (skipped, interrupted,
// aborted) keeps its state.
func applyDeviation(c *Case, s types.SpecReport) {
	d := deviationOf(s)
	if d == nil {
		return
	}
	c.Deviation = d
	c.Entries = slices.DeleteFunc(c.Entries, func(e Entry) bool { return e.Name == DeviationEntry })
	switch {
	case !d.Run:
		if c.State == StateSkipped {
			c.State = StateDeviation
		}
	case s.State.Is(types.SpecStateFailed|types.SpecStateTimedout|types.SpecStatePanicked) && !healthFailed(s):
		observed := s.Failure.Message
		if s.Failure.ForwardedPanic != "" {
			observed = s.Failure.ForwardedPanic
		}
		c.State = StateDeviation
		c.Message = fmt.Sprintf("%s%s [%s] (observed: %s: %s)", DeviationPrefix, d.Reason, d.ID, s.State, condense(observed))
	case s.State == types.SpecStatePassed:
		c.State = StateFailed
		c.Message = fmt.Sprintf("unexpected pass: remove the deviation %s from host profile %s (%s)", d.ID, d.Profile, d.Reason)
		c.Failure = c.Message
		c.FailureLocation = c.Location
	}
}

// healthFailed reports whether the spec, first or later, failed the host
// health check.
func healthFailed(s types.SpecReport) bool {
	if strings.HasPrefix(s.Failure.Message, HealthFailurePrefix) {
		return true
	}
	for _, f := range s.AdditionalFailures {
		if strings.HasPrefix(f.Failure.Message, HealthFailurePrefix) {
			return true
		}
	}
	return false
}

// reclassifiedFailure reports whether Ginkgo counted the case's spec as a
// failure that a known deviation turned into a deviation.
func reclassifiedFailure(c Case) bool {
	return c.State == StateDeviation && c.Deviation != nil && c.Deviation.Run
}

// Checked reports whether the case's spec ran to a verdict that tested
// something: it passed, or it failed as a known deviation declares. A run
// with no checked case tested nothing.
func (c Case) Checked() bool { return c.State == StatePassed || reclassifiedFailure(c) }

// condense folds a failure message to one line: its lines without
// Gomega's "<*type | 0x…>:" headers, at most 240 bytes.
func condense(s string) string {
	var parts []string
	for _, l := range strings.Split(clean(s), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || (strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">:")) {
			continue
		}
		parts = append(parts, l)
	}
	out := strings.Join(parts, " ")
	if len(out) > 240 {
		out = out[:240] + "…"
	}
	return out
}
