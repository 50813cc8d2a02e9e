package host

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits of what one Health keeps. A spec that makes the kernel warn in a
// loop must still give a report of readable size.
const (
	maxHealthLines = 200
	contextLines   = 10       // lines kept after a WARNING/BUG/Oops
	maxKmsgBytes   = 16 << 20 // read at most this much log per watch
	maxKmsgReads   = 1 << 16  // and at most this many reads
)

// TaintReader reads the kernel taint mask.
type TaintReader interface {
	ReadTaint() (uint64, error)
}

// KmsgOpener opens the kernel log positioned after its newest record.
// Reads on the returned reader must not block: when no record is waiting
// they return an error wrapping unix.EAGAIN, or io.EOF. An error wrapping
// unix.EPIPE means records were overwritten before they were read; the
// reader must go on with the oldest record still available, as /dev/kmsg
// does.
type KmsgOpener interface {
	OpenKmsg() (io.ReadCloser, error)
}

// Sources are where a Watch looks. Tests substitute their own.
type Sources struct {
	Taint TaintReader // nil: taint not checked
	Kmsg  KmsgOpener  // nil: kernel log not checked
}

// SystemSources returns the live kernel's sources.
func SystemSources() Sources {
	return Sources{Taint: TaintFile("/proc/sys/kernel/tainted"), Kmsg: KmsgDevice("/dev/kmsg")}
}

// TaintFile is a file holding the taint mask in decimal, like
// /proc/sys/kernel/tainted.
type TaintFile string

// ReadTaint implements TaintReader.
func (p TaintFile) ReadTaint() (uint64, error) {
	b, err := os.ReadFile(string(p))
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

// KmsgDevice is the path of a /dev/kmsg character device.
type KmsgDevice string

// OpenKmsg implements KmsgOpener. It uses the raw descriptor rather than an
// *os.File: the runtime poller would turn EAGAIN into a blocking wait, and
// the watch must return at once when the log has nothing new.
func (p KmsgDevice) OpenKmsg() (io.ReadCloser, error) {
	fd, err := unix.Open(string(p), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: string(p), Err: err}
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "seek", Path: string(p), Err: err}
	}
	return &fdReader{fd: fd}, nil
}

// fdReader reads a non-blocking descriptor, passing errno values through
// so that callers can tell EAGAIN and EPIPE apart.
type fdReader struct{ fd int }

// Read reads once, retrying only EINTR; a zero-byte read is io.EOF.
func (r *fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		if err == nil && n == 0 {
			return 0, io.EOF
		}
		return n, err
	}
}

// Close closes the descriptor.
func (r *fdReader) Close() error { return unix.Close(r.fd) }

// Watch observes the host kernel between StartWatch and Stop. A Watch is
// used by one goroutine.
type Watch struct {
	taint       TaintReader
	before      uint64
	kmsg        io.ReadCloser
	unavailable []string
	stopped     bool
	// seen, when set, is called with every record read; tests use it to
	// find their marker among lines the health check does not keep.
	seen func(KmsgRecord)
}

// StartWatch starts watching the live kernel.
func StartWatch() *Watch { return SystemSources().StartWatch() }

// StartWatch records the current taint mask and opens the kernel log at its
// end, so that Stop sees only what happened in between. It never fails: a
// source that cannot be used is reported by Health.Unavailable.
func (s Sources) StartWatch() *Watch {
	w := &Watch{taint: s.Taint}
	if s.Taint == nil {
		w.unavailable = append(w.unavailable, "taint: no source")
	} else if v, err := s.Taint.ReadTaint(); err != nil {
		w.unavailable = append(w.unavailable, "taint: "+describeErr(err))
		w.taint = nil
	} else {
		w.before = v
	}
	if s.Kmsg == nil {
		w.unavailable = append(w.unavailable, "kmsg: no source")
	} else if r, err := s.Kmsg.OpenKmsg(); err != nil {
		w.unavailable = append(w.unavailable, "kmsg: "+describeErr(err))
	} else {
		w.kmsg = r
	}
	return w
}

// describeErr shortens the common reasons to the words a person expects.
func describeErr(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	}
	return err.Error()
}

// Stop reads what the kernel logged since StartWatch, reads the taint mask
// again and closes the log. Calling Stop twice returns an empty Health the
// second time.
func (w *Watch) Stop() Health {
	h := Health{TaintBefore: w.before, TaintAfter: w.before}
	if w.stopped {
		h.Unavailable = "watch already stopped"
		return h
	}
	w.stopped = true
	unavailable := w.unavailable
	if w.kmsg != nil {
		if err := w.readLog(&h); err != nil {
			unavailable = append(unavailable, "kmsg: "+describeErr(err))
		}
		w.kmsg.Close()
	}
	if w.taint != nil {
		if v, err := w.taint.ReadTaint(); err != nil {
			unavailable = append(unavailable, "taint: "+describeErr(err))
		} else {
			h.TaintAfter = v
		}
	}
	h.NewTaint = h.TaintAfter &^ h.TaintBefore
	h.TaintFlags = TaintString(h.TaintAfter)
	h.Unavailable = strings.Join(unavailable, "; ")
	return h
}

func (w *Watch) readLog(h *Health) error {
	var sc logScan
	dec := kmsgDecoder{emit: func(r KmsgRecord) {
		if w.seen != nil {
			w.seen(r)
		}
		sc.add(r)
	}}
	// The kernel refuses reads into a buffer smaller than the record
	// (EINVAL); records are at most about 8 KiB with their dictionary.
	buf := make([]byte, 16<<10)
	total := 0
	var readErr error
	done := false
	for reads := 0; !done; reads++ {
		if total >= maxKmsgBytes || reads >= maxKmsgReads {
			readErr = fmt.Errorf("more than %d bytes or %d records logged; the rest was not read", maxKmsgBytes, maxKmsgReads)
			break
		}
		n, err := w.kmsg.Read(buf)
		total += n
		dec.write(buf[:n])
		switch {
		case err == nil && n > 0:
		case errors.Is(err, unix.EPIPE):
			// Our position was overwritten; the next read resumes at
			// the oldest record left. Say so: a lost WARNING is possible.
			h.Overwritten++
		case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, io.EOF):
			done = true // nothing more is waiting
		default:
			readErr = err
			done = true
		}
	}
	dec.flush()
	h.Lines, h.DroppedLines, h.KernelErrors, h.Records = sc.lines, sc.dropped, sc.errors, sc.records
	return readErr
}

// Failing patterns: a kernel that prints one of these found a bug.
var failPatterns = []string{"WARNING:", "BUG:", "kernel BUG", "Oops", "general protection"}

// Notable patterns: kept for whoever debugs, but not a failure by
// themselves (a hung task or an RCU stall may be load on a shared host).
var notePatterns = []string{"Call Trace:", "INFO: task ", "detected stall"}

// logScan keeps the lines that matter and a few after each failure.
type logScan struct {
	lines   []string
	dropped int
	errors  int
	records int
	context int // lines still to keep after the last failing line
}

func (s *logScan) add(r KmsgRecord) {
	s.records++
	keep := false
	switch {
	case containsAny(r.Message, failPatterns):
		s.errors++
		s.context = contextLines
		keep = true
	case containsAny(r.Message, notePatterns):
		keep = true
		if s.context > 0 {
			s.context--
		}
	case s.context > 0:
		s.context--
		keep = true
	}
	if !keep {
		return
	}
	if len(s.lines) >= maxHealthLines {
		s.dropped++
		return
	}
	s.lines = append(s.lines, r.String())
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Health is what the kernel did while a Watch ran.
type Health struct {
	TaintBefore uint64 `json:"taint_before"` // at StartWatch
	TaintAfter  uint64 `json:"taint_after"`  // at Stop
	// NewTaint holds the bits set after but not before.
	NewTaint uint64 `json:"new_taint"`
	// TaintFlags are the letters of TaintAfter, e.g. "W".
	TaintFlags string `json:"taint_flags,omitempty"`
	// Lines are the kernel log lines that matter (WARNING, BUG, Oops,
	// general protection, Call Trace, hung tasks, RCU stalls) with the
	// lines that follow a failure, at most 200.
	Lines []string `json:"lines,omitempty"`
	// DroppedLines counts lines past the cap that were not kept.
	DroppedLines int `json:"dropped_lines,omitempty"`
	// KernelErrors counts WARNING/BUG/Oops records, kept or not.
	KernelErrors int `json:"kernel_errors,omitempty"`
	// Records counts every log record read.
	Records int `json:"records,omitempty"`
	// Overwritten counts the times the log wrapped past the reader, so
	// records were lost and a failure may have gone unseen.
	Overwritten int `json:"overwritten,omitempty"`
	// Unavailable says why (part of) the check could not be done, e.g.
	// "kmsg: permission denied". Empty when everything was checked.
	Unavailable string `json:"unavailable,omitempty"`
}

// Failed reports whether the kernel was hurt: a new taint bit, or a
// WARNING/BUG/Oops in its log.
func (h Health) Failed() bool { return h.NewTaint != 0 || h.KernelErrors > 0 }

// String summarises the health on one line, followed by the kept log lines.
func (h Health) String() string {
	var b strings.Builder
	switch {
	case h.NewTaint != 0:
		fmt.Fprintf(&b, "host kernel newly tainted %s (%s)", TaintString(h.NewTaint), describeTaint(h.NewTaint))
	case h.KernelErrors > 0:
		b.WriteString("host kernel reported errors")
	default:
		b.WriteString("host kernel ok")
	}
	fmt.Fprintf(&b, "; taint %d→%d", h.TaintBefore, h.TaintAfter)
	if h.TaintFlags != "" {
		fmt.Fprintf(&b, " (%s)", h.TaintFlags)
	}
	if h.KernelErrors > 0 {
		fmt.Fprintf(&b, "; %d WARNING/BUG/Oops records", h.KernelErrors)
	}
	if h.Overwritten > 0 {
		fmt.Fprintf(&b, "; log overran the reader %d times, records lost", h.Overwritten)
	}
	if h.Unavailable != "" {
		fmt.Fprintf(&b, "; not checked: %s", h.Unavailable)
	}
	for _, l := range h.Lines {
		b.WriteString("\n  ")
		b.WriteString(l)
	}
	if h.DroppedLines > 0 {
		fmt.Fprintf(&b, "\n  … %d more lines not kept", h.DroppedLines)
	}
	return b.String()
}
