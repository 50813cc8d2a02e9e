package host

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KmsgRecord is one record of /dev/kmsg, as
// Documentation/ABI/testing/dev-kmsg describes it:
//
//	prio,seq,timestamp,flags[,more fields];message
//	 KEY=value
//
// Lines after the first that start with a space are continuation lines
// carrying key/value pairs (SUBSYSTEM=, DEVICE=).
type KmsgRecord struct {
	Priority    int      // syslog facility<<3 | level
	Seq         uint64   // sequence number; a gap means records were lost
	TimestampUS uint64   // microseconds since boot
	Flags       string   // "-", or "c" for a continued fragment
	Message     string   // with the kernel's \xNN escapes decoded
	Dict        []string // continuation lines ("KEY=value"), unescaped
}

// Level returns the syslog level (0 emergency … 7 debug).
func (r KmsgRecord) Level() int { return r.Priority & 7 }

// String formats the record the way dmesg does, "[  12.345678] message",
// because that is what people search for in bug reports.
func (r KmsgRecord) String() string {
	return fmt.Sprintf("[%5d.%06d] %s", r.TimestampUS/1e6, r.TimestampUS%1e6, r.Message)
}

// ParseKmsgRecord decodes one record. The trailing newline is optional, and
// header fields after the fourth are ignored, since the ABI reserves them
// for future use.
func ParseKmsgRecord(b []byte) (KmsgRecord, error) {
	var r KmsgRecord
	first, rest, _ := bytes.Cut(b, []byte{'\n'})
	header, msg, ok := bytes.Cut(first, []byte{';'})
	if !ok {
		return r, errors.New("kmsg record: no ';' ends the header")
	}
	fields := strings.Split(string(header), ",")
	if len(fields) < 4 {
		return r, fmt.Errorf("kmsg record: header %q has %d fields, want at least 4", header, len(fields))
	}
	prio, err := strconv.ParseUint(fields[0], 10, 31)
	if err != nil {
		return r, fmt.Errorf("kmsg record: priority %q: %w", fields[0], err)
	}
	if r.Seq, err = strconv.ParseUint(fields[1], 10, 64); err != nil {
		return r, fmt.Errorf("kmsg record: sequence %q: %w", fields[1], err)
	}
	if r.TimestampUS, err = strconv.ParseUint(fields[2], 10, 64); err != nil {
		return r, fmt.Errorf("kmsg record: timestamp %q: %w", fields[2], err)
	}
	r.Priority = int(prio)
	r.Flags = fields[3]
	r.Message = unescapeKmsg(msg)
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if line[0] != ' ' {
			return r, fmt.Errorf("kmsg record: line %q after the header does not start with a space", line)
		}
		r.Dict = append(r.Dict, unescapeKmsg(line[1:]))
	}
	return r, nil
}

// unescapeKmsg undoes the kernel's escaping of non-printable bytes (and of
// the backslash itself) as \xNN, and replaces invalid UTF-8 so that the text
// is safe in XML and JSON reports.
func unescapeKmsg(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// kmsgDecoder turns a byte stream into records. /dev/kmsg hands out one
// whole record per read, but a test pipe or a saved log may split or join
// them anywhere, so incomplete lines are carried over and a record is only
// finished when the next header line (or flush) shows it has no more
// continuation lines.
type kmsgDecoder struct {
	partial []byte // an incomplete last line
	record  []byte // the lines of the record being assembled
	emit    func(KmsgRecord)
}

func (d *kmsgDecoder) write(p []byte) {
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			return
		}
		d.line(d.partial[:i+1])
		d.partial = d.partial[i+1:]
	}
}

func (d *kmsgDecoder) line(l []byte) {
	if len(l) > 0 && l[0] == ' ' && len(d.record) > 0 {
		d.record = append(d.record, l...)
		return
	}
	d.finish()
	d.record = append(d.record[:0], l...)
}

func (d *kmsgDecoder) finish() {
	if len(bytes.TrimSpace(d.record)) == 0 {
		d.record = d.record[:0]
		return
	}
	r, err := ParseKmsgRecord(d.record)
	if err != nil {
		// Keep text we cannot parse: hiding a kernel message because its
		// header looked odd would defeat the watch.
		first, _, _ := bytes.Cut(d.record, []byte{'\n'})
		r = KmsgRecord{Message: strings.ToValidUTF8(string(first), "\uFFFD")}
	}
	d.record = d.record[:0]
	d.emit(r)
}

// flush finishes whatever is buffered, including a last line without '\n'.
func (d *kmsgDecoder) flush() {
	if len(d.partial) > 0 {
		d.line(d.partial)
		d.partial = d.partial[:0]
	}
	d.finish()
}
