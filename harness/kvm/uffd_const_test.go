package kvm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// uffdHeaderValues is headerValues for <linux/userfaultfd.h>: it compiles
// a C program printing every name of uffdIoctlTable and every size and
// offset of uffdLayoutTable (uffd_layout_unsafe_test.go).
func uffdHeaderValues(t *testing.T) map[string]string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler: cannot check the constants against <linux/userfaultfd.h>")
		}
	}
	if _, err := os.Stat("/usr/include/linux/userfaultfd.h"); err != nil {
		t.Skip("no /usr/include/linux/userfaultfd.h (install the kernel uapi headers, linux-libc-dev)")
	}
	var src bytes.Buffer
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <linux/ioctl.h>\n#include <linux/userfaultfd.h>\nint main(void){\n")
	for _, e := range uffdIoctlTable {
		fmt.Fprintf(&src, "#ifdef %[1]s\nprintf(\"%[1]s\\t%%llu\\n\", (unsigned long long)(%[1]s));\n#else\nprintf(\"%[1]s\\tMISSING\\n\");\n#endif\n", e.name)
	}
	for _, e := range uffdLayoutTable {
		fmt.Fprintf(&src, "printf(\"%s\\t%%llu\\n\", (unsigned long long)(%s));\n", e.name, e.cexpr)
	}
	src.WriteString("return 0;}\n")
	dir := t.TempDir()
	cfile := filepath.Join(dir, "u.c")
	if err := os.WriteFile(cfile, src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "u")
	if out, err := exec.Command(cc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("compile header probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), "\t")
		vals[name] = val
	}
	return vals
}

func TestUffdConstantsMatchHeaders(t *testing.T) {
	vals := uffdHeaderValues(t)
	for _, e := range uffdIoctlTable {
		got := vals[e.name]
		if got == "MISSING" {
			if e.since == "" {
				t.Errorf("%s: not in the installed headers, and not marked as newer than them", e.name)
			} else {
				t.Logf("%s: needs headers from %s; not checked here", e.name, e.since)
			}
			continue
		}
		want, err := strconv.ParseUint(got, 10, 64)
		if err != nil {
			t.Errorf("%s: header printed %q", e.name, got)
			continue
		}
		if want != e.value {
			t.Errorf("%s = %#x, <linux/userfaultfd.h> says %#x", e.name, e.value, want)
		}
	}
}

func TestUffdLayoutsMatchHeaders(t *testing.T) {
	vals := uffdHeaderValues(t)
	for _, e := range uffdLayoutTable {
		want, err := strconv.ParseUint(vals[e.name], 10, 64)
		if err != nil {
			t.Errorf("%s: header printed %q", e.name, vals[e.name])
			continue
		}
		if want != e.goValue {
			t.Errorf("%s = %d in Go, %d in <linux/userfaultfd.h>", e.name, e.goValue, want)
		}
	}
}
