package main

import (
	"bytes"
	"debug/elf"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// initScript is the initramfs' /init.
//
//go:embed init.sh
var initScript []byte

// ttyMajor and consoleMinor are /dev/console's numbers: the kernel opens
// it for init's stdio before anything mounts devtmpfs.
const (
	ttyMajor     = 5
	consoleMinor = 1
)

// buildInitramfs assembles the archive: busybox, /init, /dev/console and
// the extra files (archive path → host path).
func buildInitramfs(busybox string, extra [][2]string) (*archive, error) {
	a := newArchive()
	for _, d := range []string{"proc", "sys", "dev", "tmp", "etc", "bin", "sbin", "usr/bin", "usr/sbin"} {
		if err := a.add(entry{Name: d, Mode: modeDir | 0o755}); err != nil {
			return nil, err
		}
	}
	if err := a.add(entry{Name: "dev/console", Mode: modeCharDev | 0o600, Major: ttyMajor, Minor: consoleMinor}); err != nil {
		return nil, err
	}
	if err := a.add(entry{Name: "init", Mode: modeFile | 0o755, Data: initScript}); err != nil {
		return nil, err
	}
	if err := a.addFile("bin/busybox", busybox); err != nil {
		return nil, err
	}
	for _, x := range extra {
		if err := a.addPath(x[0], x[1]); err != nil {
			return nil, err
		}
	}
	if _, ok := a.entries["kvmspec/kvmspec"]; !ok {
		return nil, fmt.Errorf("initramfs: no kvmspec/kvmspec given: the arm64 kvmspec binary is what the guest runs")
	}
	for _, e := range a.sorted() {
		if e.Mode&0o170000 != modeFile || e.Data != nil || !isProgram(e.Name) {
			continue
		}
		if err := checkArm64(e.Src); err != nil {
			return nil, fmt.Errorf("initramfs: %s: %w", e.Name, err)
		}
	}
	return a, nil
}

// isProgram says whether the guest executes the file: busybox, kvmspec
// and the test binaries (not files of a package's testdata, which may be
// anything, x86 ELF files included).
func isProgram(name string) bool {
	return name == "bin/busybox" || name == "kvmspec/kvmspec" || strings.HasSuffix(name, ".test")
}

// addPath adds host file src as name, or, when src is a directory, the
// regular files and directories below it under name (a package's
// testdata, which its test binary opens relative to its directory).
func (a *archive) addPath(name, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", name, err)
	}
	if !st.IsDir() {
		return a.addFile(name, src)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := path.Join(name, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return a.add(entry{Name: dst, Mode: modeDir | 0o755})
		case d.Type().IsRegular():
			return a.addFile(dst, p)
		}
		return nil // symlinks, sockets: not test data a Go test reads
	})
}

// checkArm64 refuses an executable that is not an AArch64 ELF file: the
// guest would only say "exec format error" after a whole boot.
func checkArm64(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("%s is built for %v, not arm64 (GOARCH=arm64)", path, f.Machine)
	}
	return nil
}

func cmdInitramfs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("initramfs", flag.ContinueOnError)
	out := fs.String("o", "", "the initramfs to write")
	busybox := fs.String("busybox", "", "a static arm64 busybox (from busybox-static:arm64)")
	listing := fs.String("listing", "", "also write the contents list to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *busybox == "" {
		return fmt.Errorf("%w: initramfs needs -o and -busybox", errUsage)
	}
	var extra [][2]string
	for _, a := range fs.Args() {
		dst, src, ok := strings.Cut(a, "=")
		if !ok || dst == "" || src == "" {
			return fmt.Errorf("%w: %q: want DEST=SRC", errUsage, a)
		}
		extra = append(extra, [2]string{dst, src})
	}
	a, err := buildInitramfs(*busybox, extra)
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := a.write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	if *listing != "" {
		var b bytes.Buffer
		for _, e := range a.sorted() {
			fmt.Fprintln(&b, e.describe())
		}
		if err := os.WriteFile(*listing, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "initramfs %s: %d entries, %.1f MiB\n", *out, len(a.entries), float64(st.Size())/(1<<20))
	return nil
}

func cmdList(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: list FILE", errUsage)
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	es, err := readArchive(f)
	if err != nil {
		return err
	}
	for _, e := range es {
		fmt.Fprintln(stdout, e.describe())
	}
	return nil
}
