package reports

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// OutOfShardPrefix starts the skip message of a spec another shard runs.
// FromGinkgo drops such specs from the cases and counts them in
// Shard.Elsewhere, so a shard's report holds only its own testcases.
const OutOfShardPrefix = "in another shard: "

// Shard says which part of the selected specs a run ran: shard Index of
// Total (1-based), as `kvmspec run --shard i/n` and `kvmspec merge` use it.
type Shard struct {
	Index int `json:"index"` // 1..Total
	Total int `json:"total"`
	// Balance is the report.json whose durations assigned the specs
	// (--shard-balance), "" when they are assigned by hash.
	Balance string `json:"balance,omitempty"`
	// Elsewhere counts the selected specs left to other shards.
	Elsewhere int `json:"elsewhere"`
	// Merged lists the shards `kvmspec merge` combined ("1/3", …).
	Merged []string `json:"merged,omitempty"`

	// owner maps a testcase key to its shard (0-based) for the keys the
	// balance report knew; the others go by hash.
	owner map[string]int
}

// String is "i/n".
func (s *Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Total) }

// ParseShard parses "i/n" (1 <= i <= n).
func ParseShard(s string) (*Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return nil, fmt.Errorf("bad --shard %q: want i/n with 1 <= i <= n, e.g. 2/4", s)
	}
	return &Shard{Index: i, Total: n}, nil
}

// CaseKey is a testcase's identity across runs and shards: backend and
// case ID, "emu/smoke/pio out [cpl0]" ("suite/…" cases have no backend).
func CaseKey(backend, id string) string {
	if backend == "" {
		return id
	}
	return backend + "/" + id
}

// SpecKey is CaseKey of an It spec, as FromGinkgo will name its case.
func SpecKey(s types.SpecReport) string {
	backend, area, name := identity(s)
	return CaseKey(backend, area+"/"+name)
}

// BalanceBy assigns the testcases of a previous run to the shards by their
// durations (longest first, each to the least loaded shard, ties by key),
// so that shards take about the same time; testcases the previous run did
// not have are still assigned by hash. source is recorded in the report.
func (s *Shard) BalanceBy(prev Run, source string) {
	type item struct {
		key string
		d   int64
	}
	var items []item
	seen := map[string]bool{}
	for _, c := range prev.Cases {
		k := CaseKey(c.Backend, c.ID)
		if c.Backend == "" || seen[k] {
			continue
		}
		seen[k] = true
		items = append(items, item{k, int64(c.Duration)})
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].d != items[j].d {
			return items[i].d > items[j].d
		}
		return items[i].key < items[j].key
	})
	load := make([]int64, s.Total)
	count := make([]int, s.Total)
	s.owner = map[string]int{}
	for _, it := range items {
		best := 0
		for i := 1; i < s.Total; i++ {
			if load[i] < load[best] || (load[i] == load[best] && count[i] < count[best]) {
				best = i
			}
		}
		// Specs that took no time are spread by count rather than all
		// piled on one shard.
		load[best] += it.d
		count[best]++
		s.owner[it.key] = best
	}
	s.Balance = source
}

// Owns reports whether the testcase key belongs to this shard.
func (s *Shard) Owns(key string) bool {
	if s == nil {
		return true
	}
	if i, ok := s.owner[key]; ok {
		return i == s.Index-1
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64()%uint64(s.Total)) == s.Index-1
}

// ErrShards is wrapped by Merge's errors about the set of shards given
// (overlapping, missing, from different runs): bad usage, not a failure.
var ErrShards = errors.New("shards do not make one run")

// Merge combines the reports of the shards of one run into the report of
// the whole: the cases of all shards, sorted as a run sorts them, the
// filter's deselected count, the earliest start and the latest finish.
// It refuses shards that overlap (a shard given twice, or a testcase in
// two), are missing, or were run with different filters or backends.
func Merge(runs []Run) (Run, error) {
	if len(runs) == 0 {
		return Run{}, fmt.Errorf("merge: %w: no reports given", ErrShards)
	}
	first := runs[0]
	if first.Meta.Shard == nil {
		return Run{}, fmt.Errorf("merge: %w: report 1 is not a shard (run with --shard i/n)", ErrShards)
	}
	n := first.Meta.Shard.Total
	have := make([]int, n+1) // shard index → report number (1-based), 0 none
	owner := map[string]string{}
	out := Run{SchemaVersion: SchemaVersion, Meta: first.Meta}
	filteredFrom := 0 // the report out.Filtered came from (1-based)
	out.Meta.Shard = &Shard{Index: 0, Total: n, Balance: first.Meta.Shard.Balance}
	var incomplete []string
	for i, r := range runs {
		sh := r.Meta.Shard
		switch {
		case sh == nil:
			return Run{}, fmt.Errorf("merge: %w: report %d is not a shard (run with --shard i/n)", ErrShards, i+1)
		case sh.Total != n:
			return Run{}, fmt.Errorf("merge: %w: report %d is shard %s, report 1 is of %d shards", ErrShards, i+1, sh, n)
		case sh.Index < 1 || sh.Index > n:
			return Run{}, fmt.Errorf("merge: %w: report %d has shard index %d out of 1..%d", ErrShards, i+1, sh.Index, n)
		case have[sh.Index] != 0:
			return Run{}, fmt.Errorf("merge: %w: shard %s given twice (reports %d and %d): overlapping shards", ErrShards, sh, have[sh.Index], i+1)
		}
		have[sh.Index] = i + 1
		if d := sameSelection(first.Meta, r.Meta); d != "" {
			return Run{}, fmt.Errorf("merge: %w: report %d (shard %s) was run with %s than report 1", ErrShards, i+1, sh, d)
		}
		// A shard that did not finish never counted its deselected specs.
		if r.Incomplete == "" {
			if filteredFrom == 0 {
				filteredFrom, out.Filtered = i+1, r.Filtered
			} else if r.Filtered != out.Filtered {
				return Run{}, fmt.Errorf("merge: %w: report %d (shard %s) deselected %d specs, report %d %d: not the same suite", ErrShards, i+1, sh, r.Filtered, filteredFrom, out.Filtered)
			}
		}
		for _, c := range r.Cases {
			k := CaseKey(c.Backend, c.ID)
			if c.Backend != "" { // suite pseudo-cases may occur in every shard
				if prev, dup := owner[k]; dup {
					return Run{}, fmt.Errorf("merge: %w: testcase %s is in shard %s and shard %s: overlapping shards", ErrShards, k, prev, sh)
				}
				owner[k] = sh.String()
			} else {
				c.Name = fmt.Sprintf("%s [shard %s]", c.Name, sh)
				c.ID = c.Area + "/" + c.Name
			}
			out.Cases = append(out.Cases, c)
		}
		if r.Incomplete != "" {
			incomplete = append(incomplete, "shard "+sh.String()+": "+r.Incomplete)
		}
		if r.Meta.Started.Before(out.Meta.Started) {
			out.Meta.Started = r.Meta.Started
		}
		if r.Meta.Finished.After(out.Meta.Finished) {
			out.Meta.Finished = r.Meta.Finished
		}
		out.Meta.Shard.Merged = append(out.Meta.Shard.Merged, sh.String())
	}
	var missing []string
	for i := 1; i <= n; i++ {
		if have[i] == 0 {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return Run{}, fmt.Errorf("merge: %w: missing shard %s: give every shard's report directory", ErrShards, strings.Join(missing, ", "))
	}
	sort.Strings(out.Meta.Shard.Merged)
	out.Incomplete = strings.Join(incomplete, "; ")
	out.Meta.ReportDir = ""
	sortCases(out.Cases, out.Meta.Backends)
	out.Problems = problems(out.Cases)
	return out, nil
}

// sameSelection says how two shards' settings differ in what they select,
// "" when they do not.
func sameSelection(a, b Meta) string {
	switch {
	case strings.Join(a.Backends, ",") != strings.Join(b.Backends, ","):
		return fmt.Sprintf("backends %v rather than %v", b.Backends, a.Backends)
	case a.LabelFilter != b.LabelFilter:
		return fmt.Sprintf("label filter %q rather than %q", b.LabelFilter, a.LabelFilter)
	case a.Focus != b.Focus:
		return fmt.Sprintf("focus %q rather than %q", b.Focus, a.Focus)
	case a.Skip != b.Skip:
		return fmt.Sprintf("skip %q rather than %q", b.Skip, a.Skip)
	case a.Shard.Balance != b.Shard.Balance:
		return fmt.Sprintf("--shard-balance %q rather than %q", b.Shard.Balance, a.Shard.Balance)
	}
	return ""
}

// Select keeps the cases of r the shard owns and counts the others in
// the returned report's Meta.Shard.Elsewhere: the shard of a dry run
// (`kvmspec list --shard`), which runs no BeforeEach to skip them. A nil
// shard returns r as it is.
func (s *Shard) Select(r Run) Run {
	if s == nil {
		return r
	}
	sh := *s
	sh.Elsewhere = 0
	var kept []Case
	for _, c := range r.Cases {
		if c.Backend == "" || s.Owns(CaseKey(c.Backend, c.ID)) {
			kept = append(kept, c)
		} else {
			sh.Elsewhere++
		}
	}
	r.Cases = kept
	r.Meta.Shard = &sh
	return r
}
