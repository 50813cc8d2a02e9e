// Command arm64 is the Go half of `make test-arm64` (tools/arm64/run.sh),
// which runs kvmspec on real KVM/arm64: an arm64 Debian kernel booted by
// qemu-system-aarch64 at EL2 offers /dev/kvm to an initramfs holding the
// arm64 kvmspec binary and the arm64 unit-test binaries.
//
//	arm64 initramfs -o FILE -busybox BUSYBOX [-listing FILE] DEST=SRC...
//	    writes the uncompressed newc initramfs: /init (init.sh), busybox,
//	    /dev/console and each SRC as DEST (a directory with what is below
//	    it); checks that busybox, kvmspec/kvmspec and every *.test are
//	    arm64 ELF files.
//	arm64 list FILE
//	    prints an initramfs' contents.
//	arm64 collect -in RESULTS.tar.gz -out DIR [-platform arm64]
//	    unpacks what the guest sent back into DIR/guest, writes DIR's
//	    junit.xml, report.json and report.ktap from the guest's suite run
//	    with its backends renamed kvm-arm64/emu-arm64, DIR/unit.xml from
//	    the unit-test logs, prints the stage's numbers, and exits 1 when
//	    anything inside failed or did not finish.
//	arm64 hang -mon SOCKET [-kallsyms FILE] [-console FILE] [-samples N]
//	    reads a hung guest's vCPUs through QEMU's monitor: each CPU's PC,
//	    LR and exception level, the kernel's frame-pointer chain, named
//	    with the guest's kallsyms, and the spec the run was in (hang.go).
package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: arm64 initramfs|list|collect|hang ... (see tools/arm64/main.go)")
		return 2
	}
	var err error
	switch args[0] {
	case "initramfs":
		err = cmdInitramfs(args[1:], stdout)
	case "list":
		err = cmdList(args[1:], stdout)
	case "hang":
		err = cmdHang(args[1:], stdout)
	case "collect":
		var failed bool
		failed, err = cmdCollect(args[1:], stdout)
		if err == nil && failed {
			return 1
		}
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	if err != nil {
		fmt.Fprintln(stderr, "arm64:", err)
		return 1
	}
	return 0
}
