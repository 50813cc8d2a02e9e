package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// quiet runs f with file descriptor 1 pointed at /dev/null: Ginkgo's
// reporter writes to the process's stdout, and `kvmspec list` wants only
// its own output there.
func quiet(f func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f()
		return
	}
	defer null.Close()
	stdoutTo(int(null.Fd()), f)
}

// stdoutTo runs f with file descriptor 1 pointed at fd, and restores it
// after: `kvmspec run --ktap` keeps stdout for KTAP alone, as kselftest
// runners parse it, and sends Ginkgo's output to stderr (fd 2).
func stdoutTo(fd int, f func()) {
	saved, err := unix.Dup(1)
	if err != nil {
		f()
		return
	}
	defer unix.Close(saved)
	if err := unix.Dup2(fd, 1); err != nil {
		f()
		return
	}
	defer unix.Dup2(saved, 1)
	f()
}
