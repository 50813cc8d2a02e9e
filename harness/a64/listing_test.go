package a64_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// TestListingAndData checks data directives, label addresses, listing
// attribution and SourceAt.
func TestListingAndData(t *testing.T) {
	a := a64.New(0x1000)
	target := a.NewLabel()
	lineB := here() + 1
	a.B(target)
	a.Long(0xdeadbeef)
	a.Align(16) // two NOPs: PC 0x1008 -> 0x1010
	a.Bind(target)
	a.QuadLabel(target)
	a.Space(3)
	a.Align(8) // five zero bytes: the PC is not word aligned
	code, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 0x20 {
		t.Fatalf("program is %d bytes, want 32", len(code))
	}
	if got := binary.LittleEndian.Uint64(code[0x10:]); got != 0x1010 {
		t.Errorf("QuadLabel = %#x, want 0x1010", got)
	}
	if addr, ok := a.Addr(target); !ok || addr != 0x1010 {
		t.Errorf("Addr = %#x, %v", addr, ok)
	}
	for _, off := range []int{0x8, 0xc} {
		if w := binary.LittleEndian.Uint32(code[off:]); w != 0xD503201F {
			t.Errorf("padding at %#x is %08x, want NOP", off, w)
		}
	}
	lines, err := a.Listing()
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, l := range lines {
		texts = append(texts, l.Text)
	}
	want := []string{"b 0x1010", ".long 0xdeadbeef", ".balign 16", ".quad 0x1010", ".space 3", ".balign 8"}
	if fmt.Sprint(texts) != fmt.Sprint(want) {
		t.Errorf("listing %q, want %q", texts, want)
	}
	if s := lines[0].String(); !strings.HasPrefix(s, "0x1000  ") || !strings.HasSuffix(s, fmt.Sprintf("b 0x1010  ; listing_test.go:%d", lineB)) {
		t.Errorf("line 0 = %q", s)
	}
	if file, line, ok := a.SourceAt(0x1002); !ok || !strings.HasSuffix(file, "listing_test.go") || line != lineB {
		t.Errorf("SourceAt(0x1002) = %s:%d %v", file, line, ok)
	}
	if _, _, ok := a.SourceAt(0x1020); ok {
		t.Errorf("SourceAt past the end succeeds")
	}
}

// TestSkipCallerPackage: hiding a package that is not on the stack changes
// nothing, and hiding the calling (test) package moves attribution off its
// frames, as a guest runtime emitting for its caller needs.
func TestSkipCallerPackage(t *testing.T) {
	a := a64.New(0)
	a.SkipCallerPackage("example.com/not/on/stack")
	a.Nop()
	if _, line, ok := a.SourceAt(0); !ok || line == 0 {
		t.Errorf("SourceAt with an unrelated package hidden: %d %v", line, ok)
	}
	a.SkipCallerPackage("github.com/kvmspec/kvmspec/harness/a64_test")
	a.Nop()
	if file, _, ok := a.SourceAt(4); ok && strings.HasSuffix(file, "listing_test.go") {
		t.Errorf("SourceAt names the hidden package's file %s", file)
	}
}

// TestCasText names the compare-and-swap words arm64asm cannot decode,
// and leaves the reserved CASP encodings (an odd register of a pair) as
// .inst, as GNU as's disassembler does.
func TestCasText(t *testing.T) {
	for _, c := range []struct {
		w    uint32
		want string
	}{
		{0x08a17c62, "casb w1, w2, [x3]"},
		{0x48e1ffe2, "casalh w1, w2, [sp]"},
		{0x48207c82, "casp x0, x1, x2, x3, [x4]"},
		{0x087effe2, "caspal w30, wzr, w2, w3, [sp]"},
		{0x4822fc9e, "caspl x2, x3, x30, xzr, [x4]"},
		{0x48217c82, ".inst 0x48217c82"}, // Rs odd
		{0x48207c83, ".inst 0x48207c83"}, // Rt odd
		{0x48207882, ".inst 0x48207882"}, // Rt2 not 31
	} {
		if got := a64.Text(c.w, 0); got != c.want {
			t.Errorf("Text(%08x) = %q, want %q", c.w, got, c.want)
		}
	}
}
