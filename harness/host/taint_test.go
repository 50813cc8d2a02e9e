package host

import (
	"strings"
	"testing"
)

func TestTaintString(t *testing.T) {
	tests := []struct {
		mask uint64
		want string
	}{
		{0, ""},
		{1 << 9, "W"},
		{1, "P"},
		{1<<9 | 1<<7, "DW"}, // bit order, as the kernel prints
		{1<<20 - 1, "PFSRMBUDAWCIOELKXTNJ"},
		{1 << 25, "[25]"},
		{1<<63 | 1<<14, "L[63]"},
	}
	for _, tt := range tests {
		if got := TaintString(tt.mask); got != tt.want {
			t.Errorf("TaintString(%#x) = %q, want %q", tt.mask, got, tt.want)
		}
	}
}

func TestDescribeTaint(t *testing.T) {
	got := describeTaint(1<<9 | 1<<30)
	for _, want := range []string{"W: kernel issued a warning", "bit 30: unknown"} {
		if !strings.Contains(got, want) {
			t.Errorf("describeTaint = %q, missing %q", got, want)
		}
	}
}
