package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// shardState is what the sharding tests read from report.json.
type shardState struct {
	Filtered int `json:"filtered"`
	Meta     struct {
		Shard *struct {
			Index, Total, Elsewhere int
			Balance                 string
			Merged                  []string
		} `json:"shard"`
	} `json:"meta"`
	Cases []struct {
		Backend, ID, State string
	} `json:"cases"`
}

func readShard(t *testing.T, dir string) (shardState, []string) {
	t.Helper()
	var s shardState
	readReportFile(t, dir, "report.json", json.Unmarshal, &s)
	var keys []string
	for _, c := range s.Cases {
		keys = append(keys, c.Backend+"/"+c.ID+"="+c.State)
	}
	slices.Sort(keys)
	return s, keys
}

var smokeEmu = []string{"--backend", "emu", "--label-filter", "smoke", "--seed", "31"}

// Three shards of the emu smoke specs, merged, are the unsharded run:
// the same testcases with the same states, the same counts in junit.xml
// and the same KTAP leaves; shards are disjoint; and merge refuses a
// missing or repeated shard with exit 2.
func TestShardsMergeToUnshardedRun(t *testing.T) {
	root := t.TempDir()
	dir := func(name string) string { return filepath.Join(root, name) }
	for _, balance := range []string{"", "balanced"} {
		t.Run("balance="+balance, func(t *testing.T) {
			if balance == "" {
				if r := kvmspec(t, nil, append([]string{"run", "--report-dir", dir("all")}, smokeEmu...)...); r.code != exitOK {
					t.Fatalf("unsharded run: exit %d\n%s", r.code, r.stderr)
				}
			}
			all, allKeys := readShard(t, dir("all"))
			var shardDirs []string
			var union []string
			for i := 1; i <= 3; i++ {
				d := dir(fmt.Sprintf("shard%s%d", balance, i))
				args := append([]string{"run", "--report-dir", d, "--shard", fmt.Sprintf("%d/3", i)}, smokeEmu...)
				if balance != "" {
					args = append(args, "--shard-balance", filepath.Join(dir("all"), "report.json"))
				}
				if r := kvmspec(t, nil, args...); r.code != exitOK {
					t.Fatalf("shard %d: exit %d\n%s", i, r.code, r.stderr)
				}
				s, keys := readShard(t, d)
				if s.Meta.Shard == nil || s.Meta.Shard.Index != i || s.Meta.Shard.Total != 3 || s.Meta.Shard.Elsewhere != len(allKeys)-len(keys) {
					t.Errorf("shard %d meta %+v with %d of %d cases", i, s.Meta.Shard, len(keys), len(allKeys))
				}
				if balance != "" && s.Meta.Shard.Balance == "" {
					t.Errorf("shard %d does not record its balance report", i)
				}
				union = append(union, keys...)
				shardDirs = append(shardDirs, d)
			}
			slices.Sort(union)
			if !slices.Equal(union, allKeys) {
				t.Fatalf("shards' testcases differ from the unsharded run's:\nshards %v\nall    %v", union, allKeys)
			}
			out := dir("merged" + balance)
			r := kvmspec(t, nil, append([]string{"merge", out}, shardDirs...)...)
			if r.code != exitOK {
				t.Fatalf("merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			m, mergedKeys := readShard(t, out)
			if !slices.Equal(mergedKeys, allKeys) || m.Filtered != all.Filtered || m.Meta.Shard == nil || len(m.Meta.Shard.Merged) != 3 {
				t.Errorf("merged: %d cases, filtered %d, shard %+v; unsharded %d cases, filtered %d", len(mergedKeys), m.Filtered, m.Meta.Shard, len(allKeys), all.Filtered)
			}
			ja, jm := readJUnit(t, dir("all")), readJUnit(t, out)
			if ja.Tests != jm.Tests || ja.Failures != jm.Failures || ja.Errors != jm.Errors || len(ja.Suites) != len(jm.Suites) {
				t.Errorf("junit.xml: merged tests=%d failures=%d errors=%d, unsharded tests=%d failures=%d errors=%d", jm.Tests, jm.Failures, jm.Errors, ja.Tests, ja.Failures, ja.Errors)
			}
			checkJUnitSchema(t, out)
			ktap, err := os.ReadFile(filepath.Join(out, "report.ktap"))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(regexp.MustCompile(`(?m)^ {8}(ok|not ok) `).FindAll(ktap, -1)); n != ja.Tests {
				t.Errorf("merged report.ktap has %d leaves, want %d", n, ja.Tests)
			}
			if !strings.Contains(r.stdout, "merged shards 1/3,2/3,3/3") {
				t.Errorf("merge summary:\n%s", r.stdout)
			}
		})
	}
	for _, tc := range []struct {
		name string
		dirs []string
		want string
	}{
		{"missing", []string{dir("shard1"), dir("shard2")}, "missing shard 3/3"},
		{"twice", []string{dir("shard1"), dir("shard2"), dir("shard2"), dir("shard3")}, "given twice"},
		{"mixed balance", []string{dir("shard1"), dir("shardbalanced2"), dir("shard3")}, "--shard-balance"},
		{"not a shard", []string{dir("all")}, "not a shard"},
		{"no report", []string{filepath.Join(root, "nothing")}, "no such file"},
	} {
		r := kvmspec(t, nil, append([]string{"merge", dir("refused")}, tc.dirs...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("merge %s: exit %d, stderr %q, want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
	if _, err := os.Stat(dir("refused")); err == nil {
		t.Error("a refused merge wrote its output directory")
	}
}

// Bad shard flags are usage errors found before anything runs, and
// `list --shard` shows the shard's part of the selection.
func TestShardFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--shard", "0/3"}, {"--shard", "4/3"}, {"--shard", "x"},
		{"--shard-balance", "x.json"},
		{"--shard", "1/2", "--shard-balance", filepath.Join(t.TempDir(), "missing.json")},
	} {
		r := kvmspec(t, nil, append([]string{"run", "--report-dir", t.TempDir()}, append(args, smokeEmu...)...)...)
		if r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("run %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	total := 0
	for i := 1; i <= 2; i++ {
		r := kvmspec(t, nil, append([]string{"list", "--shard", fmt.Sprintf("%d/2", i)}, smokeEmu[:4]...)...)
		m := regexp.MustCompile(`(\d+) specs selected`).FindStringSubmatch(r.stdout)
		if m == nil || !strings.Contains(r.stdout, fmt.Sprintf("shard %d/2:", i)) {
			t.Fatalf("list --shard %d/2: exit %d\n%s", i, r.code, r.stdout)
		}
		var n int
		fmt.Sscan(m[1], &n)
		total += n
	}
	r := kvmspec(t, nil, append([]string{"list"}, smokeEmu[:4]...)...)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d specs selected", total)) {
		t.Errorf("the two shards list %d specs; unsharded:\n%s", total, r.stdout)
	}
}
