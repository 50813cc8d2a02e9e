package reports

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ktapTest is one test of a parsed KTAP document: its result line and,
// when it had subtests, their tests.
type ktapTest struct {
	ok        bool
	num       int
	name      string
	directive string // "SKIP reason", "" for none
	subtests  []*ktapTest
	hasBlock  bool // had its own version line and plan (a test with subtests)
}

var (
	ktapResultRE = regexp.MustCompile(`^(ok|not ok) ([0-9]+)(?: ([^#]*[^# ]))?(?: # (.*))?$`)
	ktapPlanRE   = regexp.MustCompile(`^1\.\.([0-9]+)$`)
)

// parseKTAP is a strict KTAP version 1 reader written from ktap.rst: a
// test starts with "KTAP version 1", has one plan "1..N" before its
// results, and N result lines "ok|not ok <n> [description] [# directive]"
// numbered from 1; a subtest is the same structure indented four more
// spaces, followed by its result line at the parent's indentation;
// "#" lines are diagnostics at any depth. Unknown lines are an error here
// (the spec tolerates them; our writer must not produce any).
func parseKTAP(doc string) (*ktapTest, error) {
	lines := strings.Split(strings.TrimSuffix(doc, "\n"), "\n")
	p := &ktapParser{lines: lines}
	root, err := p.test("")
	if err != nil {
		return nil, err
	}
	for ; p.pos < len(lines); p.pos++ {
		if !isKTAPDiag(lines[p.pos]) {
			return nil, fmt.Errorf("line %d: %q after the last result", p.pos+1, lines[p.pos])
		}
	}
	return root, nil
}

type ktapParser struct {
	lines []string
	pos   int
}

func isKTAPDiag(l string) bool { return strings.HasPrefix(strings.TrimLeft(l, " "), "#") }

// test reads a test block at indent, from its version line up to (not
// including) the first line of a shallower test.
func (p *ktapParser) test(indent string) (*ktapTest, error) {
	if p.pos >= len(p.lines) || p.lines[p.pos] != indent+"KTAP version 1" {
		return nil, fmt.Errorf("line %d: want %q", p.pos+1, indent+"KTAP version 1")
	}
	p.pos++
	t := &ktapTest{hasBlock: true}
	plan := -1
	var pendingSub *ktapTest
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		switch {
		case isKTAPDiag(l):
			if len(l)-len(strings.TrimLeft(l, " ")) < len(indent) {
				return t, p.finish(t, plan, pendingSub)
			}
			p.pos++
		case !strings.HasPrefix(l, indent) || (len(l) > len(indent) && l[len(indent)] == ' ' && !strings.HasPrefix(l, indent+ktapIndent)):
			if strings.HasPrefix(l, indent) {
				return nil, fmt.Errorf("line %d: bad indentation: %q", p.pos+1, l)
			}
			return t, p.finish(t, plan, pendingSub)
		case strings.HasPrefix(l, indent+ktapIndent):
			if plan < 0 {
				return nil, fmt.Errorf("line %d: subtest before the plan", p.pos+1)
			}
			if pendingSub != nil {
				return nil, fmt.Errorf("line %d: subtest without a result line", p.pos+1)
			}
			sub, err := p.test(indent + ktapIndent)
			if err != nil {
				return nil, err
			}
			pendingSub = sub
		default:
			rest := strings.TrimPrefix(l, indent)
			if m := ktapPlanRE.FindStringSubmatch(rest); m != nil {
				if plan >= 0 || len(t.subtests) > 0 {
					return nil, fmt.Errorf("line %d: second or late plan", p.pos+1)
				}
				plan, _ = strconv.Atoi(m[1])
				p.pos++
				continue
			}
			m := ktapResultRE.FindStringSubmatch(rest)
			if m == nil {
				return nil, fmt.Errorf("line %d: not a KTAP line: %q", p.pos+1, l)
			}
			if plan < 0 {
				return nil, fmt.Errorf("line %d: result before the plan", p.pos+1)
			}
			n, _ := strconv.Atoi(m[2])
			if n != len(t.subtests)+1 {
				return nil, fmt.Errorf("line %d: test number %d, want %d", p.pos+1, n, len(t.subtests)+1)
			}
			if m[4] != "" && !regexp.MustCompile(`^(SKIP|TODO|XFAIL|TIMEOUT|ERROR)\b`).MatchString(m[4]) {
				return nil, fmt.Errorf("line %d: unknown directive %q", p.pos+1, m[4])
			}
			r := &ktapTest{ok: m[1] == "ok", num: n, name: m[3], directive: m[4]}
			if pendingSub != nil {
				r.subtests, r.hasBlock = pendingSub.subtests, true
				pendingSub = nil
			}
			t.subtests = append(t.subtests, r)
			p.pos++
		}
	}
	return t, p.finish(t, plan, pendingSub)
}

func (p *ktapParser) finish(t *ktapTest, plan int, pendingSub *ktapTest) error {
	if pendingSub != nil {
		return fmt.Errorf("line %d: subtest without a result line", p.pos+1)
	}
	if plan != len(t.subtests) {
		return fmt.Errorf("line %d: plan 1..%d but %d results", p.pos+1, plan, len(t.subtests))
	}
	return nil
}

// leaves returns the tests without subtests, depth first.
func (t *ktapTest) leaves() []*ktapTest {
	if !t.hasBlock {
		return []*ktapTest{t}
	}
	var out []*ktapTest
	for _, s := range t.subtests {
		out = append(out, s.leaves()...)
	}
	return out
}

func writeKTAP(t *testing.T, r Run) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteKTAP(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// The validator itself must reject what the spec forbids, or the tests
// below prove nothing.
func TestKTAPValidatorRejects(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"no version", "1..1\nok 1 a\n"},
		{"no plan", "KTAP version 1\nok 1 a\n"},
		{"plan mismatch", "KTAP version 1\n1..2\nok 1 a\n"},
		{"bad number", "KTAP version 1\n1..2\nok 1 a\nok 3 b\n"},
		{"unknown line", "KTAP version 1\n1..1\nfoo\nok 1 a\n"},
		{"bad directive", "KTAP version 1\n1..1\nok 1 a # MAYBE\n"},
		{"subtest without result", "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 x\n"},
		{"nested plan mismatch", "KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 x\nok 1 a\n"},
		{"two-space indent", "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 x\nok 1 a\n"},
	} {
		if _, err := parseKTAP(tc.doc); err == nil {
			t.Errorf("%s: accepted:\n%s", tc.name, tc.doc)
		}
	}
	ok := "KTAP version 1\n# diag\n1..2\n    KTAP version 1\n    # Subtest: a\n    1..1\n    # why\n    not ok 1 x\nnot ok 1 a\nok 2 b # SKIP no pmu\n"
	root, err := parseKTAP(ok)
	if err != nil {
		t.Fatalf("valid document refused: %v", err)
	}
	if l := root.leaves(); len(l) != 2 || l[0].ok || l[1].directive != "SKIP no pmu" {
		t.Errorf("leaves %+v %+v", l[0], l[1])
	}
}

// report.ktap has junit.xml's testcases: the same count, the same skips
// and failures, and a valid structure.
func TestKTAPMatchesJUnit(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  Run
	}{
		{"mixed", mixedRun()},
		{"empty", Run{Meta: meta()}},
		{"incomplete", IncompleteRun(meta(), "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := writeKTAP(t, tc.run)
			root, err := parseKTAP(doc)
			if err != nil {
				t.Fatalf("invalid KTAP: %v\n%s", err, doc)
			}
			junit := decodeJUnit(t, tc.run)
			var tests, failed, skipped int
			for _, s := range junit.Suites {
				tests += s.Tests
				failed += s.Failures + s.Errors
				skipped += s.Skipped
			}
			leaves := root.leaves()
			var kfailed, kskipped int
			for _, l := range leaves {
				if !l.ok {
					kfailed++
				}
				if strings.HasPrefix(l.directive, "SKIP") {
					kskipped++
				}
			}
			if len(leaves) != tests || kfailed != failed || kskipped != skipped {
				t.Errorf("ktap leaves %d (not ok %d, skip %d), junit tests %d (failed %d, skipped %d)\n%s",
					len(leaves), kfailed, kskipped, tests, failed, skipped, doc)
			}
			if got := strings.Count(doc, "\nok ") + strings.Count(doc, "\nnot ok "); got != len(root.subtests) {
				t.Errorf("%d top-level result lines, plan says %d", got, len(root.subtests))
			}
			if !root.allOK() == tc.run.OK() && len(tc.run.Cases) > 0 {
				t.Errorf("top-level results say ok=%v, run OK %v", root.allOK(), tc.run.OK())
			}
		})
	}
}

func (t *ktapTest) allOK() bool {
	for _, s := range t.subtests {
		if !s.ok {
			return false
		}
	}
	return true
}

// Names and reasons with "#" and newlines stay one result line each; a
// deviation is a SKIP whose reason says so; a failure's text comes as
// diagnostics before its result.
func TestKTAPLines(t *testing.T) {
	r := Run{Meta: Meta{Version: "t", Backends: []string{"emu"}}, Cases: []Case{
		{Backend: "emu", Area: "exceptions", Name: "#UD [cpl0]", ID: "exceptions/#UD [cpl0]", State: StatePassed},
		{Backend: "emu", Area: "exceptions", Name: "two\nlines", ID: "exceptions/two lines", State: StateDeviation, Message: "known deviation: int3 # at cpl0"},
		{Backend: "emu", Area: "smoke", Name: "pio", ID: "smoke/pio", State: StateFailed, Message: "boom", Failure: "boom\nExpected 1 to equal 2\nat smoke.go:12", FailureLocation: "smoke.go:12"},
	}}
	doc := writeKTAP(t, r)
	if _, err := parseKTAP(doc); err != nil {
		t.Fatalf("invalid KTAP: %v\n%s", err, doc)
	}
	for _, want := range []string{
		"        ok 1 ＃UD [cpl0]\n",
		"        ok 2 two lines # SKIP known deviation: int3 ＃ at cpl0\n",
		"        # smoke/pio: failed at smoke.go:12\n        # boom\n        # Expected 1 to equal 2\n        # at smoke.go:12\n        not ok 1 pio\n",
		"    ok 1 exceptions\n",
		"    not ok 2 smoke\n",
		"not ok 1 emu\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("missing %q in\n%s", want, doc)
		}
	}
}

// The report directory gets report.ktap with the other files, and the
// "incomplete" marker while the run goes on.
func TestDirWritesKTAP(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir, meta())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := os.ReadFile(filepath.Join(dir, KTAPFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "not ok 1 [run incomplete]") {
		t.Errorf("report.ktap while running:\n%s", b)
	}
	run := mixedRun()
	if err := d.Write(run); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(dir, KTAPFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != writeKTAP(t, run) {
		t.Errorf("report.ktap is not the run's KTAP")
	}
}
