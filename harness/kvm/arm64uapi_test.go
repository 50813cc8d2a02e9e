package kvm

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

var updateARM64Golden = flag.Bool("update-arm64-golden", false, "rewrite testdata/arm64-uapi.golden from the arm64 uapi headers")

const arm64GoldenPath = "testdata/arm64-uapi.golden"

// arm64Golden is one line of the golden file: a name of the arm64 Go
// tables, the C expression that gives its value, and the value the arm64
// headers gave ("?" before the first update).
type arm64Golden struct {
	name, cexpr, value string
}

func readARM64Golden(t *testing.T) (header []string, lines []arm64Golden) {
	t.Helper()
	b, err := os.ReadFile(arm64GoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			header = append(header, l)
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			t.Fatalf("%s: bad line %q (want name, C expression, value separated by tabs)", arm64GoldenPath, l)
		}
		lines = append(lines, arm64Golden{f[0], f[1], f[2]})
	}
	return header, lines
}

// arm64Probe compiles and runs a C program that prints every golden
// expression as the arm64 headers define it. It needs an arm64 C
// compiler and, where the kernel cannot run arm64 binaries,
// qemu-aarch64-static.
func arm64Probe(t *testing.T, lines []arm64Golden) map[string]string {
	t.Helper()
	cc, err := exec.LookPath("aarch64-linux-gnu-gcc")
	if err != nil && runtime.GOARCH == "arm64" {
		cc, err = exec.LookPath("cc")
	}
	if err != nil {
		t.Skip("no arm64 C compiler (apt-get install gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross): arm64 values not re-derived from the headers")
	}
	var src bytes.Buffer
	// The vGIC sizes are written with the kernel's SZ_64K, which uapi
	// users must define themselves (it is 64 KiB by its name).
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#define SZ_64K 0x10000\n#include <linux/kvm.h>\nint main(void){\n")
	for _, l := range lines {
		fmt.Fprintf(&src, "printf(\"%s\\t%%llu\\n\", (unsigned long long)(%s));\n", l.name, l.cexpr)
	}
	src.WriteString("return 0;}\n")
	dir := t.TempDir()
	cfile := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(cfile, src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-static", "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("compile arm64 header probe with %s: %v\n%s", cc, err, out)
	}
	// Natively on arm64, or through qemu-user where the kernel cannot
	// run it (an x86 host; also this test itself under qemu-user, where
	// runtime.GOARCH is arm64 but the probe is exec'd by the x86 kernel).
	out, err := exec.Command(bin).Output()
	if errors.Is(err, syscall.ENOEXEC) {
		q, qerr := exec.LookPath("qemu-aarch64-static")
		if qerr != nil {
			t.Skip("cannot run the arm64 header probe here and no qemu-aarch64-static (apt-get install qemu-user-static)")
		}
		out, err = exec.Command(q, bin).Output()
	}
	if err != nil {
		t.Fatalf("run arm64 header probe: %v", err)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), "\t")
		vals[name] = val
	}
	return vals
}

// The golden file says what the arm64 headers define; this test proves
// it on any host with the cross tools (the arm64 Go tables are compared
// with the file by TestARM64TablesMatchGolden, on arm64).
func TestARM64UAPIGolden(t *testing.T) {
	header, lines := readARM64Golden(t)
	vals := arm64Probe(t, lines)
	if *updateARM64Golden {
		var b bytes.Buffer
		for _, h := range header {
			b.WriteString(h + "\n")
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", l.name, l.cexpr, vals[l.name])
		}
		if err := os.WriteFile(arm64GoldenPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, l := range lines {
		if got := vals[l.name]; got != l.value {
			t.Errorf("%s (%s): headers give %s, %s says %s (run with -update-arm64-golden)", l.name, l.cexpr, got, arm64GoldenPath, l.value)
		}
	}
}
