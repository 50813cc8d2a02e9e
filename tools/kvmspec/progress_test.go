package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kvmspec/kvmspec/suites"
)

func TestProgressLogLines(t *testing.T) {
	at := time.Date(2026, 12, 5, 16, 40, 1, 123e6, time.FixedZone("X", 3600))
	const ts = "kvmspec: 2026-12-05T15:40:01.123Z "
	long := "kvm-arm64/memslot/" + strings.Repeat("é", 600)
	cases := []struct {
		name string
		p    suites.Progress
		want string // "" for no line
	}{
		{"before the suite", suites.Progress{Total: 338}, ts + "selected 338 specs\n"},
		{"start", suites.Progress{Done: 4, Total: 338, Failed: 1, Current: "kvm-arm64/smoke/ucall"}, ts + "start [5/338] kvm-arm64/smoke/ucall\n"},
		{"end", suites.Progress{Done: 5, Total: 338, Ended: "kvm-arm64/smoke/ucall", State: "failed", RunTime: 1234567 * time.Microsecond},
			ts + "failed [5/338] kvm-arm64/smoke/ucall (1.235s)\n"},
		{"another shard's spec", suites.Progress{Done: 3, Total: 9}, ""},
		{"newline in a name", suites.Progress{Total: 2, Current: "emu/a\nb"}, ts + "start [1/2] emu/a b\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			l := &progressLog{w: &b, now: func() time.Time { return at }}
			l.Set(c.p)
			if b.String() != c.want {
				t.Errorf("got %q, want %q", b.String(), c.want)
			}
		})
	}
	t.Run("long name cut to one kmsg record", func(t *testing.T) {
		var b bytes.Buffer
		l := &progressLog{w: &b, now: func() time.Time { return at }}
		l.Set(suites.Progress{Total: 1, Current: long})
		line := b.String()
		if len(line) > maxProgressLine+1 || !utf8.ValidString(line) || !strings.HasSuffix(line, "…\n") {
			t.Errorf("%d bytes, valid UTF-8 %v: %q", len(line), utf8.ValidString(line), line)
		}
	})
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("gone")
}

// A progress file that stops taking writes (a full disk, a closed pipe)
// costs one failed write, not one per spec, and never the run.
func TestProgressLogWriteError(t *testing.T) {
	w := &failingWriter{}
	l := &progressLog{w: w, now: time.Now}
	for range 3 {
		l.Set(suites.Progress{Total: 3, Current: "emu/x"})
	}
	if w.n != 1 {
		t.Errorf("%d writes after the first error, want 1 in all", w.n)
	}
}
