package a64_test

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGNUAs assembles every generated form with GNU as for AArch64 (one
// source file, one instruction per form, branch targets written as ".+rel")
// and requires GNU's word to equal ours. This is an oracle independent of
// arm64asm, and the only whole-word check of HVC and SMC.
func TestGNUAs(t *testing.T) {
	as, err := exec.LookPath("aarch64-linux-gnu-as")
	if err != nil {
		t.Skipf("aarch64-linux-gnu-as is not on PATH (%v); apt-get install binutils-aarch64-linux-gnu to cross-check encodings", err)
	}
	var cases []tc
	for _, c := range allCases() {
		if c.gas != "" {
			cases = append(cases, c)
		}
	}
	ours := make([]uint32, len(cases))
	var src strings.Builder
	src.WriteString(".text\n.arch_extension lse\n") // CAS*
	for i, c := range cases {
		w, _, err := build(c, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ours[i] = w
		fmt.Fprintf(&src, "\t%s\n", strings.ReplaceAll(c.gas, "@", fmt.Sprintf(".%+d", c.rel)))
	}
	dir := t.TempDir()
	in, obj := filepath.Join(dir, "forms.s"), filepath.Join(dir, "forms.o")
	if err := os.WriteFile(in, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(as, "-o", obj, in).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", as, err, firstLines(string(out), 30))
	}
	f, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text, err := f.Section(".text").Data()
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != 4*len(cases) {
		t.Fatalf("GNU as emitted %d bytes for %d forms", len(text), len(cases))
	}
	bad := 0
	for i, c := range cases {
		if gnu := binary.LittleEndian.Uint32(text[4*i:]); gnu != ours[i] {
			bad++
			if bad <= 40 {
				t.Errorf("%s: %q: ours %08x, GNU as %08x", c.name, c.gas, ours[i], gnu)
			}
		}
	}
	t.Logf("%d forms compared with GNU as, %d differ", len(cases), bad)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
