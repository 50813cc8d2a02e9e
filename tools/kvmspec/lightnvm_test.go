package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLightNVMSysfs(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		file string // a file the tree must contain, with this content
		want string
	}{
		{"fixture 2.0", []string{"sysfs", "--geometry", "fixture:realistic-2.0"}, exitOK, "chunks", "1020\n"},
		{"file 1.2", []string{"sysfs", "--geometry", "../../fixtures/lightnvm/femu-1.2.json"}, exitOK, "media_manager", "gennvm\n"},
		{"no subcommand", nil, exitUsage, "", ""},
		{"missing --out", []string{"sysfs", "--geometry", "fixture:small-2.0", "--out", ""}, exitUsage, "", ""},
		{"flags before the subcommand", []string{"--geometry", "fixture:small-1.2", "sysfs"}, exitOK, "version", "1\n"},
		{"unknown subcommand", []string{"tree", "--geometry", "fixture:small-1.2"}, exitUsage, "", ""},
		{"unknown fixture", []string{"sysfs", "--geometry", "fixture:nope"}, exitFailed, "", ""},
		{"missing file", []string{"sysfs", "--geometry", "/no/such.json"}, exitFailed, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := c.args
			if len(args) > 0 && !contains(args, "--out") {
				args = append(args, "--out", dir)
			}
			var out, errb bytes.Buffer
			if code := Main(append([]string{"lightnvm"}, args...), &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d: %s", code, c.code, errb.String())
			}
			if c.file != "" {
				b, err := os.ReadFile(filepath.Join(dir, "lightnvm", c.file))
				if err != nil || string(b) != c.want {
					t.Fatalf("%s: %q %v", c.file, b, err)
				}
			}
		})
	}
	// An unwritable directory is a clear error naming it.
	file := filepath.Join(t.TempDir(), "plainfile")
	os.WriteFile(file, nil, 0o644)
	var out, errb bytes.Buffer
	if code := Main([]string{"lightnvm", "sysfs", "--geometry", "fixture:small-2.0", "--out", file}, &out, &errb); code != exitFailed || !strings.Contains(errb.String(), file) {
		t.Fatalf("unwritable dir: exit %d, %q", code, errb.String())
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
