package reports

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		i, n int
	}{{"1/1", 1, 1}, {"2/4", 2, 4}, {"4/4", 4, 4}} {
		s, err := ParseShard(tc.in)
		if err != nil || s.Index != tc.i || s.Total != tc.n || s.String() != tc.in {
			t.Errorf("ParseShard(%q) = %+v, %v", tc.in, s, err)
		}
	}
	for _, bad := range []string{"", "1", "0/3", "4/3", "-1/3", "1/0", "a/b", "1/3/5", " 1/3"} {
		if _, err := ParseShard(bad); err == nil || !strings.Contains(err.Error(), "bad --shard") {
			t.Errorf("ParseShard(%q) accepted (err %v)", bad, err)
		}
	}
}

func shardKeys(n int) []string {
	var keys []string
	for i := range n {
		keys = append(keys, CaseKey([]string{"kvm", "emu"}[i%2], fmt.Sprintf("area%d/spec %d", i%7, i)))
	}
	return keys
}

// Every testcase belongs to exactly one shard, for any shard count, and
// hash assignment spreads them roughly evenly.
func TestShardsPartition(t *testing.T) {
	keys := shardKeys(600)
	for n := 1; n <= 6; n++ {
		count := make([]int, n)
		for _, k := range keys {
			owners := 0
			for i := 1; i <= n; i++ {
				if (&Shard{Index: i, Total: n}).Owns(k) {
					owners++
					count[i-1]++
				}
			}
			if owners != 1 {
				t.Fatalf("n=%d: %s owned by %d shards", n, k, owners)
			}
		}
		for i, c := range count {
			if want := len(keys) / n; c < want*2/3 || c > want*4/3 {
				t.Errorf("n=%d: shard %d has %d of %d testcases", n, i+1, c, len(keys))
			}
		}
	}
	var nilShard *Shard
	if !nilShard.Owns("anything") {
		t.Error("no shard must own everything")
	}
}

// Balancing by a previous report's durations evens the shards' time, is
// deterministic, and still partitions testcases the report did not have.
func TestShardBalance(t *testing.T) {
	var prev Run
	for i, k := range shardKeys(40) {
		backend, id, _ := strings.Cut(k, "/")
		d := time.Duration(1+i*i%37) * time.Second
		prev.Cases = append(prev.Cases, Case{Backend: backend, ID: id, Duration: d})
	}
	const n = 3
	load := make([]time.Duration, n)
	for _, c := range prev.Cases {
		owners := 0
		for i := 1; i <= n; i++ {
			s := &Shard{Index: i, Total: n}
			s.BalanceBy(prev, "prev.json")
			if s.Owns(CaseKey(c.Backend, c.ID)) {
				owners++
				load[i-1] += c.Duration
			}
		}
		if owners != 1 {
			t.Fatalf("%s/%s owned by %d shards", c.Backend, c.ID, owners)
		}
	}
	lo, hi := slices.Min(load), slices.Max(load)
	if hi-lo > 37*time.Second {
		t.Errorf("balanced loads %v differ by more than the longest testcase", load)
	}
	for _, k := range []string{"emu/new/spec", "kvm/new/other"} {
		owners := 0
		for i := 1; i <= n; i++ {
			s := &Shard{Index: i, Total: n}
			s.BalanceBy(prev, "prev.json")
			if s.Owns(k) {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("new testcase %s owned by %d shards", k, owners)
		}
	}
}

// shardRun splits run into n shard reports as n sharded runs would write.
func shardRuns(run Run, n int) []Run {
	var out []Run
	for i := 1; i <= n; i++ {
		s := (&Shard{Index: i, Total: n}).Select(run)
		s.Meta.Started = run.Meta.Started.Add(time.Duration(i) * time.Second)
		s.Meta.Finished = run.Meta.Finished.Add(time.Duration(i) * time.Minute)
		out = append(out, s)
	}
	return out
}

func caseKeys(r Run) []string {
	var keys []string
	for _, c := range r.Cases {
		keys = append(keys, CaseKey(c.Backend, c.ID)+"="+string(c.State))
	}
	slices.Sort(keys)
	return keys
}

// Merging the shards gives back the unsharded run's testcases and counts.
func TestMergeShards(t *testing.T) {
	run := mixedRun()
	var suiteCases int
	for _, c := range run.Cases {
		if c.Backend == "" {
			suiteCases++
		}
	}
	run.Cases = slices.DeleteFunc(run.Cases, func(c Case) bool { return c.Backend == "" })
	for _, n := range []int{1, 2, 3, 5} {
		shards := shardRuns(run, n)
		// Any order of the directories on the command line.
		slices.Reverse(shards)
		m, err := Merge(shards)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !slices.Equal(caseKeys(m), caseKeys(run)) || m.Counts() != run.Counts() {
			t.Errorf("n=%d: merged counts %+v, run %+v", n, m.Counts(), run.Counts())
		}
		if m.Meta.Shard == nil || m.Meta.Shard.Index != 0 || len(m.Meta.Shard.Merged) != n || m.Meta.Shard.Merged[0] != fmt.Sprintf("1/%d", n) {
			t.Errorf("n=%d: merged meta %+v", n, m.Meta.Shard)
		}
		if !m.Meta.Started.Equal(run.Meta.Started.Add(time.Second)) || !m.Meta.Finished.Equal(run.Meta.Finished.Add(time.Duration(n)*time.Minute)) {
			t.Errorf("n=%d: merged span %v..%v", n, m.Meta.Started, m.Meta.Finished)
		}
		if len(m.Problems) != 0 {
			t.Errorf("n=%d: problems %v", n, m.Problems)
		}
	}
}

func TestMergeRefuses(t *testing.T) {
	run := mixedRun()
	three := func() []Run { return shardRuns(run, 3) }
	for _, tc := range []struct {
		name string
		runs func() []Run
		want string
	}{
		{"none", func() []Run { return nil }, "no reports"},
		{"missing", func() []Run { return three()[:2] }, "missing shard 3/3"},
		{"twice", func() []Run { s := three(); return append(s, s[1]) }, "shard 2/3 given twice"},
		{"not a shard", func() []Run { s := three(); s[1].Meta.Shard = nil; return s }, "report 2 is not a shard"},
		{"other total", func() []Run { s := three(); s[2].Meta.Shard.Total = 4; return s }, "of 3 shards"},
		{"overlap", func() []Run {
			s := three()
			s[0].Cases = append(s[0].Cases, s[1].Cases[0])
			return s
		}, "overlapping shards"},
		{"other filter", func() []Run { s := three(); s[2].Meta.LabelFilter = "debug"; return s }, "label filter"},
		{"other backends", func() []Run { s := three(); s[1].Meta.Backends = []string{"emu"}; return s }, "backends"},
		{"other filtered", func() []Run { s := three(); s[1].Filtered++; return s }, "not the same suite"},
	} {
		_, err := Merge(tc.runs())
		if !errors.Is(err, ErrShards) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A shard that did not finish makes the merge incomplete, and suite-level
// cases of several shards stay distinct.
func TestMergeIncompleteShard(t *testing.T) {
	run := mixedRun()
	shards := shardRuns(run, 2)
	shards[1] = IncompleteRun(shards[1].Meta, "killed")
	m, err := Merge(shards)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Incomplete, "shard 2/2: incomplete") || m.OK() || len(m.Problems) != 0 {
		t.Errorf("merged incomplete %q, OK %v, problems %v", m.Incomplete, m.OK(), m.Problems)
	}
}

// Specs another shard runs are not cases of this shard's report: they are
// counted in Meta.Shard.Elsewhere, not as skips or as deselected, and the
// key a spec is sharded by is the key of its case.
func TestFromGinkgoDropsOtherShards(t *testing.T) {
	mine := spec("emu", "smoke", nil, "pio", types.SpecStatePassed, "")
	other := spec("emu", "smoke", nil, "mmio", types.SpecStateSkipped, OutOfShardPrefix+"not shard 1/2")
	m := meta()
	m.Shard = &Shard{Index: 1, Total: 2}
	run := FromGinkgo(report(mine, other), m)
	if len(run.Cases) != 1 || run.Filtered != 0 || run.Meta.Shard.Elsewhere != 1 || m.Shard.Elsewhere != 0 {
		t.Fatalf("cases %d, filtered %d, elsewhere %d (caller's %d)", len(run.Cases), run.Filtered, run.Meta.Shard.Elsewhere, m.Shard.Elsewhere)
	}
	if got, want := SpecKey(mine), CaseKey(run.Cases[0].Backend, run.Cases[0].ID); got != want {
		t.Errorf("SpecKey %q, case key %q", got, want)
	}
}

// junit.xml read alone says it is a shard, or the merge of which shards.
func TestJUnitNamesShard(t *testing.T) {
	shards := shardRuns(mixedRun(), 2)
	m, err := Merge(shards)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		run  Run
		want string
	}{
		{shards[1], `<property name="kvmspec.shard" value="2/2">`},
		{m, `<property name="kvmspec.shards_merged" value="1/2,2/2">`},
	} {
		var b strings.Builder
		if err := tc.run.WriteJUnit(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("junit.xml lacks %s", tc.want)
		}
	}
}
