package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kvmspec/kvmspec/suites"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// console is the run's standard output: Ginkgo's output, filtered, and on
// a terminal a status line ("[12/32] 1 failed  emu/smoke/pio out") kept
// below it. On a terminal Ginkgo's text is written in whole lines only, so
// that the status line never lands in the middle of one; its one-dot-per-
// spec line then appears when it ends, and the status line shows progress
// meanwhile.
type console struct {
	mu      sync.Mutex
	out     io.Writer
	tty     bool
	status  string // shown at the bottom on a terminal
	pending []byte // terminal only: the start of a line not yet ended
}

func newConsole(out io.Writer, tty bool) *console {
	return &console{out: out, tty: tty}
}

// Write writes Ginkgo's (filtered) output above the status line.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tty {
		return c.out.Write(p)
	}
	c.pending = append(c.pending, p...)
	i := bytes.LastIndexByte(c.pending, '\n')
	if i < 0 {
		return len(p), nil
	}
	c.clearStatus()
	_, err := c.out.Write(c.pending[:i+1])
	c.pending = append(c.pending[:0], c.pending[i+1:]...)
	c.drawStatus()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetProgress redraws the status line from a progress report.
func (c *console) SetProgress(p suites.Progress) {
	if !c.tty {
		return
	}
	s := fmt.Sprintf("[%d/%d] %d failed", p.Done, p.Total, p.Failed)
	if p.Current != "" {
		s += "  " + p.Current
	}
	const width = 120 // one line on any terminal wider than this
	if r := []rune(s); len(r) > width {
		s = string(r[:width-1]) + "…"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatus()
	c.status = s
	c.drawStatus()
}

// Done removes the status line for good and writes what is pending.
func (c *console) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearStatus()
	c.status = ""
	if len(c.pending) > 0 {
		c.out.Write(c.pending)
		c.pending = nil
	}
}

func (c *console) clearStatus() {
	if c.tty && c.status != "" {
		fmt.Fprint(c.out, "\r\x1b[K")
	}
}

func (c *console) drawStatus() {
	if c.tty && c.status != "" {
		fmt.Fprint(c.out, c.status)
	}
}

// Ginkgo's default reporter frames each spec it reports on between lines
// of 30 dashes; a passing spec's frame opens with "• [0.123 seconds]" and
// holds nothing but its report entries (perf tables, host health), which
// the report files keep. entryFilter drops those frames and passes the
// rest (failures, skips with reasons, progress reports, the suite's
// summary) through unchanged.
type entryFilter struct {
	out        io.Writer
	pendingSep bool // a separator not yet written: it may open a dropped frame
	dropping   bool
	partial    []byte
}

const ginkgoSeparator = "------------------------------"

var (
	passedFrame  = regexp.MustCompile(`^• \[[0-9.]+ seconds\]$`)
	progressDots = regexp.MustCompile(`^[S•P]+$`)
)

func (f *entryFilter) Write(p []byte) (int, error) {
	data := append(f.partial, p...)
	f.partial = nil
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			// A line still being written: Ginkgo's progress dots come
			// without a newline. Hold back only what could open a frame.
			if f.dropping || f.pendingSep || bytes.HasPrefix([]byte(ginkgoSeparator), data) {
				f.partial = append([]byte{}, data...)
			} else if _, err := f.out.Write(data); err != nil {
				return 0, err
			}
			break
		}
		if err := f.line(data[:i+1]); err != nil {
			return 0, err
		}
		data = data[i+1:]
	}
	return len(p), nil
}

func (f *entryFilter) line(l []byte) error {
	text := string(bytes.TrimRight(l, "\r\n"))
	switch {
	case text == ginkgoSeparator:
		f.dropping = false
		if f.pendingSep {
			// Two in a row: the first closed a frame that was written.
			if _, err := io.WriteString(f.out, ginkgoSeparator+"\n"); err != nil {
				return err
			}
		}
		f.pendingSep = true
		return nil
	case f.dropping:
		return nil
	case f.pendingSep && passedFrame.MatchString(text):
		f.pendingSep, f.dropping = false, true
		return nil
	case f.pendingSep && progressDots.MatchString(text):
		// Ginkgo's one-character-per-spec progress between frames needs
		// no frame around it once the passing frames are gone.
		f.pendingSep = false
	}
	if f.pendingSep {
		f.pendingSep = false
		if _, err := io.WriteString(f.out, ginkgoSeparator+"\n"); err != nil {
			return err
		}
	}
	_, err := f.out.Write(l)
	return err
}

// Close writes what is held back.
func (f *entryFilter) Close() error {
	if f.pendingSep {
		if _, err := io.WriteString(f.out, ginkgoSeparator+"\n"); err != nil {
			return err
		}
		f.pendingSep = false
	}
	if len(f.partial) > 0 && !f.dropping {
		_, err := f.out.Write(f.partial)
		f.partial = nil
		return err
	}
	return nil
}

// filtered runs f with file descriptor 1 (where Ginkgo's reporter
// writes) piped through an entryFilter into a console on the real
// standard output, which f may give progress to; it returns once the
// filter has written everything.
func filtered(f func(con *console)) error {
	saved, err := unix.Dup(1)
	if err != nil {
		return err
	}
	real := os.NewFile(uintptr(saved), "stdout")
	defer real.Close()
	con := newConsole(real, isTerminal(real))
	r, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	if err := unix.Dup2(int(pw.Fd()), 1); err != nil {
		r.Close()
		pw.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		filter := &entryFilter{out: con}
		io.Copy(filter, r)
		filter.Close()
		r.Close()
	}()
	f(con)
	unix.Dup2(saved, 1) // fd 1 is the terminal again; pw is the pipe's last writer
	pw.Close()
	<-done
	con.Done()
	return nil
}
