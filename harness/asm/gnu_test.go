package asm_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// TestGNUAs cross-checks the encoder against GNU binutils. Every generated
// form with a GNU spelling is assembled by GNU as from Intel-syntax source,
// all in one run, with a symbol g<i> per form. Where GNU's bytes equal ours
// the form agrees outright. Where they differ (legitimately, e.g. GNU as
// relaxes forward branches to rel8 where we use rel32),
//   - x86asm must decode both to the same op and operands, and
//   - one `objdump -d` run over both encodings of all such forms must print
//     the same text for each pair, an oracle independent of x86asm.
//
// Branch and RIP-relative targets are compared relative to the form's own
// start, since GNU's layout and ours differ.
func TestGNUAs(t *testing.T) {
	for _, tool := range []string{"as", "objdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("GNU %s is not on PATH (%v); install binutils to cross-check encodings", tool, err)
		}
	}
	var cases []tc
	for _, c := range allCases() {
		if c.gas != "" {
			cases = append(cases, c)
		}
	}

	// Ours: all forms in one program, as GNU as gets them in one file.
	a := asm.New(0)
	starts := make([]int, len(cases)+1)
	for i := range cases {
		starts[i] = a.Len()
		emitCase(a, &cases[i])
	}
	starts[len(cases)] = a.Len()
	ours, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}

	var src strings.Builder
	src.WriteString(".intel_syntax noprefix\n.text\n")
	for i, c := range cases {
		line := c.gas
		if strings.Contains(line, "{") {
			line = strings.ReplaceAll(line, "{self}", "g"+strconv.Itoa(i))
			line = strings.ReplaceAll(line, "{next}", "g"+strconv.Itoa(i+1))
		}
		src.WriteString("g" + strconv.Itoa(i) + ": " + line + "\n")
	}
	fmt.Fprintf(&src, "g%d:\n", len(cases))
	dir := t.TempDir()
	srcPath, objPath := filepath.Join(dir, "forms.s"), filepath.Join(dir, "forms.o")
	if err := os.WriteFile(srcPath, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("as", "--64", "-o", objPath, srcPath).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, firstLines(out, 40))
	}
	gnu, gnuStarts := readSection(t, objPath, ".text", "g", len(cases))

	type pair struct {
		i          int
		gnu, ours  []byte
		gOff, oOff int // offsets in the objdump blob
	}
	var (
		pairs []pair
		blob  []byte
	)
	failed := 0
	fail := func(c *tc, g, o []byte, err error) {
		t.Errorf("%s (GNU %q): GNU % x, ours % x: %v", c.name, c.gas, g, o, err)
		if failed++; failed > 30 {
			t.Fatal("too many failures")
		}
	}
	for i := range cases {
		g := gnu[gnuStarts[i]:gnuStarts[i+1]]
		o := ours[starts[i]:starts[i+1]]
		if bytes.Equal(g, o) {
			continue
		}
		if err := compareSemantics(&cases[i], g, o); err != nil {
			fail(&cases[i], g, o, err)
			continue
		}
		p := pair{i: i, gnu: g, ours: o, gOff: len(blob)}
		blob = append(blob, g...)
		p.oOff = len(blob)
		blob = append(blob, o...)
		pairs = append(pairs, p)
	}
	if len(pairs) > 0 {
		texts := objdumpBinary(t, blob)
		for _, p := range pairs {
			gt, ot := texts[p.gOff], texts[p.oOff]
			if !equivalentText(gt, ot) {
				fail(&cases[p.i], p.gnu, p.ours, fmt.Errorf("objdump: GNU %q, ours %q", gt, ot))
			}
		}
	}
	t.Logf("%d forms: %d encoded as GNU as does, %d differently but equivalently",
		len(cases), len(cases)-len(pairs)-failed, len(pairs))
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// readSection returns a section's bytes and the offsets of symbols
// prefix0..prefixN within it.
func readSection(t *testing.T, path, section, prefix string, n int) ([]byte, []int) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sec := f.Section(section)
	data, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	starts := make([]int, n+1)
	for i := range starts {
		starts[i] = -1
	}
	for _, s := range syms {
		if !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		if i, err := strconv.Atoi(s.Name[len(prefix):]); err == nil && i <= n && f.Sections[s.Section] == sec {
			starts[i] = int(s.Value)
		}
	}
	if slices.Contains(starts, -1) {
		t.Fatalf("symbols %s0..%s%d missing from %s", prefix, prefix, n, section)
	}
	return data, starts
}

// compareSemantics decodes both encodings of c with x86asm and compares
// them with targets made relative to the form's start.
func compareSemantics(c *tc, gnu, ours []byte) error {
	if c.op == 0 {
		return fmt.Errorf("encodings differ for a form x86asm cannot decode")
	}
	cg, err := canon(gnu)
	if err != nil {
		return fmt.Errorf("GNU bytes: %v", err)
	}
	co, err := canon(ours)
	if err != nil {
		return fmt.Errorf("our bytes: %v", err)
	}
	if cg != co {
		if c.swap && swapped(cg) == co {
			return nil
		}
		if strings.HasPrefix(cg, "NOP") && strings.HasPrefix(co, "XCHG") && swapped(co) == co {
			return nil // GNU as's NOP for "xchg rax, rax": see equivalentText
		}
		return fmt.Errorf("x86asm: GNU %s, ours %s", cg, co)
	}
	return nil
}

// canon decodes one instruction placed at address 0 and renders its op and
// normalized operands; branch and RIP-relative targets become offsets from
// the instruction's start, with the instruction's end written "next".
func canon(b []byte) (string, error) {
	inst, err := x86asm.Decode(b, 64)
	if err != nil {
		return "", err
	}
	if inst.Len != len(b) {
		return "", fmt.Errorf("decodes as %d-byte %v, not one %d-byte instruction", inst.Len, inst, len(b))
	}
	target := func(t int64) string {
		if t == int64(inst.Len) {
			return "next"
		}
		return fmt.Sprintf("self%+d", t)
	}
	s := []string{inst.Op.String()}
	for _, a := range inst.Args {
		switch x := normArg(a).(type) {
		case nil:
		case x86asm.Rel:
			s = append(s, "rel "+target(int64(inst.Len)+int64(x)))
		case x86asm.Mem:
			if x.Base == x86asm.RIP {
				s = append(s, "[rip "+target(int64(inst.Len)+x.Disp)+"]")
				continue
			}
			s = append(s, x.String())
		case x86asm.Imm:
			// The same value can decode as imm8 255 or imm32 -1 depending
			// on the form; compare at the operand size.
			s = append(s, fmt.Sprintf("%#x", uint64(x)&sizeMask(inst)))
		default:
			s = append(s, x.String())
		}
	}
	return strings.Join(s, " "), nil
}

func sizeMask(inst x86asm.Inst) uint64 {
	if r, ok := inst.Args[0].(x86asm.Reg); ok && r >= x86asm.AL && r <= x86asm.R15B || inst.MemBytes == 1 {
		return 0xFF
	}
	switch inst.DataSize {
	case 16:
		return 0xFFFF
	case 32:
		return 0xFFFFFFFF
	}
	return ^uint64(0)
}

// swapped exchanges the two operands of a canon string.
func swapped(s string) string {
	f := strings.Split(s, " ")
	if len(f) == 3 {
		f[1], f[2] = f[2], f[1]
	}
	return strings.Join(f, " ")
}

var (
	objdumpInsn   = regexp.MustCompile(`^\s*([0-9a-f]+):\t([0-9a-f ]+)\t(.*)$`)
	objdumpBranch = regexp.MustCompile(`^((?:j|call|loop)\w*\s+)0x([0-9a-f]+)$`)
	objdumpRIP    = regexp.MustCompile(`\[rip[+-]0x[0-9a-f]+\](.*)# 0x([0-9a-f]+)$`)
	objdumpSpace  = regexp.MustCompile(`\s+`)
)

// objdumpBinary disassembles blob as raw x86-64 code at address 0 and
// returns the normalized text of the instruction at each offset. Branch
// and RIP-relative targets become offsets from the instruction's start
// ("self+N"), or "next" for its end, which makes them comparable between
// encodings of different lengths.
func objdumpBinary(t *testing.T, blob []byte) map[int]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "forms.bin")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	dump, err := exec.Command("objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "--insn-width=16", path).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	texts := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(dump))
	for sc.Scan() {
		m := objdumpInsn.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pc, _ := strconv.ParseInt(m[1], 16, 64)
		n := int64(len(strings.Fields(m[2])))
		rel := func(hex string) string {
			addr, _ := strconv.ParseInt(hex, 16, 64)
			if addr == pc+n {
				return "next"
			}
			return fmt.Sprintf("self%+d", addr-pc)
		}
		text := strings.TrimSpace(objdumpSpace.ReplaceAllString(m[3], " "))
		if b := objdumpBranch.FindStringSubmatch(text); b != nil {
			text = b[1] + rel(b[2])
		}
		if r := objdumpRIP.FindStringSubmatch(text); r != nil {
			// The displacement depends on the layout; the "# addr" comment
			// objdump adds carries the meaning.
			text = objdumpRIP.ReplaceAllString(text, "[rip+X]${1}# "+rel(r[2]))
		}
		texts[int(pc)] = text
	}
	return texts
}

// equivalentText compares objdump texts, allowing the spellings of one
// instruction that GNU as and we legitimately encode differently.
func equivalentText(gnu, ours string) bool {
	if gnu == ours {
		return true
	}
	switch {
	case gnu == "int3" && ours == "int 0x3":
		// GNU as turns "int 3" into INT3 (CC); we emit what was asked, CD 03.
		return true
	case (gnu == "nop" || gnu == "data16 nop") && strings.HasPrefix(ours, "xchg "):
		// GNU as turns "xchg rax, rax" and "xchg ax, ax" into NOP (90);
		// we keep XCHG (87 C0), which is what was asked.
		return true
	}
	return false
}
