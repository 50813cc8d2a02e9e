package emu

import "testing"

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Options
		err  bool
	}{
		{"", Options{}, false},
		{"out-rip=past", Options{OutRIP: OutRIPPast}, false},
		{"time=instructions, out-rip=at-insn", Options{Time: TimeInstructions}, false},
		{"out-rip=past,time=instructions,", Options{OutRIP: OutRIPPast, Time: TimeInstructions}, false},
		{"out-rip", Options{}, true},
		{"out-rip=vmx", Options{}, true},
		{"time=later", Options{}, true},
		{"tsc=1", Options{}, true},
		{"decode-cache=8M", Options{DecodeCacheBytes: 8 << 20}, false},
		{"decode-cache=65536,time=instructions", Options{DecodeCacheBytes: 64 << 10, Time: TimeInstructions}, false},
		{"decode-cache=1G", Options{DecodeCacheBytes: 1 << 30}, false},
		{"decode-cache=16K", Options{}, true},
		{"decode-cache=17G", Options{}, true},
		{"decode-cache=99999999999999999999", Options{}, true},
		{"decode-cache=-1M", Options{}, true},
		{"decode-cache=M", Options{}, true},
		{"decode-cache=lots", Options{}, true},
	} {
		got, err := ParseOptions(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v (error: %v)", tc.in, got, err, tc.want, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		// String gives back what ParseOptions reads.
		if back, err := ParseOptions(got.String()); err != nil || back != got {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
}
