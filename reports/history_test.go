package reports

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func historyRuns() []Run {
	mk := func(day int, breaks State, perf ...Measurement) Run {
		return Run{Meta: Meta{Version: "v", Seed: int64(day), Started: time.Date(2026, 12, day, 2, 17, 0, 0, time.UTC)},
			Cases: []Case{
				{Backend: "kvm", Area: "smoke", ID: "smoke/old", State: StateFailed, Message: "always broken"},
				{Backend: "kvm", Area: "smoke", ID: "smoke/breaks", State: breaks, Message: "broke"},
				{Backend: "kvm", Area: "perf", ID: "perf/p", State: StatePassed, Perf: perf},
			}}
	}
	return []Run{
		mk(1, StatePassed, around("ns", 6, 100)),
		mk(2, StateFailed), // no measurement this night
		mk(3, StatePassed, around("ns", 6, 110)),
		mk(4, StateFailed, around("ns", 6, 300)),
	}
}

func TestHistory(t *testing.T) {
	h := History(historyRuns(), CompareOptions{})
	if len(h.Failing) != 2 {
		t.Fatalf("failing %+v", h.Failing)
	}
	got := map[string]string{}
	for _, f := range h.Failing {
		got[f.ID] = f.since(h)
	}
	if got["smoke/old"] != "since at least #1 2026-12-01T02:17Z" || got["smoke/breaks"] != "new in #4 2026-12-04T02:17Z" {
		t.Errorf("failing since: %v", got)
	}
	if len(h.Trends) != 1 {
		t.Fatalf("trends %+v", h.Trends)
	}
	m := h.Trends[0].Medians
	if m[0] != 100 || !math.IsNaN(m[1]) || m[3] != 300 {
		t.Errorf("medians %v", m)
	}
	if h.Last == nil || h.Last.Regressions() != 2 {
		t.Errorf("newest against the one before: %+v", h.Last)
	}
	var buf bytes.Buffer
	h.Text(&buf)
	for _, want := range []string{"history of 4 runs", "kvm/smoke/breaks  new in #4", "100ns → - → 110ns → 300ns", "REGRESSIONS: 2"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestWriteHistoryHTML(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHistoryHTML(&buf, historyRuns(), CompareOptions{}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	checkWellFormed(t, page)
	text := textOf(parseHTML(t, page))
	for _, want := range []string{"failing now (2)", "since at least #1", "new in #4", "2 regressions", "300ns", "0s"} {
		if !strings.Contains(text, want) {
			t.Errorf("history page lacks %q", want)
		}
	}
	if strings.Index(page, `id="verdict"`) > strings.Index(page, "runs, oldest first") {
		t.Error("what fails now does not lead the page")
	}
	// One run, and none: no panic, a page.
	for _, runs := range [][]Run{historyRuns()[:1], nil} {
		if err := WriteHistoryHTML(&bytes.Buffer{}, runs, CompareOptions{}); err != nil {
			t.Error(err)
		}
		History(runs, CompareOptions{}).Text(&bytes.Buffer{})
	}
}
