package reports

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
)

// SchemaVersion is the version of the JSON report this package writes;
// ReadJSON reads it and every earlier one. Bump it on any change an old
// reader would misread (a renamed or re-typed field, a new state) or a
// comparison must know about: version 2 keeps every perf sample
// (Measurement.Samples), which version 1 reports lack, so they compare as
// "not enough data".
const SchemaVersion = 2

// Skip-message prefixes of known deviations. A spec hit by a deviation
// calls Skip with one of them, and the report counts it apart from plain
// skips so that a deviation is never mistaken for a missing capability.
const (
	DeviationPrefix       = "known deviation: "
	DeviationNotRunPrefix = "known deviation (not run): "
)

// SuiteArea is the area of the pseudo-cases that stand for suite-level
// nodes and failures ("[suite setup]" …), which belong to no backend.
const SuiteArea = "suite"

// State is the outcome of one case.
type State string

// Case states. They are the Ginkgo states (pending is reported as skipped)
// plus StateDeviation, a skip caused by a known deviation.
const (
	StatePassed      State = "passed"
	StateFailed      State = "failed"
	StateSkipped     State = "skipped"
	StateDeviation   State = "deviation"
	StateTimedout    State = "timedout"
	StatePanicked    State = "panicked"
	StateInterrupted State = "interrupted"
	StateAborted     State = "aborted"
)

// Failed reports whether the state fails the run.
func (s State) Failed() bool {
	switch s {
	case StateFailed, StateTimedout, StatePanicked, StateInterrupted, StateAborted:
		return true
	}
	return false
}

// IsError reports whether JUnit should call it an error (the spec could not
// finish) rather than a failure (the spec found something wrong).
func (s State) IsError() bool { return s == StatePanicked || s == StateInterrupted }

// Valid reports whether s is one of the states above; ReadJSON and
// Validate refuse any other.
func (s State) Valid() bool {
	switch s {
	case StatePassed, StateFailed, StateSkipped, StateDeviation, StateTimedout, StatePanicked, StateInterrupted, StateAborted:
		return true
	}
	return false
}

// CapLine is one capability of a backend as `kvmspec caps` shows it.
type CapLine struct {
	Name      string `json:"name"`             // the capability, e.g. "dirty-ring"
	Supported bool   `json:"supported"`        // whether the backend has it here
	Detail    string `json:"detail,omitempty"` // why not, or a value
}

// Meta describes the run as a whole: what was asked for and where.
type Meta struct {
	Version     string   `json:"version"`                // kvmspec version
	Backends    []string `json:"backends"`               // backends selected, in order
	Seed        int64    `json:"seed"`                   // Ginkgo random seed, to replay the order
	LabelFilter string   `json:"label_filter,omitempty"` // --label-filter as given
	Focus       string   `json:"focus,omitempty"`        // --focus as given
	Skip        string   `json:"skip,omitempty"`         // --skip as given
	Strict      bool     `json:"strict,omitempty"`       // host profiles were ignored
	Profile     string   `json:"profile,omitempty"`      // host profile applied, "" for none
	ProfileFile string   `json:"profile_file,omitempty"` // --profile-file it came from, if any
	Deviations  int      `json:"deviations,omitempty"`   // known deviations the profile lists
	// Params are the --param values the run was given, so a number can be
	// traced to the workload that produced it.
	Params map[string]string `json:"params,omitempty"`
	Host   []host.Property   `json:"host,omitempty"` // host facts, in order
	// Caps maps backend name → its capability lines.
	Caps     map[string][]CapLine `json:"caps,omitempty"`
	Started  time.Time            `json:"started"`  // when the run began
	Finished time.Time            `json:"finished"` // when the specs were done
	// ReportDir is where the reports were written; Summary prints it.
	ReportDir string `json:"report_dir,omitempty"`
	// Shard, when set, says the run was one shard of a larger run
	// (--shard), or the merge of all of them (Index 0, Merged set).
	Shard *Shard `json:"shard,omitempty"`
	// Platform is the suffix OnPlatform gave the backends ("arm64" for
	// kvm-arm64): the run was made on another platform and brought in.
	Platform string `json:"platform,omitempty"`
	// Platforms, when set, says the run is the merge of runs made on
	// different platforms (MergePlatforms): each with its own host facts,
	// settings, host profile and counts. The fields above then hold what
	// the platforms have in common (see MergePlatforms).
	Platforms []Platform `json:"platforms,omitempty"`
}

// Entry is a report entry (Ginkgo's AddReportEntry) as text.
type Entry struct {
	Name  string `json:"name"`  // the entry's name as given to AddReportEntry
	Value string `json:"value"` // its value as text, without terminal colours
}

// Measurement is the statistics of one gmeasure measurement, kept as
// numbers so that nightly jobs can compare runs.
type Measurement struct {
	Experiment string `json:"experiment"` // gmeasure experiment name
	Name       string `json:"name"`       // measurement name within it
	// Units are the measurement's units; durations are given in "ns".
	Units  string  `json:"units"`
	N      int     `json:"n"` // number of samples
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	Max    float64 `json:"max"`
	StdDev float64 `json:"stddev"` // population standard deviation, as gmeasure computes it
	// Samples are every value, in the order measured (durations in ns),
	// so that comparisons can test them (schema version 2 on).
	Samples []float64 `json:"samples,omitempty"`
}

// Case is one testcase: one It of one backend.
type Case struct {
	Backend string `json:"backend"` // from the "backend:<name>" label; "" for suite pseudo-cases
	Area    string `json:"area"`    // from the first area label
	// Name is the container texts below backend and area, then the It
	// text, joined with " / ": "exceptions / #UD [cpl0]".
	Name string `json:"name"`
	// ID is Area + "/" + Name, what host profiles match on.
	ID      string `json:"id"`
	State   State  `json:"state"`
	Message string `json:"message,omitempty"` // failure message or skip reason
	// Location is the It's own file:line.
	Location string `json:"location,omitempty"`
	// FailureLocation is the file:line of the failure.
	FailureLocation string `json:"failure_location,omitempty"`
	// Failure is the full failure text: message, location, panic, stack,
	// where a timed-out spec was stuck, the By steps.
	Failure  string        `json:"failure,omitempty"`
	Started  time.Time     `json:"started,omitzero"`
	Duration time.Duration `json:"duration_ns"`
	Labels   []string      `json:"labels,omitempty"`         // every label, containers' included
	Entries  []Entry       `json:"report_entries,omitempty"` // host health, guest output, experiments
	Perf     []Measurement `json:"perf,omitempty"`           // statistics of gmeasure entries
	// Output is what the spec wrote to GinkgoWriter and, when captured,
	// to stdout/stderr.
	Output string `json:"output,omitempty"`
	// Deviation is the host profile's known deviation on the spec, which
	// decided its State (see DeviationEntry); nil when none applied.
	Deviation *KnownDeviation `json:"deviation,omitempty"`
}

// Run is the result of one kvmspec run, the model behind every report.
type Run struct {
	SchemaVersion int    `json:"schema_version"` // SchemaVersion when written by this package
	Meta          Meta   `json:"meta"`
	Cases         []Case `json:"cases"` // sorted: suite cases, then by backend, area and name
	// Filtered counts the specs the filters deselected; they are not
	// cases of this run.
	Filtered int `json:"filtered"`
	// Problems are defects of the run itself (duplicate case IDs); the
	// CLI fails a run that has any.
	Problems []string `json:"problems,omitempty"`
	// Incomplete, when set, says the run did not finish and why: the
	// report a run leaves in its directory while it runs, so that one
	// killed before writing its results is never read as a result.
	Incomplete string `json:"incomplete,omitempty"`
}

// Counts are the totals of a run. Total = Passed + Failed + Skipped +
// Deviations; Filtered specs are not part of Total.
type Counts struct {
	Total      int `json:"total"`
	Passed     int `json:"passed"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
	Deviations int `json:"deviations"`
	Filtered   int `json:"filtered"`
}

// Counts returns the run's totals.
func (r Run) Counts() Counts {
	c := tally(r.Cases)
	c.Filtered = r.Filtered
	return c
}

func tally(cases []Case) Counts {
	var c Counts
	for _, k := range cases {
		c.Total++
		switch {
		case k.State == StatePassed:
			c.Passed++
		case k.State == StateDeviation:
			c.Deviations++
		case k.State.Failed():
			c.Failed++
		default:
			c.Skipped++
		}
	}
	return c
}

// OK reports whether the run may be called green: nothing failed and the
// report itself is sound.
func (r Run) OK() bool { return r.Counts().Failed == 0 && r.Validate() == nil && r.Incomplete == "" }

// Validate checks the run's integrity: every case ID is unique within its
// backend (two specs with one ID would make deviations and baselines
// ambiguous) and every state is known.
func (r Run) Validate() error {
	var errs []error
	for _, p := range problems(r.Cases) {
		errs = append(errs, errors.New(p))
	}
	return errors.Join(errs...)
}

func problems(cases []Case) []string {
	var out []string
	seen := map[[2]string]int{}
	for i, c := range cases {
		if !c.State.Valid() {
			out = append(out, fmt.Sprintf("case %s/%s: unknown state %q", c.Backend, c.ID, c.State))
		}
		key := [2]string{c.Backend, c.ID}
		if j, dup := seen[key]; dup {
			out = append(out, fmt.Sprintf("duplicate case ID %q on backend %q (cases %d and %d): give the specs distinct texts", c.ID, c.Backend, j, i))
			continue
		}
		seen[key] = i
	}
	return out
}

// FromGinkgo turns a Ginkgo report into a Run. Only It specs become cases;
// specs the filters deselected are dropped and counted in Filtered.
// Suite-level failures (BeforeSuite, AfterSuite, interrupts, timeouts)
// become failing cases in area "suite", so a broken setup never gives a
// green report.
func FromGinkgo(r types.Report, m Meta) Run {
	run := Run{SchemaVersion: SchemaVersion, Meta: m}
	if m.Shard != nil {
		sh := *m.Shard // counted here; the caller's Meta stays as it was
		run.Meta.Shard = &sh
	}
	if run.Meta.Started.IsZero() {
		run.Meta.Started = r.StartTime
	}
	if run.Meta.Finished.IsZero() {
		run.Meta.Finished = r.EndTime
	}
	stop := stopReason(r)
	sel := newSelector(r)
	for _, s := range r.SpecReports {
		switch {
		case s.LeafNodeType.Is(types.NodeTypesForSuiteLevelNodes):
			if c, ok := suiteNodeCase(s); ok {
				run.Cases = append(run.Cases, c)
			}
		case s.LeafNodeType != types.NodeTypeIt:
			// Other leaf kinds (ReportAfterEach …) are not specs.
		case s.State == types.SpecStateSkipped && strings.HasPrefix(s.Failure.Message, OutOfShardPrefix):
			// Another shard's testcase: not a case of this report.
			if run.Meta.Shard != nil {
				run.Meta.Shard.Elsewhere++
			}
		case s.State == types.SpecStateSkipped && s.Failure.Message == "":
			// Deselected and never-run specs look alike in the report. When
			// the run stopped early, the ones the filters did select are
			// cases skipped for that reason.
			if stop == "" || !sel.selects(r, s) {
				run.Filtered++
				continue
			}
			c := specCase(s)
			c.Message = "not run: " + stop
			run.Cases = append(run.Cases, c)
		default:
			run.Cases = append(run.Cases, specCase(s))
		}
	}
	if c, ok := suiteFailureCase(r, run.Cases); ok {
		run.Cases = append(run.Cases, c)
	}
	sortCases(run.Cases, m.Backends)
	run.Problems = problems(run.Cases)
	return run
}

// stopReason says why specs that were selected may have been skipped
// without a message, or "" when the run did not stop early.
func stopReason(r types.Report) string {
	if len(r.SpecialSuiteFailureReasons) > 0 {
		return strings.Join(r.SpecialSuiteFailureReasons, "; ")
	}
	for _, s := range r.SpecReports {
		switch {
		case s.State == types.SpecStateAborted:
			return "the run was aborted"
		case s.State == types.SpecStateInterrupted:
			return "the run was interrupted"
		case s.State.Is(types.SpecStateFailureStates) && r.SuiteConfig.FailFast:
			return "fail-fast after a failure"
		}
	}
	return ""
}

// selector re-applies Ginkgo's command-line filters to tell deselected
// specs from those a stopped run never reached. Programmatic focus (FIt)
// leaves no trace in the report, so those specs count as selected.
type selector struct {
	labels      types.LabelFilter
	focus, skip *regexp.Regexp
	focusFiles  types.FileFilters
	skipFiles   types.FileFilters
}

func newSelector(r types.Report) selector {
	var s selector
	cfg := r.SuiteConfig
	if cfg.LabelFilter != "" {
		s.labels, _ = types.ParseLabelFilter(cfg.LabelFilter)
	}
	if len(cfg.FocusStrings) > 0 {
		s.focus, _ = regexp.Compile(strings.Join(cfg.FocusStrings, "|"))
	}
	if len(cfg.SkipStrings) > 0 {
		s.skip, _ = regexp.Compile(strings.Join(cfg.SkipStrings, "|"))
	}
	s.focusFiles, _ = types.ParseFileFilters(cfg.FocusFiles)
	s.skipFiles, _ = types.ParseFileFilters(cfg.SkipFiles)
	return s
}

func (sel selector) selects(r types.Report, s types.SpecReport) bool {
	if sel.labels != nil && !sel.labels(append(append([]string{}, r.SuiteLabels...), s.Labels()...)) {
		return false
	}
	text := r.SuiteDescription + " " + s.FullText()
	if sel.focus != nil && !sel.focus.MatchString(text) {
		return false
	}
	if sel.skip != nil && sel.skip.MatchString(text) {
		return false
	}
	locs := append(append([]types.CodeLocation{}, s.ContainerHierarchyLocations...), s.LeafNodeLocation)
	if len(sel.focusFiles) > 0 && !sel.focusFiles.Matches(locs) {
		return false
	}
	if len(sel.skipFiles) > 0 && sel.skipFiles.Matches(locs) {
		return false
	}
	return true
}

// SpecID returns the stable ID of an It spec, "area/name", as reports and
// host profiles know it. Suites call it to look deviations up, so the
// lookup and the report can never disagree on a name.
func SpecID(s types.SpecReport) string {
	_, area, name := identity(s)
	return area + "/" + name
}

// identity derives backend, area and name from the spec tree
// Describe(backend) > Describe(area) > … > It, preferring labels over
// container texts where both say it.
func identity(s types.SpecReport) (backend, area, name string) {
	labels := s.Labels()
	texts := s.ContainerHierarchyTexts
	backend = taxonomy.BackendOf(labels)
	if backend == "" && len(texts) > 0 {
		backend = texts[0]
	}
	if a, ok := taxonomy.AreaOf(labels); ok {
		area = a.String()
	} else if len(texts) > 1 {
		area = texts[1]
	}
	rest := append([]string{}, texts[min(2, len(texts)):]...)
	if s.LeafNodeText != "" {
		rest = append(rest, s.LeafNodeText)
	}
	return backend, area, clean(strings.Join(rest, " / "))
}

func specCase(s types.SpecReport) Case {
	c := Case{
		Labels:   s.Labels(),
		State:    stateOf(s),
		Message:  clean(s.Failure.Message),
		Location: location(s.LeafNodeLocation),
		Started:  s.StartTime,
		Duration: s.RunTime,
		Output:   clean(s.CapturedGinkgoWriterOutput + s.CapturedStdOutErr),
	}
	c.Backend, c.Area, c.Name = identity(s)
	c.ID = c.Area + "/" + c.Name
	if s.State == types.SpecStatePending && c.Message == "" {
		c.Message = "pending"
	}
	if c.State.Failed() {
		c.FailureLocation = location(s.Failure.Location)
		c.Failure = failureText(s)
	}
	c.Entries, c.Perf = entries(s.ReportEntries)
	applyDeviation(&c, s)
	return c
}

func stateOf(s types.SpecReport) State {
	switch s.State {
	case types.SpecStatePassed:
		return StatePassed
	case types.SpecStateFailed:
		return StateFailed
	case types.SpecStateTimedout:
		return StateTimedout
	case types.SpecStatePanicked:
		return StatePanicked
	case types.SpecStateInterrupted:
		return StateInterrupted
	case types.SpecStateAborted:
		return StateAborted
	case types.SpecStateSkipped, types.SpecStatePending:
		if strings.HasPrefix(s.Failure.Message, "known deviation") {
			return StateDeviation
		}
		return StateSkipped
	}
	// An invalid state must not pass quietly.
	return StateFailed
}

func location(cl types.CodeLocation) string {
	if cl.FileName == "" && cl.CustomMessage == "" {
		return ""
	}
	return cl.String()
}

// suiteNodeName names the pseudo-case of a suite-level node.
func suiteNodeName(t types.NodeType) string {
	switch {
	case t.Is(types.NodeTypeBeforeSuite | types.NodeTypeSynchronizedBeforeSuite | types.NodeTypeReportBeforeSuite):
		return "[suite setup]"
	case t.Is(types.NodeTypeAfterSuite | types.NodeTypeSynchronizedAfterSuite | types.NodeTypeCleanupAfterSuite):
		return "[suite teardown]"
	}
	return "[suite report]"
}

// suiteNodeCase reports a suite-level node that failed or skipped the
// suite; one that passed is no testcase.
func suiteNodeCase(s types.SpecReport) (Case, bool) {
	if s.State == types.SpecStatePassed || s.State == types.SpecStateInvalid {
		return Case{}, false
	}
	name := suiteNodeName(s.LeafNodeType)
	c := Case{
		Area:     SuiteArea,
		Name:     name,
		ID:       SuiteArea + "/" + name,
		State:    stateOf(s),
		Message:  clean(s.Failure.Message),
		Location: location(s.LeafNodeLocation),
		Started:  s.StartTime,
		Duration: s.RunTime,
		Output:   clean(s.CapturedGinkgoWriterOutput + s.CapturedStdOutErr),
	}
	if c.State == StateDeviation {
		c.State = StateSkipped
	}
	if c.State.Failed() {
		c.FailureLocation = location(s.Failure.Location)
		c.Failure = failureText(s)
	}
	c.Entries, c.Perf = entries(s.ReportEntries)
	return c, true
}

// skippedInBeforeSuite is Ginkgo's reason when BeforeSuite called Skip; the
// "[suite setup]" case already reports it, as a skip and not a failure.
const skippedInBeforeSuite = "Suite skipped in BeforeSuite"

// suiteFailureCase makes one failing case of the suite-wide failure
// reasons (interrupt, suite timeout, --fail-on-pending …), and of a suite
// Ginkgo calls failed while no case failed, so that the report is never
// greener than the exit code.
func suiteFailureCase(r types.Report, cases []Case) (Case, bool) {
	var reasons []string
	for _, reason := range r.SpecialSuiteFailureReasons {
		if reason != skippedInBeforeSuite {
			reasons = append(reasons, reason)
		}
	}
	if len(reasons) == 0 {
		// Ginkgo fails the suite for specs a known deviation covers too.
		if r.SuiteSucceeded || tally(cases).Failed > 0 || slices.ContainsFunc(cases, reclassifiedFailure) {
			return Case{}, false
		}
		reasons = []string{"Ginkgo reports the suite failed, but no spec did"}
	}
	state := StateFailed
	for _, reason := range reasons {
		if strings.Contains(strings.ToLower(reason), "interrupt") {
			state = StateInterrupted
		}
	}
	msg := strings.Join(reasons, "\n")
	return Case{
		Area: SuiteArea, Name: "[suite]", ID: SuiteArea + "/[suite]",
		State: state, Message: msg, Failure: msg, Duration: r.RunTime,
	}, true
}

// sortCases orders cases for reports that diff well between runs (Ginkgo
// shuffles execution order by seed): suite pseudo-cases first, then by
// backend in the order the run chose them, area and name.
func sortCases(cases []Case, backends []string) {
	rank := func(c Case) int {
		if c.Area == SuiteArea && c.Backend == "" {
			return -1
		}
		for i, b := range backends {
			if b == c.Backend {
				return i
			}
		}
		return len(backends)
	}
	sort.SliceStable(cases, func(i, j int) bool {
		a, b := cases[i], cases[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Backend != b.Backend {
			return a.Backend < b.Backend
		}
		if a.Area != b.Area {
			return a.Area < b.Area
		}
		return a.Name < b.Name
	})
}
