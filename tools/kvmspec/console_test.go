package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/suites"
)

const sep = ginkgoSeparator + "\n"

// ginkgoOutput is a succinct Ginkgo stream: dots, a passing frame with
// report entries, a failing frame, a progress report frame, the end.
var ginkgoOutput = "[1] kvmspec - 3/9 specs SSS\n" +
	sep + "• [0.209 seconds]\nemu perf measures [backend:emu]\n/x.go:1\n\n  Report Entries >>\n    table\n    " + strings.Repeat("-", 30) + "\n  << Report Entries\n" +
	sep + "•SS\n" +
	sep + "• [FAILED] [0.009 seconds]\nemu smoke [It] breaks\n  [FAILED] Expected 1\n" +
	sep + "• [0.001 seconds]\nemu smoke passes with an entry\n" +
	sep + "Progress Report for Ginkgo Process #1\n  emu smoke spins\n" +
	sep + "SS SUCCESS! 1s\n"

const wantFiltered = "[1] kvmspec - 3/9 specs SSS\n" +
	"•SS\n" +
	sep + "• [FAILED] [0.009 seconds]\nemu smoke [It] breaks\n  [FAILED] Expected 1\n" +
	sep + "Progress Report for Ginkgo Process #1\n  emu smoke spins\n" +
	sep + "SS SUCCESS! 1s\n"

func TestEntryFilter(t *testing.T) {
	// Whole, and byte by byte as a pipe may deliver it.
	for _, chunk := range []int{len(ginkgoOutput), 1, 7} {
		var out bytes.Buffer
		f := &entryFilter{out: &out}
		for s := ginkgoOutput; len(s) > 0; {
			n := min(chunk, len(s))
			f.Write([]byte(s[:n]))
			s = s[n:]
		}
		f.Close()
		if out.String() != wantFiltered {
			t.Errorf("chunks of %d:\n%s\nwant:\n%s", chunk, out.String(), wantFiltered)
		}
	}
}

func TestConsoleStatusLine(t *testing.T) {
	var out bytes.Buffer
	c := newConsole(&out, true)
	c.SetProgress(suites.Progress{Done: 3, Total: 32, Failed: 1, Current: "emu/smoke/pio out [cpl3]"})
	c.Write([]byte("SS••")) // Ginkgo's dots: held until their line ends
	c.Write([]byte("S\na failure\nhalf"))
	c.Done()
	got := out.String()
	status := "[3/32] 1 failed  emu/smoke/pio out [cpl3]"
	want := status + "\r\x1b[K" + "SS••S\na failure\n" + status + "\r\x1b[K" + "half"
	if got != want {
		t.Errorf("terminal output %q, want %q", got, want)
	}
	// Not a terminal: no status line, no escapes.
	out.Reset()
	c = newConsole(&out, false)
	c.SetProgress(suites.Progress{Done: 1, Total: 2})
	c.Write([]byte("x\n"))
	c.Done()
	if out.String() != "x\n" {
		t.Errorf("pipe output %q", out.String())
	}
}
