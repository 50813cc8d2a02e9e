package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// arm64Binary cross-builds a tiny arm64 program (the ELF check wants a
// real one) once per test binary.
func arm64Binary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(goTool(), "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cross-building an arm64 program: %v\n%s", err, b)
	}
	return out
}

// goTool is the go command: $GO as the Makefile passes it, else the one
// on PATH.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// TestInitramfsContents: the archive holds /init, busybox, /dev/console,
// the directories init mounts on and every DEST=SRC, with their bytes and
// modes, each parent directory before its children, and reads back
// through the newc parser to the same list the -listing file shows.
func TestInitramfsContents(t *testing.T) {
	bin := arm64Binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "kvmspec.conf")
	if err := os.WriteFile(conf, []byte("UNIT_TIMEOUT=7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A package's testdata: any files, executable non-ELF ones included.
	td := filepath.Join(dir, "testdata")
	os.MkdirAll(filepath.Join(td, "sub"), 0o755)
	os.WriteFile(filepath.Join(td, "a.golden"), []byte("golden\n"), 0o644)
	os.WriteFile(filepath.Join(td, "sub", "x86.sh"), []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(dir, "initramfs.cpio")
	listing := filepath.Join(dir, "initramfs.txt")
	var stdout, stderr bytes.Buffer
	code := run([]string{"initramfs", "-o", out, "-busybox", bin, "-listing", listing,
		"kvmspec/kvmspec=" + bin, "kvmspec/tests/kvm.test=" + bin, "etc/kvmspec.conf=" + conf,
		"kvmspec/tests/kvm/testdata=" + td}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("initramfs: exit %d: %s", code, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := readArchive(f)
	if err != nil {
		t.Fatal(err)
	}
	binData, _ := os.ReadFile(bin)
	want := map[string]struct {
		mode uint32
		data []byte
	}{
		"init":                                  {modeFile | 0o755, initScript},
		"bin/busybox":                           {modeFile | 0o755, binData},
		"kvmspec/kvmspec":                       {modeFile | 0o755, binData},
		"kvmspec/tests/kvm.test":                {modeFile | 0o755, binData},
		"etc/kvmspec.conf":                      {modeFile | 0o644, []byte("UNIT_TIMEOUT=7\n")},
		"dev/console":                           {modeCharDev | 0o600, nil},
		"kvmspec/tests/kvm/testdata/a.golden":   {modeFile | 0o644, []byte("golden\n")},
		"kvmspec/tests/kvm/testdata/sub/x86.sh": {modeFile | 0o755, []byte("#!/bin/sh\n")},
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "etc", "bin", "kvmspec", "kvmspec/tests", "kvmspec/tests/kvm/testdata/sub"} {
		want[d] = struct {
			mode uint32
			data []byte
		}{modeDir | 0o755, nil}
	}
	seen := map[string]bool{}
	var lines []string
	for _, e := range es {
		lines = append(lines, e.describe())
		if seen[e.Name] {
			t.Errorf("%s twice", e.Name)
		}
		seen[e.Name] = true
		if p := filepath.Dir(e.Name); p != "." && !seen[p] {
			t.Errorf("%s comes before its directory %s", e.Name, p)
		}
		w, ok := want[e.Name]
		if !ok {
			continue
		}
		if e.Mode != w.mode {
			t.Errorf("%s: mode %o, want %o", e.Name, e.Mode, w.mode)
		}
		if w.data != nil && !bytes.Equal(e.Data, w.data) {
			t.Errorf("%s: %d bytes differ from the source's %d", e.Name, len(e.Data), len(w.data))
		}
		if e.Name == "dev/console" && (e.Major != ttyMajor || e.Minor != consoleMinor) {
			t.Errorf("dev/console is (%d,%d), want (5,1)", e.Major, e.Minor)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("%s missing from the initramfs", n)
		}
	}
	l, err := os.ReadFile(listing)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; string(l) != got {
		t.Errorf("listing file:\n%s\nthe archive reads back as:\n%s", l, got)
	}
	if st, _ := os.Stat(out); st.Size()%512 != 0 {
		t.Errorf("archive size %d is not a multiple of 512", st.Size())
	}
	var list bytes.Buffer
	if code := run([]string{"list", out}, &list, &stderr); code != 0 || list.String() != string(l) {
		t.Errorf("list: exit %d, output differs from the listing:\n%s", code, list.String())
	}
}

// TestInitramfsRefuses: what would only fail after a whole boot is
// refused while building.
func TestInitramfsRefuses(t *testing.T) {
	bin := arm64Binary(t)
	self, err := os.Executable() // this test binary: x86-64 here
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "notes")
	os.WriteFile(text, []byte("x"), 0o755)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"host binary", []string{"kvmspec/kvmspec=" + self}, "not arm64"},
		{"no kvmspec", []string{"kvmspec/tests/kvm.test=" + bin}, "no kvmspec/kvmspec"},
		{"test binary of text", []string{"kvmspec/kvmspec=" + bin, "kvmspec/tests/x.test=" + text}, "not an ELF"},
		{"missing source", []string{"kvmspec/kvmspec=" + filepath.Join(dir, "nope")}, "no such file"},
		{"twice", []string{"kvmspec/kvmspec=" + bin, "kvmspec//kvmspec=" + bin}, "given twice"},
		{"escape", []string{"kvmspec/kvmspec=" + bin, "../x=" + bin}, "bad path"},
		{"file under file", []string{"kvmspec/kvmspec=" + bin, "kvmspec/kvmspec/x=" + bin}, "not a directory"},
		{"no source", []string{"kvmspec/kvmspec"}, "DEST=SRC"},
	}
	if runtime.GOARCH == "arm64" {
		cases = cases[1:]
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "i.cpio")
			var so, se bytes.Buffer
			code := run(append([]string{"initramfs", "-o", out, "-busybox", bin}, c.args...), &so, &se)
			if code == 0 || !strings.Contains(se.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", code, se.String(), c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s written despite the error", out)
			}
		})
	}
}

// TestReadArchiveRejects: the parser of the listing stops at damage.
func TestReadArchiveRejects(t *testing.T) {
	a := newArchive()
	if err := a.add(entry{Name: "x", Mode: modeFile | 0o644, Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := a.write(&b); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	if es, err := readArchive(bytes.NewReader(good)); err != nil || len(es) != 1 || string(es[0].Data) != "hello" {
		t.Fatalf("round trip: %v %+v", err, es)
	}
	for name, data := range map[string][]byte{
		"truncated": good[:120],
		"magic":     append([]byte("070707"), good[6:]...),
		"hex":       append(append([]byte{}, good[:6]...), append([]byte("zzzzzzzz"), good[14:]...)...),
		"empty":     nil,
	} {
		if _, err := readArchive(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
