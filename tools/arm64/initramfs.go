package main

import (
	"bytes"
	"debug/elf"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
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
		if err := a.addFile(x[0], x[1]); err != nil {
			return nil, err
		}
	}
	if _, ok := a.entries["kvmspec/kvmspec"]; !ok {
		return nil, fmt.Errorf("initramfs: no kvmspec/kvmspec given: the arm64 kvmspec binary is what the guest runs")
	}
	for _, e := range a.sorted() {
		if e.Mode&0o170000 != modeFile || e.Mode&0o111 == 0 || e.Data != nil {
			continue
		}
		if err := checkArm64(e.Src); err != nil {
			return nil, fmt.Errorf("initramfs: %s: %w", e.Name, err)
		}
	}
	return a, nil
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
