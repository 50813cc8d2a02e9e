package reports

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// KTAPFile is the KTAP report's name inside a report directory.
const KTAPFile = "report.ktap"

// ktapIndent is one nesting level: ktap.rst indents a subtest's lines by
// four spaces relative to its parent.
const ktapIndent = "    "

// maxKTAPDiagLines caps the diagnostic lines written for one failure: a
// kernel CI log shows the head, and report.json keeps the whole text.
const maxKTAPDiagLines = 40

// WriteKTAP writes the run as KTAP version 1 (the kernel's
// Documentation/dev-tools/ktap.rst), the format kselftest runners and
// kernel CI (KernelCI, LAVA parsers, kunit.py) read. The top-level tests
// are the backends (and "suite" for the suite-level pseudo-cases), each
// with one subtest per area, each holding one result line per testcase in
// the order of the other reports; the leaves are exactly junit.xml's
// testcases. Skips and known deviations are "ok … # SKIP reason" (a
// deviation's reason starts "known deviation"), failures "not ok" after
// "#" diagnostic lines carrying the failure text. A parent is "not ok" if
// any of its subtests is, "ok … # SKIP" if all of them were skipped.
func (r Run) WriteKTAP(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "KTAP version 1")
	fmt.Fprintf(bw, "# kvmspec %s seed %d backends %s\n", ktapText(r.Meta.Version), r.Meta.Seed, ktapText(strings.Join(r.Meta.Backends, ",")))
	if r.Incomplete != "" {
		fmt.Fprintf(bw, "# %s\n", ktapText(r.Incomplete))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(bw, "# problem: %s\n", ktapText(p))
	}
	for _, p := range r.Meta.Platforms {
		line := fmt.Sprintf("platform %s (%s): %s", p.Name, p.Arch, p.Status())
		if p.Meta != nil {
			line = fmt.Sprintf("platform %s (%s): backends %s, %s", p.Name, p.Arch, strings.Join(p.Backends, ","), hostLine(*p.Meta))
		}
		fmt.Fprintf(bw, "# %s\n", ktapText(line))
	}
	tops := ktapTree(r.Cases)
	fmt.Fprintf(bw, "1..%d\n", len(tops))
	for i, top := range tops {
		writeKTAPNode(bw, top, i+1, "")
	}
	for _, a := range r.ArchCounts() {
		fmt.Fprintf(bw, "# arch %s: %s\n", ktapText(a.Arch), a.Counts)
	}
	c := r.Counts()
	fmt.Fprintf(bw, "# totals: pass:%d fail:%d skip:%d deviation:%d\n", c.Passed, c.Failed, c.Skipped, c.Deviations)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ktap: %w", err)
	}
	return nil
}

// ktapNode is a test with subtests (a backend or an area) or a leaf case.
type ktapNode struct {
	name     string
	children []*ktapNode
	leaf     *Case
}

// ktapTree groups the cases by backend, then area, keeping the order of
// first appearance (the cases are sorted already).
func ktapTree(cases []Case) []*ktapNode {
	var tops []*ktapNode
	byName := map[string]*ktapNode{}
	for i := range cases {
		c := &cases[i]
		top := c.Backend
		if top == "" {
			top = SuiteArea
		}
		t, ok := byName[top]
		if !ok {
			t = &ktapNode{name: top}
			byName[top] = t
			tops = append(tops, t)
		}
		var area *ktapNode
		if n := len(t.children); n > 0 && t.children[n-1].name == c.Area {
			area = t.children[n-1]
		} else {
			for _, a := range t.children {
				if a.name == c.Area {
					area = a
				}
			}
		}
		if area == nil {
			area = &ktapNode{name: c.Area}
			t.children = append(t.children, area)
		}
		area.children = append(area.children, &ktapNode{name: c.Name, leaf: c})
	}
	return tops
}

// result says how a node ends: failed, skipped (all of it), and why.
func (n *ktapNode) result() (failed, skipped bool, reason string) {
	if n.leaf != nil {
		c := n.leaf
		switch {
		case c.State == StatePassed:
			return false, false, ""
		case c.State.Failed():
			return true, false, ""
		default:
			return false, true, c.Message
		}
	}
	all := len(n.children) > 0
	for _, ch := range n.children {
		f, s, _ := ch.result()
		failed = failed || f
		all = all && s
	}
	if all && !failed {
		return false, true, "every subtest skipped"
	}
	return failed, false, ""
}

func writeKTAPNode(w *bufio.Writer, n *ktapNode, num int, indent string) {
	if n.leaf == nil {
		in := indent + ktapIndent
		fmt.Fprintf(w, "%sKTAP version 1\n%s# Subtest: %s\n%s1..%d\n", in, in, ktapText(n.name), in, len(n.children))
		for i, ch := range n.children {
			writeKTAPNode(w, ch, i+1, in)
		}
	} else if n.leaf.State.Failed() {
		writeKTAPDiag(w, indent, n.leaf)
	}
	failed, skipped, reason := n.result()
	line := fmt.Sprintf("%s%s %d %s", indent, map[bool]string{true: "not ok", false: "ok"}[failed], num, ktapDescription(n.name))
	if skipped {
		line += " # SKIP"
		if reason = ktapText(reason); reason != "" {
			line += " " + reason
		}
	}
	fmt.Fprintln(w, line)
}

// writeKTAPDiag writes a failing case's state, location and failure text
// as diagnostic lines, before its result line as kselftest and KUnit do.
func writeKTAPDiag(w *bufio.Writer, indent string, c *Case) {
	head := string(c.State)
	if c.FailureLocation != "" {
		head += " at " + c.FailureLocation
	}
	fmt.Fprintf(w, "%s# %s: %s\n", indent, ktapText(c.ID), ktapText(head))
	lines := strings.Split(strings.TrimRight(clean(c.failureOrMessage()), "\n"), "\n")
	for i, l := range lines {
		if i == maxKTAPDiagLines {
			fmt.Fprintf(w, "%s# … %d more lines in report.json\n", indent, len(lines)-i)
			break
		}
		fmt.Fprintf(w, "%s# %s\n", indent, ktapLine(l))
	}
}

// ktapDescription makes a test name a valid description: ktap.rst allows
// any characters but "#" and newlines; a fullwidth "＃" keeps a name such
// as "#UD [cpl0]" readable.
func ktapDescription(s string) string {
	s = ktapText(s)
	if s == "" {
		return "(unnamed)"
	}
	return s
}

// ktapText is s on one line: newlines and control characters become
// spaces, and "#" becomes "＃" so that a name or reason cannot start a
// directive or a diagnostic of its own.
func ktapText(s string) string {
	s = strings.ReplaceAll(ktapLine(s), "#", "＃")
	return strings.Join(strings.Fields(s), " ")
}

// ktapLine keeps a diagnostic line on one line, without control
// characters (terminal escapes were removed by clean).
func ktapLine(s string) string {
	return strings.TrimRightFunc(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, clean(s)), unicode.IsSpace)
}
