package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kvmspec/kvmspec/suites"
)

// progressLog writes --progress-file: a line as each spec starts and one
// as it ends, each in one write(2), so that a reader outside the run (tail
// -f, a CI step, the kernel log through /dev/kmsg) always knows which spec
// is running. When a machine under test hangs, its last "start" line names
// the spec it hung in: nothing else of the run may come back.
type progressLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	err error // the first write error; later lines are dropped
}

// maxProgressLine keeps each line within one /dev/kmsg record (1 KiB
// with its prefix); longer spec names are cut with an ellipsis.
const maxProgressLine = 900

// openProgressFile opens path for appending (created if missing); a
// character device such as /dev/console or /dev/kmsg, or a FIFO, is
// opened as it is.
func openProgressFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// Set takes one progress report: a spec starting (Current set) or a spec
// ending (Ended set). The report before the suite (both empty) writes
// the number of specs selected.
func (l *progressLog) Set(p suites.Progress) {
	var line string
	switch {
	case p.Ended != "":
		line = fmt.Sprintf("%s [%d/%d] %s (%.3fs)", p.State, p.Done, p.Total, p.Ended, p.RunTime.Seconds())
	case p.Current != "":
		line = fmt.Sprintf("start [%d/%d] %s", p.Done+1, p.Total, p.Current)
	case p.Done == 0:
		line = fmt.Sprintf("selected %d specs", p.Total)
	default:
		return // a spec of another shard passed by
	}
	line = "kvmspec: " + l.now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + line
	line = strings.ReplaceAll(line, "\n", " ")
	if len(line) > maxProgressLine {
		cut := maxProgressLine - len("…")
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	line += "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if _, err := io.WriteString(l.w, line); err != nil {
		l.err = err
	}
}

// both calls f and g (either may be nil) with every progress report.
func both(f, g func(suites.Progress)) func(suites.Progress) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(p suites.Progress) { f(p); g(p) }
}
