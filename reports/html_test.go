package reports

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/kvmspec/kvmspec/harness/host"
)

// htmlRun is normalRun with what the page must render safely: a guest
// message that tries to inject markup, capabilities of two backends (map
// order), host facts and a measurement without a range.
func htmlRun() Run {
	run := normalRun()
	run.Meta.Host = []host.Property{{Name: "host.kernel", Value: "6.18.44"}, {Name: "host.note", Value: `"><img src=x onerror=alert(1)>`}}
	run.Meta.Caps = map[string][]CapLine{
		"kvm": {{Name: "dirty-ring", Supported: true}, {Name: "pmu", Detail: "kvm.enable_pmu=N"}},
		"emu": {{Name: "pmu", Detail: "not built yet"}, {Name: "dirty-ring", Supported: true}, {Name: "emu-only", Supported: true}},
		"zzz": {{Name: "pmu", Supported: true}},
	}
	for i, c := range run.Cases {
		if c.State == StateFailed {
			run.Cases[i].Message = `guest assert <script>alert("x")</script> & more`
			run.Cases[i].Failure = "at guest.go:12\n</pre><script>alert(2)</script>"
			run.Cases[i].Output = "</details><script>alert(3)</script>"
			break
		}
	}
	for i, c := range run.Cases {
		if len(c.Perf) > 0 {
			run.Cases[i].Perf = append(run.Cases[i].Perf, Measurement{Experiment: "pio", Name: "single <b>", Units: "ns", N: 1, Min: 5, Median: 5, Max: 5})
		}
	}
	return run
}

func renderHTML(t *testing.T, run Run, base *Run) string {
	t.Helper()
	var buf bytes.Buffer
	if err := run.WriteHTML(&buf, base); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// voidElements have no end tag in HTML.
var voidElements = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// checkWellFormed tokenizes the page and checks that every element is
// closed in order: the HTML parser would repair a broken page silently,
// and a browser might repair it differently.
func checkWellFormed(t *testing.T, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	var stack []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatalf("tokenizer: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken:
			if !voidElements[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("</%s> closes %v", tok.Data, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
}

// walk calls fn on every node of the parsed page.
func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func parseHTML(t *testing.T, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	return doc
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(x *html.Node) {
		if x.Type == html.TextNode {
			b.WriteString(x.Data)
		}
	})
	return b.String()
}

func TestWriteHTMLStructure(t *testing.T) {
	run := htmlRun()
	base := htmlRun()
	tests := []struct {
		name     string
		base     *Run
		ids      []string // section ids the page has, in this order
		noIDs    []string
		contains []string
	}{
		{"alone", nil, []string{"verdict", "summary", "failed", "failure-1", "skipped", "perf", "cases"}, []string{"comparison"},
			[]string{"kvmspec 0.1.0 report", "host facts (2)", "backend capabilities", "kvm.enable_pmu=N", "emu/memslot", "FAIL: 161 passed, 1 failed, 19 skipped", "exit round trip"}},
		{"with baseline", &base, []string{"verdict", "comparison", "summary", "failed", "failure-1", "skipped", "perf", "cases"}, nil,
			[]string{"comparison with the baseline", "no regressions", "unchanged cases", "×1"}},
	}
	for _, tt := range tests {
		page := renderHTML(t, run, tt.base)
		checkWellFormed(t, page)
		doc := parseHTML(t, page)
		var ids []string
		walk(doc, func(n *html.Node) {
			if n.Type != html.ElementNode {
				return
			}
			switch n.Data {
			case "script", "link", "iframe", "object", "embed", "img", "base":
				t.Errorf("%s: page has a <%s> element", tt.name, n.Data)
			}
			for _, a := range n.Attr {
				switch {
				case a.Key == "id":
					ids = append(ids, a.Val)
				case a.Key == "href" && strings.HasPrefix(a.Val, "#"):
					// A link within the page.
				case a.Key == "src" || a.Key == "href" || strings.HasPrefix(a.Key, "on"):
					t.Errorf("%s: <%s %s=%q>: the page must load and run nothing", tt.name, n.Data, a.Key, a.Val)
				}
			}
		})
		if strings.Join(ids, " ") != strings.Join(tt.ids, " ") {
			t.Errorf("%s: sections %q, want %q", tt.name, ids, tt.ids)
		}
		for _, id := range tt.noIDs {
			if strings.Contains(page, `id="`+id+`"`) {
				t.Errorf("%s: page has section %q", tt.name, id)
			}
		}
		text := textOf(doc)
		for _, want := range tt.contains {
			if !strings.Contains(text, want) {
				t.Errorf("%s: page text lacks %q", tt.name, want)
			}
		}
		for _, bad := range []string{"http://", "https://", "url("} {
			if strings.Contains(page, bad) {
				t.Errorf("%s: page refers to something outside itself: %q", tt.name, bad)
			}
		}
	}
}

func TestWriteHTMLEscapes(t *testing.T) {
	page := renderHTML(t, htmlRun(), nil)
	if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(page, "<img") || strings.Contains(page, "<b>") {
		t.Fatalf("untrusted text reached the page as markup")
	}
	// Escaped, the texts read as they were written.
	text := textOf(parseHTML(t, page))
	for _, want := range []string{
		`guest assert <script>alert("x")</script> & more`,
		"</pre><script>alert(2)</script>",
		"</details><script>alert(3)</script>",
		`"><img src=x onerror=alert(1)>`,
		"single <b>",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
}

func TestWriteHTMLDeterministic(t *testing.T) {
	base := htmlRun()
	base.Cases[0].State = StateFailed // a change, so the comparison has rows
	for _, b := range []*Run{nil, &base} {
		first := renderHTML(t, htmlRun(), b)
		for i := 0; i < 5; i++ { // map order differs between iterations
			if again := renderHTML(t, htmlRun(), b); again != first {
				t.Fatalf("rendering %d differs from the first", i+2)
			}
		}
	}
}

func TestWriteHTMLCapabilityOrder(t *testing.T) {
	page := renderHTML(t, htmlRun(), nil)
	// The run's backends in order, then the others sorted; capabilities
	// in order of first appearance.
	for _, seq := range [][]string{
		{"<th>capability</th><th>kvm</th><th>emu</th><th>zzz</th>"},
		{"<th>dirty-ring</th>", "<th>pmu</th>", "<th>emu-only</th>"},
	} {
		pos := 0
		for _, s := range seq {
			i := strings.Index(page[pos:], s)
			if i < 0 {
				t.Fatalf("capability table lacks, or has out of order, %q", s)
			}
			pos += i + len(s)
		}
	}
}

func TestWriteHTMLComparison(t *testing.T) {
	base := htmlRun()
	cur := htmlRun()
	var failedID string
	for i, c := range cur.Cases {
		if c.State == StatePassed && c.Backend == "kvm" {
			cur.Cases[i].State = StateFailed
			cur.Cases[i].Message = "now <broken>"
			failedID = caseName(c)
			break
		}
	}
	for _, run := range []*Run{&base, &cur} {
		for i, c := range run.Cases {
			for j, m := range c.Perf {
				if m.Name == "exit round trip" {
					scale := 1.0
					if run == &cur {
						scale = 100
					}
					x := around("ns", 8, m.Median*scale)
					x.Experiment, x.Name = m.Experiment, m.Name
					run.Cases[i].Perf[j] = x
				}
			}
		}
	}
	for i, c := range cur.Cases {
		for j, m := range c.Perf {
			if m.Name == "single <b>" {
				cur.Cases[i].Perf[j].Median *= 4 // one sample: no verdict
			}
		}
	}
	page := renderHTML(t, cur, &base)
	checkWellFormed(t, page)
	text := textOf(parseHTML(t, page))
	for _, want := range []string{"2 regressions", failedID, "now <broken>", "case changes", "perf changes", "worse", "×100", "p=", "n=8+8", "not enough data"} {
		if !strings.Contains(text, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	// The verdict and what changed lead the page, the regression linked
	// to its failure text.
	lead := page[:strings.Index(page, `id="comparison"`)]
	for _, want := range []string{`id="verdict"`, "2 regressions against the baseline", "what changed", "REGRESSION regression: " + failedID,
		`<a href="#failure-`, "WORSE: kvm/perf/pio exits exit round trip"} {
		if !strings.Contains(lead, want) {
			t.Errorf("the page's lead lacks %q", want)
		}
	}
	// The comparison comes first, before the summary.
	if strings.Index(page, `id="comparison"`) > strings.Index(page, `id="summary"`) {
		t.Error("the comparison is not at the top")
	}
	// The chart marks the baseline and colours by verdict.
	if !strings.Contains(page, `class="basemedian"`) || !strings.Contains(page, `<g class="fail">`) {
		t.Error("perf chart lacks the baseline marker or the verdict colour")
	}
}

func TestWriteHTMLEmptyRun(t *testing.T) {
	for _, base := range []*Run{nil, {}} {
		page := renderHTML(t, Run{}, base)
		checkWellFormed(t, page)
		if !strings.Contains(textOf(parseHTML(t, page)), "EMPTY") {
			t.Error("empty run page lacks its verdict")
		}
	}
}

func TestChartGeometry(t *testing.T) {
	tests := []struct {
		name          string
		m             Measurement
		ch            *PerfChange
		wantNil       bool
		median, base  string
		hasRange      bool
		rangeX, baseX string
	}{
		// x = 6 + v/hi × 288 on a 300-wide chart.
		{"range from zero", ranged("ns", 5, 50, 100, 124), nil, false, "238.3", "", true, "122.1", ""},
		{"single sample", ranged("ns", 1, 100, 100, 100), nil, false, "294.0", "", false, "", ""},
		{"baseline above", ranged("ns", 5, 50, 62, 62), &PerfChange{HasBase: true, Base: ranged("ns", 5, 62, 124, 124)}, false, "150.0", "294.0", true, "122.1", "150.0"},
		{"all zero", Measurement{}, nil, false, "6.0", "", false, "", ""},
		{"negative", ranged("", 5, -124, -62, 0), nil, false, "150.0", "", true, "6.0", ""},
		{"NaN", ranged("ns", 5, 1, math.NaN(), 3), nil, true, "", "", false, "", ""},
		{"infinite baseline max", ranged("ns", 5, 1, 2, 3), &PerfChange{HasBase: true, Base: ranged("ns", 5, 0, 1, math.Inf(1))}, false, "198.0", "102.0", true, "102.0", ""},
	}
	for _, tt := range tests {
		c := chart(tt.m, tt.ch, "same")
		if tt.wantNil {
			if c != nil {
				t.Errorf("%s: chart %+v, want none", tt.name, c)
			}
			continue
		}
		if c == nil {
			t.Errorf("%s: no chart", tt.name)
			continue
		}
		if c.Median != tt.median || c.BaseMedian != tt.base || c.HasRange != tt.hasRange || c.RangeX != tt.rangeX || c.BaseX != tt.baseX {
			t.Errorf("%s: median %s base %s range %v x %s basex %s; want %s %s %v %s %s", tt.name, c.Median, c.BaseMedian, c.HasRange, c.RangeX, c.BaseX,
				tt.median, tt.base, tt.hasRange, tt.rangeX, tt.baseX)
		}
	}
}

// A chart shows every sample (up to its cap), an axis labelled in units.
func TestChartSamplesAndAxis(t *testing.T) {
	c := chart(around("ns", 10, 1000), nil, "same")
	if len(c.Samples) != 10 || c.SamplesShown != "10 samples" || c.Lo != "0s" || c.Hi != "1.05µs" {
		t.Errorf("chart: %d samples %q, axis %s–%s", len(c.Samples), c.SamplesShown, c.Lo, c.Hi)
	}
	many := around("pages/s", 1000, 5)
	c = chart(many, nil, "same")
	if len(c.Samples) != maxChartSamples || c.SamplesShown != "200 of 1000 samples" || !strings.HasSuffix(c.Hi, "pages/s") {
		t.Errorf("chart of 1000 samples: %d dots %q, axis end %q", len(c.Samples), c.SamplesShown, c.Hi)
	}
}
