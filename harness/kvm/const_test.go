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

// headerCheck is one family of kernel constants and struct mirrors checked
// against the installed uapi headers.
type headerCheck struct {
	header   string   // the header the values come from, for messages
	includes []string // what the C program includes
	ioctls   []ioctlEntry
	layouts  []layoutEntry
}

var headerChecks = []headerCheck{
	{"<linux/kvm.h>", []string{"linux/kvm.h"}, append(append([]ioctlEntry(nil), ioctlTable...), archIoctlTable...),
		append(append([]layoutEntry(nil), layoutTable...), archLayoutTable...)},
	{"<linux/userfaultfd.h>", []string{"linux/ioctl.h", "linux/userfaultfd.h"}, uffdIoctlTable, uffdLayoutTable},
}

// values compiles a C program against the headers that prints every name
// of the ioctl table and every mirrored struct size and offset. Names the
// installed headers lack are printed as MISSING.
func (hc headerCheck) values(t *testing.T) map[string]string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("gcc"); err != nil {
			t.Skipf("no C compiler: cannot check the constants against %s", hc.header)
		}
	}
	for _, inc := range hc.includes {
		if _, err := os.Stat("/usr/include/" + inc); err != nil {
			t.Skipf("no /usr/include/%s (install the kernel uapi headers, linux-libc-dev)", inc)
		}
	}
	var src bytes.Buffer
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n")
	for _, inc := range hc.includes {
		fmt.Fprintf(&src, "#include <%s>\n", inc)
	}
	src.WriteString("int main(void){\n")
	for _, e := range hc.ioctls {
		fmt.Fprintf(&src, "#ifdef %[1]s\nprintf(\"%[1]s\\t%%llu\\n\", (unsigned long long)(%[1]s));\n#else\nprintf(\"%[1]s\\tMISSING\\n\");\n#endif\n", e.name)
	}
	for _, e := range hc.layouts {
		fmt.Fprintf(&src, "printf(\"%s\\t%%llu\\n\", (unsigned long long)(%s));\n", e.name, e.cexpr)
	}
	src.WriteString("return 0;}\n")
	dir := t.TempDir()
	cfile := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(cfile, src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
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

func TestConstantsMatchHeaders(t *testing.T) {
	for _, hc := range headerChecks {
		t.Run(hc.header, func(t *testing.T) {
			vals := hc.values(t)
			for _, e := range hc.ioctls {
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
					t.Errorf("%s = %#x, %s says %#x", e.name, e.value, hc.header, want)
				}
			}
			for _, e := range hc.layouts {
				want, err := strconv.ParseUint(vals[e.name], 10, 64)
				if err != nil {
					t.Errorf("%s: header printed %q", e.name, vals[e.name])
					continue
				}
				if want != e.goValue {
					t.Errorf("%s = %d in Go, %d in %s", e.name, e.goValue, want, hc.header)
				}
			}
		})
	}
}
